"""Adam (Kingma & Ba, 2015), exactly as the seed's pseudo-code, and AdamW.

Adam keeps exponentially decaying averages of past gradients (first moment s) and of
past squared gradients (second moment r): RMSProp plus momentum. Both start at zero,
so early on they are biased towards zero; dividing by 1 − ρᵗ removes that bias
(the seed's derivation: E[s⁽ᵗ⁾] = E[ĝ⁽ᵗ⁾]·(1 − ρ₁ᵗ) + ζ).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from steplab.optim.base import Optimizer, bias_correction, hyper, moment_like


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

    lr: float = hyper(1e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(0.0, "[0, inf)", "constant added outside the square root")
    eps_root: float = hyper(1e-8, "[0, inf)", "β added inside the square root")
    bias_correction: bool = hyper(True, "bool", "divide the moments by 1 − ρᵗ")
    amsgrad: bool = hyper(False, "bool", "use the running maximum of r (AMSGrad)")
    eps_hat: bool = hyper(False, "bool", "add eps to √r before bias correction (Keras)")

    def _init_moments(self, theta, hp):
        moments = {"s": moment_like(theta), "r": moment_like(theta)}  # 1st and 2nd moment
        if self.amsgrad:
            moments["r_max"] = moment_like(theta)
        return moments

    def _update(self, theta, g, state, hp):
        self._decay_weights(theta, hp)
        state.t += 1
        state.s[...] = hp.rho1 * state.s + (1 - hp.rho1) * g  # biased first moment
        state.r[...] = hp.rho2 * state.r + (1 - hp.rho2) * g * g  # biased second moment
        if self.amsgrad:
            np.maximum(state.r_max, state.r, out=state.r_max)  # AMSGrad: r never shrinks
        s_hat, r_hat = self._corrected_moments(state, hp)  # correct bias in both moments
        delta = -hp.lr * s_hat / (self._eps(state, hp) + np.sqrt(r_hat + hp.eps_root))
        theta += delta  # apply update

    def _corrected_moments(self, state, hp):
        """ŝ = s/(1−ρ₁ᵗ) and r̂ = r/(1−ρ₂ᵗ) (r_max with AMSGrad; raw with correction off)."""
        r = state.r_max if self.amsgrad else state.r
        if not self.bias_correction or state.t == 0:
            return state.s, r
        return state.s / bias_correction(hp.rho1, state.t), r / bias_correction(hp.rho2, state.t)

    def _eps(self, state, hp):
        """``eps``, or with ``eps_hat`` Kingma & Ba's ε̂: eps added to √r, i.e. eps/√(1−ρ₂ᵗ)
        added to √r̂."""
        if self.eps_hat and state.t > 0:
            return hp.eps / np.sqrt(bias_correction(hp.rho2, state.t))
        return hp.eps

    def _decay_weights(self, theta, hp):
        """Adam applies weight decay as L2 (in the gradient); AdamW overrides this."""

    def _step_size(self, state, hp):
        _, r_hat = self._corrected_moments(state, hp)
        return hp.lr / (self._eps(state, hp) + np.sqrt(r_hat + hp.eps_root))


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

    def _decay_weights(self, theta, hp):
        if hp.weight_decay is not None:
            theta *= 1 - hp.lr * hp.weight_decay  # decoupled weight decay
