"""A table made of column blocks (what the Ray engine's driver hands back) is the table made
of the same rows as dicts: built both ways from one sweep's rows, every use gives the same
answer, and no row dict is built until a row is asked for."""

from __future__ import annotations

import copy
import json
import math
import pickle

import numpy as np
import pytest

import steplab as sl
from steplab.run.records import Columns, Table


@pytest.fixture(scope="module")
def rows():
    """A sweep's rows as dicts: two optimizers of different fields, varying statuses."""
    grid = {"sgd": {"lr": np.logspace(-5, 0, 12)}, "adam": {"lr": [1e-3, 1e-1], "rho1": 0.8}}
    table = sl.sweep("rosenbrock", grid, seeds=[0, 1], steps=200, engine="loop")
    assert {row["status"] for row in table} == {"max_steps", "diverged"}
    table.interrupted = False
    return list(table)


def both(rows, cuts=(5, 11, 24, 26)):
    """The old table (``Table(rows)``) and the new one from blocks cut at ``cuts`` (column
    blocks, and one plain list of dicts), each marked as a sweep marks it."""
    edges = [0, *cuts, len(rows)]
    pieces = [rows[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    blocks = [Columns.pack(p) if i != 2 else p for i, p in enumerate(pieces)]
    old, new = Table(rows), Table.from_blocks(blocks)
    old.interrupted = new.interrupted = False
    return old, new


def is_lazy(table) -> bool:
    return "_blocks" in table.__dict__


def test_a_table_of_blocks_answers_length_and_columns_without_building_rows(rows):
    old, new = both(rows)
    assert is_lazy(new) and type(new) is not Table
    assert len(new) == len(old) == len(rows) and bool(new)
    assert new.columns == old.columns  # the union, in first-seen order
    for name in [*old.columns, "no such column"]:
        got, want = new.column(name), old.column(name)
        assert [repr(v) for v in got] == [repr(v) for v in want], name
    assert is_lazy(new)  # none of that built a row
    assert new.text() == old.text()  # printing needs rows: now it is a plain Table
    assert not is_lazy(new) and type(new) is Table


@pytest.mark.parametrize(
    "use",
    [
        list,
        lambda t: t[3],
        lambda t: t[-1],
        lambda t: t[2:30:3],
        lambda t: rows_in(t),
        lambda t: len(t) and t[5] in t,
        lambda t: t.index(t[7]),
        lambda t: t.count(t[0]),
        lambda t: list(reversed(t)),
        lambda t: sorted(t, key=lambda r: (r["final_loss"], r["seed"])),
        lambda t: [{"x": 1}] + t,
        lambda t: t + [{"x": 1}],
        lambda t: 2 * t,
        lambda t: t * 2,
        lambda t: t.copy(),
        lambda t: (t.append({"x": 1}), t.pop(0), t.insert(2, {"y": 2}), list(t))[-1],
        lambda t: (t.extend([{"x": 1}]), t.remove(t[1]), t.reverse(), list(t))[-1],
        lambda t: (t.__setitem__(0, {"z": 0}), t.__delitem__(slice(3, 9)), list(t))[-1],
        lambda t: (t.sort(key=lambda r: r["seed"]), list(t))[-1],
        lambda t: (t.__iadd__([{"x": 1}]), t.__imul__(2), list(t))[-1],
        lambda t: (t.clear(), list(t), len(t))[1:],
        lambda t: t.where(optimizer="SGD", seed=1),
        lambda t: t.where(status="diverged").columns,
        lambda t: json.dumps(t),
        lambda t: t.to_json(),
        lambda t: repr(t),
        lambda t: str(t),
        lambda t: t._repr_html_(),
        lambda t: np.array(t).shape,
        lambda t: pickle.dumps(t, protocol=5),
        lambda t: pickle.dumps(t, protocol=2),
        lambda t: type(pickle.loads(pickle.dumps(t))),
        lambda t: copy.copy(t),
        lambda t: copy.deepcopy(t),
        lambda t: t == rows_in(t),
        lambda t: rows_in(t) == t,
        lambda t: t != rows_in(t)[:-1],
        lambda t: (t > rows_in(t)[:-1], t >= rows_in(t), t <= rows_in(t), t < rows_in(t)),
        lambda t: rows_in(t)[:-1] < t,
        lambda t: t.interrupted,
    ],
)
def test_every_use_gives_what_the_table_of_dicts_gives(rows, use):
    old, new = both(rows)
    want, got = use(old), use(new)
    assert type(got) is type(want)
    assert same(got, want)
    assert same(list(new), list(old))  # and a mutation did the same to both


def rows_in(table):
    return [dict(row) for row in table]


def same(a, b) -> bool:
    """Equal down to key order, types and float bits (NaN equals NaN)."""
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def test_files_and_frames_are_the_same(rows, tmp_path):
    pd = pytest.importorskip("pandas")
    old, new = both(rows)
    new.to_csv(tmp_path / "new.csv")
    old.to_csv(tmp_path / "old.csv")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    _, new = both(rows)
    pd.testing.assert_frame_equal(new.to_pandas(), old.to_pandas())
    _, new = both(rows)
    pd.testing.assert_frame_equal(pd.DataFrame(new), pd.DataFrame(old))


def test_a_pickled_table_of_blocks_is_the_pickled_table_of_dicts(rows):
    """Byte for byte: a stored or shipped table does not tell how it was built."""
    old, new = both(rows)
    assert pickle.dumps(new) == pickle.dumps(old)
    back = pickle.loads(pickle.dumps(both(rows)[1]))
    assert type(back) is Table and back == old and back.interrupted is False


def test_blocks_of_plain_dicts_only_make_a_plain_table(rows):
    table = Table.from_blocks([rows[:4], [], rows[4:]])
    assert type(table) is Table and table == rows
    assert Table.from_blocks([]) == [] and type(Table.from_blocks([])) is Table


def test_number_columns_travel_as_arrays_and_come_back_bit_for_bit():
    """Floats (and 64-bit ints) ship as one array each; the rows get Python floats and ints
    of the same bits back: -0.0, NaN, infinities, the smallest subnormal. A column NumPy
    would change (ints beyond 64 bits, ints mixed with floats) ships as it is."""
    floats = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1 / 3]
    rows = [
        {"x": x, "n": -(2**62) * (i % 2) + i, "big": 2**70 + i, "mixed": (1, 1.0)[i % 2]}
        for i, x in enumerate(floats)
    ]
    packed = Columns.pack(rows)
    kinds = dict(zip(packed.varying, map(type, packed.columns), strict=True))
    assert kinds == {"x": np.ndarray, "n": np.ndarray, "big": list, "mixed": list}
    back = pickle.loads(pickle.dumps(packed, protocol=5))
    for got in (
        back.rows(),
        [
            dict(zip(rows[0], v, strict=True))
            for v in zip(*(back.column(name) for name in rows[0]), strict=True)
        ],
    ):
        assert [[(type(v), repr(v)) for v in row.values()] for row in got] == [
            [(type(v), repr(v)) for v in row.values()] for row in rows
        ]
