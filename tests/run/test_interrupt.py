"""Ctrl+C during minimize or sweep keeps what was computed (status "interrupted"), and
exports write ±inf so that it reads back as infinity, not as "unset"."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import steplab as sl
from steplab.run.records import Table


def interrupting(problem, after: int):
    """``problem`` whose gradient evaluation raises KeyboardInterrupt at call ``after + 1``."""
    calls = {"n": 0}
    original = problem.value_and_grad

    def value_and_grad(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    problem.value_and_grad = value_and_grad
    return problem


def test_ctrl_c_in_minimize_returns_the_partial_run():
    reference = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.01), steps=100)
    problem = interrupting(sl.problems.get("rosenbrock"), after=31)  # rows 0..30 complete
    run = sl.minimize(problem, sl.Adam(lr=0.01), steps=100)
    assert run.status == "interrupted" and run.steps == 30
    assert len(run.history) == 31
    # What was computed is the run itself, bit for bit, up to the interruption.
    np.testing.assert_array_equal(run.history["x"], reference.history["x"][:31])
    np.testing.assert_array_equal(run.x, reference.history["x"][30])
    assert run.final_loss == reference.history["loss"][30]
    assert "interrupted" in sl.run.STATUSES


def test_ctrl_c_before_any_row_gives_an_empty_interrupted_run():
    run = sl.minimize(interrupting(sl.problems.get("rosenbrock"), after=0), sl.Adam(), steps=10)
    assert run.status == "interrupted" and len(run.history) == 0


def test_ctrl_c_in_k_runs_marks_only_running_ones():
    problem = interrupting(sl.problems.get("rosenbrock"), after=21)
    # lr = 1e3 diverges at once; the others are still running when Ctrl+C comes.
    runs = sl.minimize(problem, sl.Adam(lr=np.array([1e-3, 1e3])), steps=100)
    assert runs[0].status == "interrupted" and runs[0].steps == 20
    assert runs[1].status == "diverged"


def test_ctrl_c_in_sweep_returns_the_table_so_far():
    problem = interrupting(sl.problems.get("rosenbrock"), after=150)
    table = sl.sweep(
        problem,
        {"adam": {"lr": [1e-3, 1e-2]}, "sgd": {"lr": [1e-4]}},
        seeds=[0],
        steps=100,
        engine="loop",
    )
    assert table.interrupted
    # adam's chunk (2 runs) finished in 101 evaluations; sgd's was interrupted at row 49.
    assert [row["status"] for row in table] == ["max_steps", "max_steps", "interrupted"]
    assert table[2]["steps"] == 48
    complete = sl.sweep("rosenbrock", {"adam": {"lr": [1e-3, 1e-2]}}, seeds=[0], steps=100)
    assert not complete.interrupted
    assert [r["final_loss"] for r in table[:2]] == [r["final_loss"] for r in complete]


def test_nan_target_loss_is_rejected():
    with pytest.raises(ValueError, match="target_loss must be a number"):
        sl.minimize("rosenbrock", sl.Adam(), steps=5, target_loss=float("nan"))
    with pytest.raises(ValueError, match="target_loss must be a number"):
        sl.minimize("rosenbrock", sl.Adam(), steps=5, target_loss="0.1")


def test_infinity_survives_json_and_csv_exports(tmp_path):
    run = sl.minimize("rosenbrock", sl.Adam(), steps=3, target_loss=-math.inf)
    data = json.loads(run.to_json(tmp_path / "run.json"))
    assert float(data["config"]["target_loss"]) == -math.inf  # not None ("unset")
    table = Table([{"best": math.inf, "worst": -math.inf, "missing": math.nan}])
    assert json.loads(table.to_json()) == [
        {"best": "Infinity", "worst": "-Infinity", "missing": None}
    ]
    with open(table.to_csv(tmp_path / "t.csv"), newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["best"]) == math.inf and float(row["worst"]) == -math.inf
    assert math.isnan(float(row["missing"]))
