"""The state bytes per parameter in docs/matrix.md ("Memory"), computed from the arrays each
optimizer's init makes for one 4096 × 4096 float32 weight (np.zeros: pages untouched)."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab.optim.matrix import SOAP, Adafactor, Muon, Shampoo

N = 4096


def _bytes_per_parameter(opt) -> float:
    W = np.zeros((N, N), dtype=np.float32)
    state = opt.init(W)
    return sum(a.nbytes for a in state.arrays().values()) / W.size


@pytest.mark.parametrize(
    "opt, expected",
    [
        (sl.Adam(), 8.0),  # s and r: two float32 per parameter
        (Muon(), 4.0),  # the momentum B
        (Adafactor(), 2 * N * 4 / N**2),  # R (4096) + C (4096): 0.00195 bytes
        (Shampoo(), 16.0),  # L, R and their roots: 4 · 4096² numbers
        (Shampoo(graft="adagrad"), 20.0),  # + AdaGrad's accumulator
        # 16 blocks of 1024²: still 4 numbers a parameter (blocks save eigh time, not memory)
        (Shampoo(block_size=1024), 16.0),
        (SOAP(), 24.0),  # M, V (4096² each) + L, R, Q_L, Q_R (4096² each)
    ],
    ids=["adam", "muon", "adafactor", "shampoo", "shampoo-graft", "shampoo-blocks-1024", "soap"],
)
def test_state_bytes_per_parameter_of_a_4096_square_weight(opt, expected):
    assert _bytes_per_parameter(opt) == pytest.approx(expected, rel=1e-12)


def test_adafactor_keeps_rows_plus_columns_numbers_as_the_paper_states():
    W = np.zeros((N, 1024), dtype=np.float32)
    state = Adafactor().init(W)
    assert sum(a.size for a in state.arrays().values()) == N + 1024
