"""Shampoo (Gupta, Koren & Singer, 2018): a left and a right preconditioner for each matrix.

Algorithm 1 of the paper, with the statistics' decay, the every-k roots, grafting and blocks of
the distributed Shampoo (Anil et al., 2020)::

    L ← ρ₂·L + w·G·Gᵀ;   R ← ρ₂·R + w·Gᵀ·G        (m×m and n×n; L₀ = R₀ = εI; w = 1 if ρ₂ = 1)
    every k steps:  L̃ = L^(−1/p),  R̃ = R^(−1/p)   (by eigendecomposition: V·diag(λ^(−1/p))·Vᵀ)
    P = L̃·G·R̃                                      (p = 4: the paper's order-2 exponent)
    grafting: P ← P·‖D‖_F/‖P‖_F, D AdaGrad's step G/(√A + ε_g), A ← A + G⊙G
    θ ← θ − α·P

With ``block_size`` a matrix is cut into blocks of at most ``block_size`` rows and columns,
each with its own L and R. A side longer than ``max_dim`` without blocks is refused (its
preconditioner would hold max_dim² numbers and an eigendecomposition of O(max_dim³)).

Where the references disagree (steplab follows the paper):

- when the roots are recomputed: at steps 1, k+1, 2k+1, …; pytorch_optimizer's Shampoo at
  steps k, 2k, … and steps with zero roots before step k.
- the root: steplab by ``eigh`` (the statistics are symmetric); pytorch_optimizer by an SVD,
  distributed Shampoo by a coupled Newton iteration. The three agree to rounding, amplified
  by the root's slope at the smallest eigenvalue (see docs/matrix.md).
- the eigendecomposition in float32: LAPACK's can fail to converge on badly graded
  statistics; the torch and NumPy tables then retry in float64 (as distributed Shampoo's
  ``retry_double_precision`` and SOAP's reference code; XLA's ``eigh`` returns NaN instead, so
  steplab.jax is not covered). Eigenvalues that rounding puts under the statistics' bound
  ε·ρ₂ᵗ (to 0 or below: an inf or NaN root) are raised to it; distributed Shampoo shifts the
  spectrum to ≥ 0 and adds its ε, pytorch_optimizer's SVD has no guard. In exact arithmetic
  every eigenvalue is at or above the bound: only a step whose rounding crosses it changes.
- momentum: not the paper's; ``momentum`` = μ > 0 gives pytorch_optimizer's, which mixes
  the previous step P₋₁ into the gradient before anything else sees it:
  G ← (1 − μ)·G + μ·P₋₁ (P₋₁ = G at step 1), so the statistics take the mixed G too; P₋₁
  is the step applied (after grafting; pytorch_optimizer has no grafting). Distributed
  Shampoo's Nesterov momentum is not provided.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from steplab.optim.matrix.base import MatrixOptimizer, frobenius_norm, hyper, option, power
from steplab.optim.registry import register

GRAFTS = ("none", "adagrad", "rmsprop")


def blocks(n: int, size: int | None) -> list[tuple[int, int]]:
    """The (start, stop) of each block of one side of length n (one block without a size)."""
    if size is None or size >= n:
        return [(0, n)]
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def statistics_weight(rho2: Any) -> Any:
    """The weight w of G·Gᵀ: 1 where ρ₂ = 1 (sums), else 1 − ρ₂ (averages)."""
    weight = np.where(np.asarray(rho2) == 1.0, 1.0, 1 - np.asarray(rho2))
    return float(weight) if weight.ndim == 0 else weight


def inverse_root(ops, hp, S, floor):
    """S^(−1/p) of a symmetric positive definite S, by its eigendecomposition, its
    eigenvalues raised to ``floor`` at least: S's own lower bound, under which only the
    rounding of ``eigh`` puts them (even to 0 or below, where λ^(−1/p) is inf or NaN)."""
    lam, V = ops.eigh(S)
    lam = ops.maximum(lam[..., None, :], floor)  # (K, 1, n): broadcasts with (K, 1, 1) floors
    return ops.matmul(V * lam ** (-1.0 / hp.root), ops.mT(V))


def shampoo_rule(ops, hp, t, theta, g, **state):
    if np.any(hp.momentum):  # pytorch_optimizer's: G ← (1 − μ)G + μP₋₁, P₋₁ = G at step 1
        previous = ops.cond(t == 1, lambda: g, lambda: state["P"])
        g = g + hp.momentum * (previous - g)  # (a new array: g is the caller's gradient)
    w = statistics_weight(hp.rho2)  # 1: a sum (the paper); else 1 − ρ₂: an average
    floor = hp.eps * power(ops, hp.rho2, t)  # L, R ≥ ε·ρ₂ᵗ·I: L₀ = εI decayed, plus w·G·Gᵀ ≥ 0
    rows, cols = blocks(theta.shape[-2], hp.block_size), blocks(theta.shape[-1], hp.block_size)
    new, P_rows = {}, []
    for i, (r0, r1) in enumerate(rows):
        P_row = []
        for j, (c0, c1) in enumerate(cols):
            b = f"_{i}_{j}" if len(rows) * len(cols) > 1 else ""
            G = g[..., r0:r1, c0:c1]
            L = hp.rho2 * state["L" + b] + w * ops.matmul(G, ops.mT(G))  # left statistics
            R = hp.rho2 * state["R" + b] + w * ops.matmul(ops.mT(G), G)  # right statistics
            L_root, R_root = ops.cond(
                (t - 1) % hp.every == 0,  # every k steps: L^(−1/p), R^(−1/p)
                lambda L=L, R=R: (inverse_root(ops, hp, L, floor), inverse_root(ops, hp, R, floor)),
                lambda b=b: (state["L_root" + b], state["R_root" + b]),
            )
            P_row.append(ops.matmul(ops.matmul(L_root, G), R_root))  # preconditioned step
            new.update({"L" + b: L, "R" + b: R, "L_root" + b: L_root, "R_root" + b: R_root})
        P_rows.append(ops.concat(P_row, -1) if len(P_row) > 1 else P_row[0])
    P = ops.concat(P_rows, -2) if len(P_rows) > 1 else P_rows[0]
    if hp.graft != "none":  # Shampoo's direction, the grafted optimizer's step length
        decay = 1.0 if hp.graft == "adagrad" else hp.graft_rho
        A = decay * state["A"] + (1.0 if hp.graft == "adagrad" else 1 - decay) * g * g
        D = g / (ops.sqrt(A) + hp.graft_eps)
        P = P * (frobenius_norm(ops, D) / ops.maximum(frobenius_norm(ops, P), 1e-30))
        new["A"] = A
    if np.any(hp.momentum):
        new["P"] = P  # the step taken, mixed into the next gradient
    theta = theta - hp.lr * P  # apply update
    return theta, new


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Shampoo(MatrixOptimizer):
    """Shampoo: L ← ρ₂L + GGᵀ;  R ← ρ₂R + GᵀG;  θ ← θ − α·L^(−1/4)·G·R^(−1/4), roots every k
    steps, optionally grafted onto AdaGrad's/RMSProp's step length, optionally in blocks.

    Defaults: the paper (sums, ρ₂ = 1, p = 4, roots every step, ε = 1e-6 as
    pytorch_optimizer's ``matrix_eps``, no grafting, no momentum, α = 1e-3). Preset
    ``"pytorch_optimizer"`` = ``pytorch_optimizer.Shampoo`` with roots every step (its
    ``momentum`` is ours: G ← (1 − μ)G + μ·(previous step)).
    """

    name = "shampoo"
    NEEDS_MATRIX = True
    PRESETS = {"pytorch_optimizer": {}}
    rule = staticmethod(shampoo_rule)

    lr: float = hyper(1e-3, "(0, inf)", "step size α")
    rho2: float = hyper(1.0, "(0, 1]", "decay ρ₂ of the statistics (1: sums, the paper)")
    eps: float = hyper(1e-6, "(0, inf)", "ε: L₀ = εI, R₀ = εI")
    graft_eps: float = hyper(1e-8, "[0, inf)", "ε_g of the grafted AdaGrad/RMSProp step")
    graft_rho: float = hyper(0.999, "[0, 1)", "decay of the RMSProp graft's accumulator")
    momentum: float = hyper(0.0, "[0, 1)", "μ: G ← (1 − μ)G + μ·(previous step), "
                            "pytorch_optimizer's (0: none, the paper)")  # fmt: skip
    root: int = option(4, doc="p of the inverse p-th root (4: the paper's for matrices)",
                       kind="int")  # fmt: skip
    every: int = option(1, doc="recompute the roots every k steps (k)", kind="int")
    graft: str = option("none", GRAFTS, "the step length: Shampoo's own, AdaGrad's, RMSProp's")
    block_size: int | None = option(None, doc="cut sides into blocks of this many (None: no)",
                                    kind="int_or_none")  # fmt: skip
    max_dim: int = option(4096, doc="longest side preconditioned without blocks", kind="int")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.every < 1 or self.root < 1:
            raise ValueError(f"shampoo: every and root must be >= 1, got {self.every}, {self.root}")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"shampoo: block_size must be >= 1 or None, got {self.block_size}")

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        self.check_tensor(shape)
        m, n = shape
        if self.block_size is None and max(m, n) > self.max_dim:
            raise ValueError(
                f"shampoo: a {m}×{n} matrix has a side longer than max_dim={self.max_dim} (its "
                f"preconditioner would be {max(m, n)}×{max(m, n)}); set block_size (e.g. "
                f"block_size={min(1024, self.max_dim)}) to partition it, or raise max_dim"
            )
        rows, cols = blocks(m, self.block_size), blocks(n, self.block_size)
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                b = f"_{i}_{j}" if len(rows) * len(cols) > 1 else ""
                shapes.update({"L" + b: (r1 - r0, r1 - r0), "R" + b: (c1 - c0, c1 - c0),
                               "L_root" + b: (r1 - r0, r1 - r0),
                               "R_root" + b: (c1 - c0, c1 - c0)})  # fmt: skip
        if self.graft != "none":
            shapes["A"] = (m, n)
        if np.any(self.momentum):
            shapes["P"] = (m, n)  # the previous step
        return shapes

    def initial_state(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if name.startswith(("L", "R")) and "root" not in name:
            return self.eps * np.eye(shape[0], dtype=dtype)  # L₀ = R₀ = εI
        return np.zeros(shape, dtype=dtype)


register(Shampoo)  # sl.make("shampoo"), the command line, steplab.torch/jax.matrix
