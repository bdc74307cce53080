"""What the per-tensor optimizers do to a matrix, as data for figures (docs/matrix.md and the
notebook "beyond the lecture"): each function runs the optimizers and returns plain arrays;
:mod:`steplab.viz.matrix` draws them.
"""

from __future__ import annotations

import numpy as np

from steplab.optim.adam import Adam
from steplab.optim.matrix import SOAP, Adafactor, MatrixOptimizer, Muon, Shampoo
from steplab.optim.sgd import SGD


def muon_singular_values(m: int = 64, n: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """The singular values of a momentum-like matrix with a decaying spectrum (a few large
    directions, many small ones, as gradients of a layer have) and of Muon's orthogonalized
    update of it (normalized by the largest, for comparison)."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    M = U @ np.diag(np.logspace(0, -2.5, n)) @ V.T
    return {
        "before": np.linalg.svd(M, compute_uv=False),
        "after": np.linalg.svd(Muon().orthogonalize(M), compute_uv=False),
    }


def adafactor_moments(m: int = 48, n: int = 32, steps: int = 200, seed: int = 0) -> dict:
    """Adam's full second moment r (m×n numbers) and Adafactor's factored V̂ = R·C/mean(R)
    (m + n numbers) after ``steps`` gradients whose scale varies by row and by column, both
    with Adafactor's decay ρ₂ₜ = 1 − t^(−0.8) so that only the factoring differs."""
    rng = np.random.default_rng(seed)
    row_scale = np.exp(rng.normal(0, 1.0, (m, 1)))
    col_scale = np.exp(rng.normal(0, 1.0, (1, n)))
    opt = Adafactor()
    W = np.zeros((m, n))
    state = opt.init(W)
    full = np.zeros((m, n))
    for t in range(1, steps + 1):
        G = row_scale * col_scale * rng.standard_normal((m, n))
        rho2_t = 1 - t**-0.8
        full = rho2_t * full + (1 - rho2_t) * G * G
        opt.step(W, G, state)
    factored = state.R @ state.C / state.R.mean()
    return {"full": full, "factored": factored, "numbers": {"Adam r": m * n,
            "Adafactor R + C": state.R.size + state.C.size}}  # fmt: skip


def ill_conditioned_problem(m: int = 20, n: int = 12, condition: float = 100.0, seed: int = 0):
    """f(W) = ½‖A·W·B − C‖²_F with A and B of the given condition numbers: its Hessian is
    (B·Bᵀ) ⊗ (Aᵀ·A), condition²; returns (f, ∇f, W₀)."""
    rng = np.random.default_rng(seed)

    def conditioned(k):
        Q1, _ = np.linalg.qr(rng.standard_normal((k, k)))
        Q2, _ = np.linalg.qr(rng.standard_normal((k, k)))
        return Q1 @ np.diag(np.logspace(0, -np.log10(np.sqrt(condition)), k)) @ Q2

    A, B = conditioned(m), conditioned(n)
    C = rng.standard_normal((m, n))

    def f(W):
        return 0.5 * float(np.sum((A @ W @ B - C) ** 2))

    def grad(W):
        return A.T @ (A @ W @ B - C) @ B.T

    return f, grad, np.zeros((m, n))


#: Each optimizer's step sizes: a grid wide enough that the best is inside it (sgd diverges
#: from 3 on; Muon's and Shampoo's steps have their own scale). No weight decay anywhere.
RACE = {
    "sgd": (SGD, (0.3, 1.0, 2.0, 3.0)),
    "adam": (Adam, (0.1, 0.3, 1.0, 3.0, 10.0)),
    "muon": (Muon, (0.1, 0.3, 1.0, 3.0)),
    "shampoo": (Shampoo, (3.0, 10.0, 30.0, 100.0, 300.0)),
    "soap": (SOAP, (0.1, 0.3, 1.0, 3.0, 10.0)),
}
NO_DECAY = {"soap": {"weight_decay": 0.0}}


def preconditioned_race(steps: int = 200) -> dict:
    """Loss curves on the ill-conditioned matrix problem (each optimizer at the best step size
    of its grid, by final loss), and the first raw gradient against Shampoo's first step:
    with L = εI + G·Gᵀ that step is L^(−¼)·G·R^(−¼) ≈ U·Vᵀ, G's orthogonalization, the
    matrix Muon's Newton–Schulz iteration approximates."""
    f, grad, W0 = ill_conditioned_problem()
    curves, chosen = {}, {}
    for name, (cls, lrs) in RACE.items():
        best = None
        for lr in lrs:
            opt = cls(lr=lr, **NO_DECAY.get(name, {}))
            W = W0.copy()
            state = opt.init(W)
            losses = [f(W)]
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging step size
                for _ in range(steps):
                    opt.step(W, grad(W), state)
                    losses.append(f(W))
            if np.isfinite(losses[-1]) and (best is None or losses[-1] < best[-1]):
                best = losses
                chosen[name] = lr
        curves[name] = np.asarray(best)
    # the first step's direction: raw G against Shampoo's L^(-1/4)·G·R^(-1/4)
    G = grad(W0)
    shampoo: MatrixOptimizer = Shampoo(lr=1.0)
    W = W0.copy()
    shampoo.step(W, G, shampoo.init(W))
    P = W0 - W
    return {
        "curves": curves,
        "lr": chosen,
        "raw": np.linalg.svd(G, compute_uv=False),
        "preconditioned": np.linalg.svd(P, compute_uv=False),
    }
