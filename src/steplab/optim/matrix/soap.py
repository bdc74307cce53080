"""SOAP (Vyas et al., 2024): Adam run in the eigenbasis of Shampoo's preconditioner.

The authors' code (github.com/nikhilvyas/SOAP, ``soap.py``), as pytorch_optimizer's SOAP runs
it, for a weight matrix::

    step 1: L ← (1 − ρₛ)·G·Gᵀ;  R ← (1 − ρₛ)·Gᵀ·G;  Q_L, Q_R = eigenvectors (descending)
            (no step is taken: the first gradient only builds the basis)
    step t ≥ 2, s = t − 1:
      G' = Q_Lᵀ·G·Q_R                                  the gradient in the eigenbasis
      M ← ρ₁M + (1 − ρ₁)G                              first moment, in the original basis
      V ← ρ₂V + (1 − ρ₂)G'⊙G'                          second moment, in the eigenbasis
      N = Q_L·[(Q_Lᵀ·M·Q_R) / (√V + ε)]·Q_Rᵀ           Adam's direction, rotated back
      θ ← θ − α·√(1 − ρ₂ˢ)/(1 − ρ₁ˢ)·N;   θ ← θ·(1 − αλ)
      L ← ρₛL + (1 − ρₛ)·G·Gᵀ;   R ← ρₛR + (1 − ρₛ)·Gᵀ·G
      every k steps (s = k, 2k, …): one power iteration and a QR decomposition refresh
      Q_L, Q_R (columns sorted by their estimated eigenvalues, V's rows/columns with them)

Where the references differ: both run the refresh's QR in float32 whatever the parameters'
dtype; steplab in the parameters' dtype (so float64 comparisons hold to 1e-10 until the first
refresh and to float32's precision after it, see docs/matrix.md).

1-D parameters: refused by default (route them to AdamW). ``vectors="adam"`` takes them as
the references do by default (``precondition_1d=False``): Adam in the original basis, within
SOAP's step (no step at t = 1, the same bias correction with s = t − 1, weight decay after),
so that SOAP over every parameter equals pytorch_optimizer's SOAP over every parameter. Not
provided: ``precondition_1d=True`` (a full n×n basis for a vector), ``merge_dims`` (it merges
small axes of tensors, mostly of 3 or more, which steplab's matrix rules do not take),
gradient normalization; a side longer than
``max_dim`` is refused (the references leave it unrotated).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from steplab.optim.matrix.base import MatrixOptimizer, hyper, option, power
from steplab.optim.registry import register


def eigenbasis(ops, S):
    """Eigenvectors of symmetric S, columns by descending eigenvalue."""
    return ops.flip(ops.eigh(S)[1], -1)


def refresh(ops, S, Q, V, axis):
    """One power iteration S·Q and its QR: the new basis, columns sorted by the estimated
    eigenvalues diag(Qᵀ·S·Q) (descending), and V's rows (axis −2) or columns (−1) in that order."""
    P = ops.matmul(S, Q)
    order = ops.argsort(-ops.sum(Q * P, (-2,)))  # (…, 1, n): descending estimated eigenvalues
    V = ops.take(V, ops.mT(order) if axis == -2 else order, axis)
    return ops.qr(ops.take(P, order, -1)), V


def soap_rule(ops, hp, t, theta, g, M, V, L=None, R=None, Q_L=None, Q_R=None):
    if L is None:  # a vector (vectors="adam"): Adam in the original basis, SOAP's step
        return adam_in_soap_step(ops, hp, t, theta, g, M, V)
    rho_s = hp.rho2 if hp.rho_s is None else hp.rho_s

    def first_step():  # statistics and the first eigenbasis, no step
        L1 = rho_s * L + (1 - rho_s) * ops.matmul(g, ops.mT(g))
        R1 = rho_s * R + (1 - rho_s) * ops.matmul(ops.mT(g), g)
        return theta, M, V, L1, R1, eigenbasis(ops, L1), eigenbasis(ops, R1)

    def later_step():
        s = t - 1
        G_rot = ops.matmul(ops.matmul(ops.mT(Q_L), g), Q_R)  # G' = Q_Lᵀ·G·Q_R
        M2 = hp.rho1 * M + (1 - hp.rho1) * g  # first moment (original basis)
        V2 = hp.rho2 * V + (1 - hp.rho2) * G_rot * G_rot  # second moment (eigenbasis)
        M_rot = ops.matmul(ops.matmul(ops.mT(Q_L), M2), Q_R)
        N = ops.matmul(ops.matmul(Q_L, M_rot / (ops.sqrt(V2) + hp.eps)), ops.mT(Q_R))
        step = hp.lr
        if hp.bias_correction:
            step = hp.lr * ops.sqrt(1 - power(ops, hp.rho2, s)) / (1 - power(ops, hp.rho1, s))
        x = theta - step * N  # apply update
        x = x * (1 - hp.lr * hp.weight_decay)  # decoupled weight decay, after (as the authors)
        L2 = rho_s * L + (1 - rho_s) * ops.matmul(g, ops.mT(g))
        R2 = rho_s * R + (1 - rho_s) * ops.matmul(ops.mT(g), g)

        def new_basis():
            QL2, V3 = refresh(ops, L2, Q_L, V2, -2)
            QR2, V3 = refresh(ops, R2, Q_R, V3, -1)
            return QL2, QR2, V3

        QL2, QR2, V3 = ops.cond(s % hp.every == 0, new_basis, lambda: (Q_L, Q_R, V2))
        return x, M2, V3, L2, R2, QL2, QR2

    theta, M, V, L, R, Q_L, Q_R = ops.cond(t == 1, first_step, later_step)
    return theta, {"M": M, "V": V, "L": L, "R": R, "Q_L": Q_L, "Q_R": Q_R}


def adam_in_soap_step(ops, hp, t, theta, g, M, V):
    """What the references do with a vector: SOAP's step with the identity as the basis."""

    def later_step():
        s = t - 1
        M2 = hp.rho1 * M + (1 - hp.rho1) * g  # first moment
        V2 = hp.rho2 * V + (1 - hp.rho2) * g * g  # second moment
        step = hp.lr
        if hp.bias_correction:
            step = hp.lr * ops.sqrt(1 - power(ops, hp.rho2, s)) / (1 - power(ops, hp.rho1, s))
        x = theta - step * (M2 / (ops.sqrt(V2) + hp.eps))  # apply update
        return x * (1 - hp.lr * hp.weight_decay), M2, V2  # decoupled weight decay, after

    theta, M, V = ops.cond(t == 1, lambda: (theta, M, V), later_step)  # step 1: no step
    return theta, {"M": M, "V": V}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SOAP(MatrixOptimizer):
    """SOAP: Adam (ρ₁, ρ₂, ε, bias correction) in the eigenbasis Q_L, Q_R of Shampoo's
    statistics L, R (decay ρₛ, default ρ₂), refreshed every k steps; 2-D weights (and with
    ``vectors="adam"`` 1-D ones, in Adam's way, as the references).

    Defaults: the authors' (α = 3e-3, ρ₁ = ρ₂ = 0.95, ε = 1e-8, λ = 0.01, k = 10), which
    pytorch_optimizer's SOAP shares (preset ``"pytorch_optimizer"``).
    """

    name = "soap"
    NEEDS_MATRIX = True
    PRESETS = {"pytorch_optimizer": {}}
    rule = staticmethod(soap_rule)

    lr: float = hyper(3e-3, "(0, inf)", "step size α")
    rho1: float = hyper(0.95, "[0, 1)", "decay ρ₁ of the first moment")
    rho2: float = hyper(0.95, "[0, 1)", "decay ρ₂ of the second moment")
    eps: float = hyper(1e-8, "[0, inf)", "ε added to √V")
    weight_decay: float = hyper(0.01, "[0, inf)", "decoupled weight decay λ, after the step")
    rho_s: float | None = option(None, doc="decay ρₛ of L and R (None: ρ₂)", kind="float_or_none")
    every: int = option(10, doc="refresh the eigenbasis every k steps (k)", kind="int")
    bias_correction: bool = option(True, (True, False), "Adam's bias correction")
    max_dim: int = option(10000, doc="longest side with an eigenbasis", kind="int")
    vectors: str = option(
        "refuse",
        ("refuse", "adam"),
        "1-D: refused, or Adam within SOAP's step (pytorch_optimizer's)",
    )

    def check_tensor(self, shape: tuple[int, ...], name: str = "theta") -> None:
        if not (self.vectors == "adam" and len(shape) == 1):
            super().check_tensor(shape, name)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.every < 1:
            raise ValueError(f"soap: every must be >= 1, got {self.every}")
        if self.rho_s is not None and not 0 <= self.rho_s < 1:
            raise ValueError(f"soap: rho_s must be in [0, 1) or None, got {self.rho_s}")

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        self.check_tensor(shape)
        if len(shape) == 1:  # vectors="adam"
            return {"M": tuple(shape), "V": tuple(shape)}
        m, n = shape
        if max(m, n) > self.max_dim:
            raise ValueError(
                f"soap: a {m}×{n} matrix has a side longer than max_dim={self.max_dim} (its "
                f"eigenbasis would be {max(m, n)}×{max(m, n)}); raise max_dim, or route it to "
                "Adafactor or AdamW"
            )
        return {"M": (m, n), "V": (m, n), "L": (m, m), "R": (n, n), "Q_L": (m, m), "Q_R": (n, n)}

    def initial_state(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)


register(SOAP)  # sl.make("soap"), the command line, steplab.torch/jax.matrix
