"""Adam (Kingma & Ba, 2015), exactly as the seed's pseudo-code, and AdamW.

Adam keeps exponentially decaying averages of past gradients (first moment s) and of
past squared gradients (second moment r): RMSProp plus momentum. Both start at zero,
so early on they are biased towards zero; dividing by 1 − ρᵗ removes that bias
(the seed's derivation: E[s⁽ᵗ⁾] = E[ĝ⁽ᵗ⁾]·(1 − ρ₁ᵗ) + ζ).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from steplab.optim.base import Optimizer, bias_correction, hyper


class AdamState(NamedTuple):
    t: int  # steps taken
    s: Any  # biased first moment
    r: Any  # biased second moment
    r_max: Any = None  # running maximum of r (AMSGrad only)


def adam_step_scalars(ops, hp, t, state):
    """This step's bias corrections as factors 1/(1 − ρ₁ᵗ) and 1/(1 − ρ₂ᵗ) (1 without
    correction), and the ε added outside the root (with eps_hat Kingma & Ba's ε̂: eps added
    to √r, i.e. eps/√(1−ρ₂ᵗ) added to √r̂)."""
    corrections = hp.bias_correction
    return {
        "correct1": 1 / bias_correction(hp.rho1, t, ops) if corrections else 1.0,
        "correct2": 1 / bias_correction(hp.rho2, t, ops) if corrections else 1.0,
        "eps_t": hp.eps / ops.sqrt(bias_correction(hp.rho2, t, ops)) if hp.eps_hat else hp.eps,
    }


def adam_rule(ops, hp, theta, g, s, r, r_max):
    s = hp.rho1 * s + (1 - hp.rho1) * g  # biased first moment
    r = hp.rho2 * r + (1 - hp.rho2) * g * g  # biased second moment
    r_max = ops.maximum(r_max, r) if hp.amsgrad else r  # AMSGrad: r never shrinks
    # Correct bias: ŝ = s/(1−ρ₁ᵗ), r̂ = r/(1−ρ₂ᵗ), as products with this step's factors
    # (one division per coordinate instead of three: within an ulp, and on every path)
    s_hat = s * hp.correct1  # correct bias in first moment
    r_hat = r_max * hp.correct2  # correct bias in second moment
    delta = -hp.lr * s_hat / (hp.eps_t + ops.sqrt(r_hat + hp.eps_root))  # compute update
    theta = theta + delta  # apply update
    return theta, s, r, r_max


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Adam(Optimizer):
    """Adam: s ← ρ₁s + (1−ρ₁)ĝ;  r ← ρ₂r + (1−ρ₂)ĝ⊙ĝ;  ŝ = s/(1−ρ₁ᵗ);  r̂ = r/(1−ρ₂ᵗ);
    Δθ = −α·ŝ/√(r̂ + β);  θ ← θ + Δθ.

    Seed defaults: α = 0.001, ρ₁ = 0.9, ρ₂ = 0.999, β = 1e-8 *inside* the root
    (``eps_root``), bias correction on. torch/optax add ε = 1e-8 *outside* the root
    instead (``eps``). ``eps_hat`` adds ``eps`` to the uncorrected √r — Kingma & Ba's
    ε̂ = ε·√(1−ρ₂ᵗ), which Keras uses. ``amsgrad`` (Reddi et al., 2018) divides by the
    running maximum of r instead of r (as torch and Keras: the max of the raw r).
    """

    name = "adam"
    PRESETS = {
        "torch": {"eps": 1e-8, "eps_root": 0.0},
        "optax": {"eps": 1e-8, "eps_root": 0.0},
        "keras": {"eps": 1e-7, "eps_root": 0.0, "eps_hat": True},
    }
    state_type = AdamState
    rule = staticmethod(adam_rule)
    step_scalars = staticmethod(adam_step_scalars)

    lr: float = hyper(1e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(0.0, "[0, inf)", "constant added outside the square root")
    eps_root: float = hyper(1e-8, "[0, inf)", "β added inside the square root")
    bias_correction: bool = hyper(True, "bool", "divide the moments by 1 − ρᵗ")
    amsgrad: bool = hyper(False, "bool", "use the running maximum of r (AMSGrad)")
    eps_hat: bool = hyper(False, "bool", "add eps to √r before bias correction (Keras)")

    def kept_moments(self, hp):
        return ("s", "r", "r_max") if self.amsgrad else ("s", "r")

    def _step_size(self, hp, state):
        r_hat = (state.r_max if self.amsgrad else state.r) * hp.correct2
        return hp.lr / (hp.eps_t + np.sqrt(r_hat + hp.eps_root))


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    θ ← θ − α·λ·θ before Adam's step, instead of adding λ·θ to the gradient, so the
    decay is not rescaled by Adam's per-coordinate step sizes. Default λ = 0.01 (torch).
    """

    name = "adamw"
    PRESETS = {
        "torch": {"eps": 1e-8, "eps_root": 0.0, "weight_decay": 1e-2},
        "optax": {"eps": 1e-8, "eps_root": 0.0, "weight_decay": 1e-4},
        "keras": {"eps": 1e-7, "eps_root": 0.0, "eps_hat": True, "weight_decay": 4e-3},
    }
    DECOUPLED_WEIGHT_DECAY = True

    weight_decay: float = hyper(1e-2, "[0, inf)", "decoupled weight decay λ")
