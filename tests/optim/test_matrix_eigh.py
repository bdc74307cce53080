"""Shampoo's eigendecompositions where float32 fails: the retry in float64, the eigenvalue floor.

LAPACK's symmetric eigensolver (``torch.linalg.eigh`` on the CPU) can stop without converging
on a finite float32 matrix whose rows span many decades. Shampoo's statistics become such a
matrix under gradients whose rows differ by 36 decades and a tiny ε (L = εI + G·Gᵀ, G's rows
scaled from 1e-18 to 1e18, ε = 1e-30): a training run then died with "linalg.eigh: The
algorithm failed to converge". The tables' ``eigh`` now retries in float64, as the authors'
distributed Shampoo (``retry_double_precision``) and SOAP's reference code do, and the inverse
root raises eigenvalues that rounding put under L's bound ε·ρ₂ᵗ (the float32 statistics of
that gradient are not even positive semidefinite: float64 finds eigenvalues near −1e20).
"""

from __future__ import annotations

import numpy as np
import pytest

from steplab.optim.matrix import Shampoo
from steplab.optim.matrix.ops import NUMPY_MATRIX_OPS
from steplab.optim.matrix.shampoo import inverse_root

torch = pytest.importorskip("torch")
stm = pytest.importorskip("steplab.torch.matrix")

SEEDS = (0, 1, 4, 10)  # gradients whose float32 statistics torch's float32 eigh fails on


def graded_gradient(seed: int, n: int = 8) -> torch.Tensor:
    """An n×n float32 gradient whose rows are scaled from 1e-18 to 1e18."""
    generator = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-18, 18, n, dtype=torch.float64)
    return (scale[:, None] * torch.randn(n, n, dtype=torch.float64, generator=generator)).float()


def statistics(G: torch.Tensor) -> torch.Tensor:
    """Shampoo's first left statistics L = εI + G·Gᵀ with ε = 1e-30, in float32."""
    return 1e-30 * torch.eye(G.shape[0]) + G @ G.T


def test_float32_eigh_fails_on_these_statistics_and_the_torch_table_retries_in_float64():
    failed = 0
    for seed in SEEDS:
        L = statistics(graded_gradient(seed))
        assert torch.isfinite(L).all()
        lam, V = stm.TORCH_MATRIX_OPS.eigh(L)
        assert lam.dtype == V.dtype == torch.float32
        assert torch.isfinite(lam).all() and torch.isfinite(V).all()
        try:
            torch.linalg.eigh(L)
        except torch.linalg.LinAlgError:
            failed += 1
            lam64, V64 = torch.linalg.eigh(L.double())
            assert torch.equal(lam, lam64.float()) and torch.equal(V, V64.float())
    assert failed >= 1  # the reproduction: LAPACK's float32 iteration does fail here


def test_the_numpy_table_retries_a_failed_float32_eigh_in_float64_and_raises_in_float64(
    monkeypatch,
):
    original = np.linalg.eigh
    calls = []

    def fails_in_float32(S):
        calls.append(S.dtype)
        if S.dtype == np.float32:
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return original(S)

    monkeypatch.setattr(np.linalg, "eigh", fails_in_float32)
    S = np.array([[[2.0, 1.0], [1.0, 3.0]]], dtype=np.float32)
    lam, V = NUMPY_MATRIX_OPS.eigh(S)
    assert calls == [np.float32, np.float64]
    assert lam.dtype == V.dtype == np.float32
    np.testing.assert_array_equal(lam, original(S.astype(np.float64))[0].astype(np.float32))

    def always_fails(S):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(np.linalg, "eigh", always_fails)
    with pytest.raises(np.linalg.LinAlgError):
        NUMPY_MATRIX_OPS.eigh(S.astype(np.float64))


def test_inverse_root_raises_eigenvalues_rounded_under_the_floor():
    # an eigh whose rounding gave the smallest eigenvalue of an SPD matrix as -1e-20
    ops = NUMPY_MATRIX_OPS._replace(eigh=lambda S: (np.array([[-1e-20, 16.0]]), np.eye(2)[None]))
    hp = Shampoo().hyper_values(2)
    root = inverse_root(ops, hp, np.eye(2)[None], 1e-4)
    np.testing.assert_allclose(root[0], np.diag([1e-4**-0.25, 0.5]), rtol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_float32_shampoo_step_survives_the_failing_eigh(seed):
    G = graded_gradient(seed)
    W = torch.nn.Parameter(torch.zeros_like(G))
    W.grad = G
    shampoo = stm.Shampoo([W], eps=1e-30)
    shampoo.step()  # raised LinAlgError before the retry; gave NaN before the floor
    assert torch.isfinite(W).all() and W.abs().max() > 0
