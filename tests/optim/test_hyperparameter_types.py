"""Hyperparameters are real numbers: bools, strings, None and overflowing ints are refused
with a ValueError naming the parameter (NumPy alone would accept or crash on them)."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "lr must be a number in \\(0, inf\\), got True"),
        ("0.1", "lr must be a number in \\(0, inf\\), got '0.1'"),
        (None, "lr must be a number"),
        (np.array(["0.1"]), "lr must be a number"),
        (10**400, "lr must be in \\(0, inf\\), got 1000.*\\(too large\\)"),
        (float("nan"), "lr must be in \\(0, inf\\), got nan"),
    ],
)
def test_non_numbers_and_overflow_are_value_errors(value, message):
    with pytest.raises(ValueError, match=message):
        sl.Adam(lr=value)


def test_numbers_of_every_kind_are_still_accepted():
    assert sl.Adam(lr=3).lr == 3.0 and isinstance(sl.Adam(lr=np.float32(0.5)).lr, float)
    assert sl.Adam(lr=10**20).lr == 1e20  # a big int that fits a float
    np.testing.assert_array_equal(sl.Adam(lr=[0.1, 0.2]).lr, [0.1, 0.2])
    assert sl.Adam(amsgrad=np.bool_(True)).amsgrad is True
