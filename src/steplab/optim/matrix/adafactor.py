"""Adafactor (Shazeer & Stern, 2018): Adam's second moment in rows + columns numbers.

Algorithm 4 of the paper (a weight matrix X of shape m × n; means instead of the paper's sums,
which gives the same V̂)::

    ρ₂ₜ = 1 − t^(−c)                                  the decay grows towards 1
    ρₜ = min(α, 1/√t);   αₜ = max(ε₂, RMS(X))·ρₜ       relative step size
    R ← ρ₂ₜ·R + (1 − ρ₂ₜ)·mean_cols(G² + ε₁)          (m, 1): one number per row
    C ← ρ₂ₜ·C + (1 − ρ₂ₜ)·mean_rows(G² + ε₁)          (1, n): one number per column
    V̂ = R·C / mean(R)                                 rank one, (m, n), never stored
    U = G/√V̂;   Û = U / max(1, RMS(U)/d)               update clipping
    X ← X − αₜ·Û

A vector (a bias) keeps its full second moment V ← ρ₂ₜV + (1 − ρ₂ₜ)(G² + ε₁) instead.

Where the references disagree (steplab's default: the paper, ε₁ = 1e-30, ε₂ = 1e-3, d = 1,
c = 0.8, ρₜ = min(10⁻², 1/√t)):

- ε₁: the paper and optax add it to G² (``eps_root``); torch.optim.Adafactor adds nothing and
  clamps mean(R) at ε and V̂ at ε² instead, ε the dtype's machine epsilon (``eps_floor=None``).
- the step: optax has no relative step (its α is a constant or a schedule; ``learning_rate=None``
  means α = 1: ``relative_step=False``); torch and the paper use min(α, 1/√t).
- which matrices are factored: torch and the paper every matrix; optax only those whose
  smaller side has at least 128 entries (``factor_min_size=128``), others keep a full V.
- the decay ρ₂ₜ: optax computes 1 − t^(−c) in float32, even under x64
  (``decay_in_float32=True``); torch in float64.
- weight decay: torch θ·(1 − αλ) with its α (the cap, not αₜ), before the step (steplab's);
  optax's ``weight_decay_rate`` subtracts λθ unscaled (not provided here).
- momentum: the paper's ρ₁ = 0 (none) and torch has none; ``momentum`` = μ > 0 gives optax's
  ``adafactor(momentum=μ)``: an average of the whole step, M ← μM + (1 − μ)·αₜÛ, θ ← θ − M,
  without bias correction (a full (m, n) array M, the memory Adafactor otherwise saves). optax
  stores M in float32 by default (``dtype_momentum``); steplab in the parameters' dtype.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from steplab.optim.matrix.base import (
    MatrixOptimizer,
    hyper,
    option,
    power,
    rms,
)
from steplab.optim.registry import register


def adafactor_rule(ops, hp, t, theta, g, R=None, C=None, V=None, M=None):
    axes = theta.ndim - 1  # the tensor's own axes (the first holds the configurations)
    if hp.decay_in_float32:  # optax computes ρ₂ₜ in float32, even under x64
        rho2_t = ops.float32(1 - ops.float32(t * 1.0) ** ops.float32(-hp.c))
        one_minus_rho2_t = ops.float32(1 - rho2_t)
    else:
        one_minus_rho2_t = power(ops, t * 1.0, -hp.c)  # 1 − ρ₂ₜ = t^(−c)
    rho_t = ops.minimum(hp.lr, 1 / ops.sqrt(t * 1.0)) if hp.relative_step else hp.lr
    alpha_t = ops.maximum(hp.eps2, rms(ops, theta, axes)) * rho_t if hp.scale_parameter else rho_t
    if np.any(hp.weight_decay):  # (skipped when zero: a pass over θ saved)
        theta = ops.mul_(theta, 1 - hp.lr * hp.weight_decay)  # decoupled weight decay (torch)
    eps_floor = hp.float_eps if hp.eps_floor is None else hp.eps_floor
    if R is not None:  # a matrix: the factored second moment
        # G² once, the step's one new (m, n) array: its row and column means are two fast
        # reductions (a norm of G down its columns, strided, took as long as ~24 element-wise
        # passes at 1024²: docs/matrix.md), and its memory then holds V̂;
        # mean(G² + ε₁) = mean(G²) + ε₁
        G2 = g * g
        R = ops.lerp_(R, ops.mean(G2, (-1,)) + hp.eps_root, one_minus_rho2_t)  # (…, m, 1)
        C = ops.lerp_(C, ops.mean(G2, (-2,)) + hp.eps_root, one_minus_rho2_t)  # (…, 1, n)
        # V̂ = R·C/mean(R), as (R/mean(R))·C: of an (m, 1) and a (1, n) that is the outer
        # product, one multiplication per entry without a matrix product, written over G²
        # (read no more), which the lines below then work in
        V_hat = ops.mul_into_(G2, R / ops.maximum(ops.mean(R, (-2,)), eps_floor), C)
        V_hat = ops.maximum_(V_hat, eps_floor * eps_floor)
    else:  # a vector (or a matrix too small to factor): the full second moment
        V = ops.lerp_(V, g * g + hp.eps_root, one_minus_rho2_t)
        V_hat = ops.maximum(V, eps_floor * eps_floor)  # a new array: V is the state
    U = ops.mul_(ops.rsqrt_(V_hat), g)  # U = G/√V̂ (V̂ clamped at ε² above)
    if hp.clip_update:
        alpha_t = alpha_t / ops.maximum(1.0, rms(ops, U, axes) / hp.d)  # update clipping
    new = {"R": R, "C": C} if R is not None else {"V": V}
    if M is not None:  # optax's momentum: an average of the steps, not debiased
        M = new["M"] = hp.momentum * M + (1 - hp.momentum) * (alpha_t * U)
        theta = theta - M  # apply update: θ − M
    else:
        theta = ops.add_scaled_(theta, -alpha_t, U)  # apply update: θ − α_t·Û (clipping in α_t)
    return theta, new


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Adafactor(MatrixOptimizer):
    """Adafactor: R, C ← row and column means of G² (decay ρ₂ₜ = 1 − t^(−c));
    V̂ = RC/mean(R);  U = G/√V̂ clipped to RMS ≤ d;  X ← X − max(ε₂, RMS(X))·min(α, 1/√t)·U.

    Defaults: the paper (α = 10⁻² as the cap of the relative step, c = 0.8, ε₁ = 1e-30 added to
    G², ε₂ = 1e-3, d = 1, every matrix factored). Presets: ``"torch"`` =
    ``torch.optim.Adafactor`` (ε₁ as a clamp at the dtype's epsilon) and ``"optax"`` =
    ``optax.adafactor()`` (no relative step: α = 1 constant, factored from 128 rows and
    columns, ρ₂ₜ in float32); its ``momentum=μ`` is ours (default 0: none). Vectors (biases)
    keep a full second moment.
    """

    name = "adafactor"
    PRESETS = {
        "torch": {"eps_root": 0.0, "eps_floor": None},
        "optax": {"lr": 1.0, "relative_step": False, "factor_min_size": 128,
                  "decay_in_float32": True},
    }  # fmt: skip
    rule = staticmethod(adafactor_rule)

    lr: float = hyper(1e-2, "(0, inf)", "α: the step size, or the cap of the relative step")
    c: float = hyper(0.8, "(0, inf)", "decay exponent c: ρ₂ₜ = 1 − t^(−c)")
    eps_root: float = hyper(1e-30, "[0, inf)", "ε₁ added to G² (paper, optax)")
    eps2: float = hyper(1e-3, "[0, inf)", "ε₂: the least RMS(X) the step scales with")
    d: float = hyper(1.0, "[1, inf)", "clipping threshold d on RMS(U)")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ (θ·(1 − αλ))")
    momentum: float = hyper(0.0, "[0, 1)", "μ: M ← μM + (1 − μ)αₜÛ, θ ← θ − M (optax's; "
                            "0: none, the paper)")  # fmt: skip
    eps_floor: float | None = option(
        0.0,
        doc="clamp of mean(R) (and its square of V̂); None: the dtype's ε (torch)",
        kind="float_or_none",
    )
    relative_step: bool = option(True, (True, False), "ρₜ = min(α, 1/√t); False: ρₜ = α")
    scale_parameter: bool = option(True, (True, False), "step ∝ max(ε₂, RMS(X))")
    clip_update: bool = option(True, (True, False), "clip RMS(U) to d")
    factor_min_size: int = option(1, doc="factor a matrix if both sides have this many",
                                  kind="int")  # fmt: skip
    decay_in_float32: bool = option(False, (True, False), "ρ₂ₜ rounded to float32 (optax)")

    def factored(self, shape: tuple[int, ...]) -> bool:
        """Whether a tensor of ``shape`` keeps row and column factors (else a full V)."""
        return len(shape) >= 2 and min(shape[-2:]) >= self.factor_min_size

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        self.check_tensor(shape)
        shape = tuple(shape)
        shapes = (
            {"R": shape[:-1] + (1,), "C": shape[:-2] + (1, shape[-1])}
            if self.factored(shape)
            else {"V": shape}
        )
        if np.any(self.momentum):
            shapes["M"] = shape  # the average of the steps
        return shapes


register(Adafactor)  # sl.make("adafactor"), the command line, steplab.torch/jax.matrix
