"""Muon (Jordan et al., 2024): momentum, orthogonalized by a Newton–Schulz iteration.

The pseudo-code of Keller Jordan's post and repository (github.com/KellerJordan/Muon,
``muon.py``), as torch.optim.Muon and optax.contrib.muon run it::

    B ← ρ·B + (1 − ρ)·G                       momentum, an average of gradients
    M = (1 − ρ)·G + ρ·B   (Nesterov)  or  B
    O = NewtonSchulz₅(M)                      ≈ U·Vᵀ for M = U·S·Vᵀ: every singular value ≈ 1
    θ ← θ·(1 − α·λ) − α·s(m, n)·O             decoupled weight decay, shape scale s

Newton–Schulz: X = M/‖M‖_F (transposed when m > n, so that X·Xᵀ is the smaller Gram
matrix), then ``ns_steps`` times A = X·Xᵀ, X ← a·X + (b·A + c·A·A)·X with the quintic's
coefficients (a, b, c) = (3.4445, −4.7750, 2.0315): they push small singular values up fast
and leave the large ones in [0.7, 1.2] rather than at exactly 1. A and b·A + c·A·A are
symmetric (A·A = A·Aᵀ): ``ops.gram``/``ops.add_gram`` let the torch table compute each of
their off-diagonal blocks once: two of the iteration's three products with 75 % (1024 rows)
to 56 % (4096 rows) of the multiplications.

Where the references disagree (steplab's default: Keller Jordan's code):

- momentum: all three codes keep an average (``lerp``), not the sum B ← μB + G that the
  post and torch's docstring write; the orthogonalization removes the scale, so only the
  ε and Nesterov's weighting see the difference.
- bias correction: optax divides B by 1 − ρᵗ⁺¹ and G by 1 − ρᵗ before the Nesterov mix
  (``bias_correction=True``); torch and Keller do not.
- ε: Keller adds 1e-7 to ‖M‖ (``eps``); torch clamps ‖M‖ at 1e-7 (``norm_floor``); optax
  adds 1e-8.
- shape scale: √max(1, rows/cols) in torch and Keller (weights stored (out, in));
  √max(1, cols/rows) in optax (weights stored (in, out)): both are √max(1, fan_out/fan_in).
  ``"match_rms"`` is Moonshot's 0.2·√max(m, n) (torch ``match_rms_adamw``, optax
  ``consistent_rms=0.2``).
- precision: Keller and torch.optim.Muon run the iteration in bfloat16; optax and steplab in
  the parameters' dtype (so a float64 run is a float64 run); ``ns_dtype="bfloat16"`` gives
  Keller's and torch's precision (and speed: bfloat16 products run twice as fast on a CPU with
  AVX-512 BF16) on the torch and JAX paths (NumPy has no bfloat16).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from steplab.optim.matrix.base import (
    MatrixOptimizer,
    frobenius_norm,
    hyper,
    option,
    power,
    shape_factor,
)
from steplab.optim.registry import register

SCALES = ("rows/cols", "cols/rows", "match_rms", "none")


def newton_schulz(ops, hp, M):
    """The orthogonalization: ``hp.ns_steps`` quintic steps on M/‖M‖ (batched (K, m, n))."""
    tall = M.shape[-2] > M.shape[-1]
    X = ops.mT(M) if tall else M  # the Gram matrix X·Xᵀ of the short side
    if hp.ns_dtype != "param":  # Keller Jordan's and torch's bfloat16: twice the matmul speed
        X = ops.cast(X, hp.ns_dtype)
    X = X / (ops.maximum(frobenius_norm(ops, X), hp.norm_floor) + hp.eps)
    for _ in range(hp.ns_steps):
        A = ops.gram(X)  # X·Xᵀ
        B = ops.add_gram(A, A, hp.ns_b, hp.ns_c)  # b·A + c·A·A (= c·A·Aᵀ: A is symmetric)
        X = ops.addmm(X, B, X, hp.ns_a, 1.0)  # a·X + B·X
    X = ops.mT(X) if tall else X
    return X if hp.ns_dtype == "param" else ops.cast(X, M)


def muon_rule(ops, hp, t, theta, g, B):
    B = ops.lerp_(B, g, 1 - hp.rho)  # B ← ρ·B + (1 − ρ)·G: momentum, an average of gradients
    if hp.bias_correction:  # optax: both terms unbiased, B one step ahead
        B_hat = B / (1 - power(ops, hp.rho, t + 1))
        g_hat = g / (1 - power(ops, hp.rho, t))
    else:
        B_hat, g_hat = B, g
    M = ops.lerp(g_hat, B_hat, hp.rho) if hp.nesterov else B_hat  # (1 − ρ)·G + ρ·B: Nesterov
    O = newton_schulz(ops, hp, M)  # ≈ U·Vᵀ: the update's singular values near 1
    if np.any(hp.weight_decay):  # (skipped when zero: a pass over θ saved)
        theta = ops.mul_(theta, 1 - hp.lr * hp.weight_decay)  # decoupled weight decay
    s = shape_factor(hp.scale, theta.shape[-2], theta.shape[-1])
    theta = ops.add_scaled_(theta, -(hp.lr * s), O)  # apply update: θ − α·s·O
    return theta, {"B": B}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Muon(MatrixOptimizer):
    """Muon: B ← ρB + (1−ρ)G;  M = (1−ρ)G + ρB;  O = NewtonSchulz₅(M);
    θ ← θ(1 − αλ) − α·s(m, n)·O.  For 2-D weights only (route the rest to AdamW).

    Defaults: Keller Jordan's ``Muon`` (α = 0.02, ρ = 0.95, Nesterov, 5 steps, ε = 1e-7 added
    to the norm, λ = 0). Presets: ``"torch"`` = ``torch.optim.Muon`` (α = 1e-3, λ = 0.1, the
    norm clamped at 1e-7; the iteration in the parameters' dtype, not bfloat16) and
    ``"optax"`` = ``optax.contrib.muon`` (bias correction, ε = 1e-8, the (in, out) scale).
    ``like("torch", ns_dtype="bfloat16")`` is torch.optim.Muon as shipped, bfloat16 iteration
    and all: equal bit for bit on float32 weights (tests/optim/test_matrix_references.py).
    """

    name = "muon"
    NEEDS_MATRIX = True
    PRESETS = {
        "torch": {"lr": 1e-3, "weight_decay": 0.1, "eps": 0.0, "norm_floor": 1e-7},
        "optax": {"eps": 1e-8, "bias_correction": True, "scale": "cols/rows"},
    }
    rule = staticmethod(muon_rule)

    lr: float = hyper(0.02, "(0, inf)", "step size α")
    rho: float = hyper(0.95, "[0, 1)", "momentum ρ")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ (θ·(1 − αλ))")
    eps: float = hyper(1e-7, "[0, inf)", "added to ‖M‖_F before dividing")
    norm_floor: float = hyper(0.0, "[0, inf)", "‖M‖_F clamped at least to this (torch)")
    ns_a: float = hyper(3.4445, "(-inf, inf)", "Newton–Schulz coefficient a")
    ns_b: float = hyper(-4.7750, "(-inf, inf)", "Newton–Schulz coefficient b")
    ns_c: float = hyper(2.0315, "(-inf, inf)", "Newton–Schulz coefficient c")
    ns_steps: int = option(5, doc="Newton–Schulz iterations", kind="int")
    nesterov: bool = option(True, (True, False), "orthogonalize (1−ρ)G + ρB instead of B")
    bias_correction: bool = option(False, (True, False), "divide by 1 − ρᵗ (optax)")
    scale: str = option("rows/cols", SCALES, "shape scale s(m, n) of the update")
    ns_dtype: str = option("param", ("param", "bfloat16"),
                           "Newton–Schulz in the parameters' dtype, or in bfloat16 as Keller "
                           "Jordan and torch.optim.Muon (torch and JAX paths)")  # fmt: skip

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        self.check_tensor(shape)
        return {"B": tuple(shape)}

    def orthogonalize(self, M: Any) -> Any:
        """NewtonSchulz₅(M) of one NumPy matrix (what a step applies), for figures."""
        from steplab.optim.matrix.ops import NUMPY_MATRIX_OPS

        hp = self.hyper_values(2)
        return newton_schulz(NUMPY_MATRIX_OPS, hp, np.asarray(M, dtype=np.float64)[None])[0]


register(Muon)  # sl.make("muon"), the command line, steplab.torch/jax.matrix
