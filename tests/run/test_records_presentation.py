"""How results present themselves: tables print readably and convert to pandas, runs made
from array hyperparameters name them, and a run draws its own loss curve."""

import numpy as np
import pytest

import steplab as sl


@pytest.fixture(scope="module")
def runs():
    problem = sl.problems.expression("x**2 + 10*y**2")
    return sl.minimize(problem, sl.Adam(lr=[0.01, 0.1, 0.5]), steps=30)


def test_runs_from_array_hyperparameters_show_them(runs):
    assert [r.label() for r in runs] == ["adam:lr=0.01", "adam:lr=0.1", "adam:lr=0.5"]
    assert "adam:lr=0.1," in repr(runs[1])
    plain = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(), steps=3)
    assert plain.label() == "adam"  # nothing changed from the defaults: just the name


def test_table_prints_the_varying_columns_and_lists_the_shared_ones_once():
    table = sl.sweep("rosenbrock", {"adam": {"lr": [0.01, 0.1]}, "sgd": {"lr": [1e-3]}}, steps=20)
    text = str(table)
    lines = text.splitlines()
    assert lines[0].startswith("all rows: problem=rosenbrock") and "seed=0" in lines[0]
    header = lines[1].split()
    assert {"optimizer", "lr", "final_loss"} <= set(header) and "problem" not in header
    assert len(lines) == 3 + len(table)  # shared, header, rule, one line per row
    assert lines[3].split()[0] == "adam" and lines[5].split()[0] == "sgd"
    assert "<table>" in table._repr_html_()
    long = sl.run.records.Table([{"a": i, "b": 1} for i in range(50)])
    assert "… 30 more rows …" in str(long) and len(str(long).splitlines()) == 3 + 20 + 1


def test_to_pandas_keeps_every_row_and_column():
    pd = pytest.importorskip("pandas")  # an optional dependency; the test extra installs it
    table = sl.sweep("rosenbrock", {"adam": {"lr": [0.01, 0.1, 0.2]}}, steps=10)
    frame = table.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == table.columns and len(frame) == 3
    np.testing.assert_array_equal(frame["final_loss"], table.column("final_loss"))


def test_run_plot_draws_each_runs_loss(runs):
    fig = runs[0].plot()
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_ydata(), runs[0].history["loss"])
    assert fig.axes[0].get_yscale() == "log"
    fig = runs.plot()
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["Adam (lr=0.01)", "Adam (lr=0.1)", "Adam (lr=0.5)"]
