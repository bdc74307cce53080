"""A Ray task ships its chunk's rows as columns (steplab.run.sweep._Columns); the driver's
rows are the task's, field for field: same keys in the same order, same types, same bits."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import steplab as sl
from steplab.run.sweep import _Columns


def shipped(rows):
    """The rows as the driver gets them: packed in the task, pickled, rebuilt."""
    return pickle.loads(pickle.dumps(_Columns.pack(rows), protocol=5)).rows()


def assert_identical(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert list(a) == list(b)  # the same fields in the same order
        for name in a:
            # type and repr: 1 is not 1.0 or True, -0.0 is not 0.0, NaN is NaN
            assert type(a[name]) is type(b[name]), name
            assert repr(a[name]) == repr(b[name]), name


@pytest.mark.parametrize("engine", ["loop", "fast"])
def test_a_sweeps_rows_come_back_field_for_field(engine):
    if engine == "fast":
        pytest.importorskip("numba")
    grid = {"sgd": {"lr": np.logspace(-5, 0, 12)}, "adam": {"lr": [1e-3, 1e-1]}}
    rows = list(sl.sweep("rosenbrock", grid, seeds=[0, 1], steps=200, engine=engine))
    assert {row["status"] for row in rows} == {"max_steps", "diverged"}  # a varying string
    assert_identical(shipped(rows), rows)


def test_values_equal_but_not_the_same_stay_apart():
    """A field is shipped once only when every row holds the same object or the same
    float bits: 0.0 and -0.0, 1 and 1.0 and True, keep their own values."""
    nan = float("nan")
    rows = [
        {"a": 0.0, "b": 1, "c": nan, "d": "x", "e": None, "f": [1]},
        {"a": -0.0, "b": 1.0, "c": float("nan"), "d": "x", "e": None, "f": [1]},
        {"a": 0.0, "b": True, "c": nan, "d": "x", "e": None, "f": [1]},
    ]
    packed = _Columns.pack(rows)
    # NaNs of the same bits are one value; the lists are equal but not the same object
    assert set(packed.shared) == {"c", "d", "e"}
    back = shipped(rows)
    assert_identical(back, rows)
    assert back[0]["f"] is not back[1]["f"]  # a mutable value is never shared by rows


def test_a_float_field_of_one_value_in_many_objects_is_shipped_once():
    rows = [{"wd": float(v), "lr": float(v) + i} for i, v in enumerate(np.zeros(5))]
    assert rows[0]["wd"] is not rows[1]["wd"]
    packed = _Columns.pack(rows)
    assert packed.shared == {"wd": 0.0} and packed.varying == ["lr"]
    assert_identical(shipped(rows), rows)


def test_rows_of_different_fields_travel_as_they_are():
    rows = [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1}]
    assert_identical(shipped(rows), rows)


def test_columns_are_smaller_than_the_rows_they_carry():
    rows = list(sl.sweep("rosenbrock", {"sgd": {"lr": np.logspace(-5, 0, 500)}}, steps=5))
    assert len(pickle.dumps(_Columns.pack(rows))) < 0.8 * len(pickle.dumps(rows))
