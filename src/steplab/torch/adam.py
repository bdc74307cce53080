"""Adam and AdamW on lists of tensors, line for line the seed's pseudo-code
(see steplab.optim.adam)."""

from __future__ import annotations

import math

import torch

from steplab import optim
from steplab.optim.base import bias_correction
from steplab.torch.base import TorchOptimizer, ema_, ema_square_, root


class Adam(TorchOptimizer):
    """Adam: s ← ρ₁s + (1−ρ₁)ĝ;  r ← ρ₂r + (1−ρ₂)ĝ⊙ĝ;  ŝ = s/(1−ρ₁ᵗ);  r̂ = r/(1−ρ₂ᵗ);
    Δθ = −α·ŝ/√(r̂ + β);  θ ← θ + Δθ.

    ``Adam.like("torch", params)`` is torch.optim.Adam (ε outside the root).
    """

    core = optim.Adam

    def _init_moments(self, theta, hp):
        moments = {"s": torch.zeros_like(theta), "r": torch.zeros_like(theta)}
        if hp.amsgrad:
            moments["r_max"] = torch.zeros_like(theta)
        return moments

    def _update(self, theta, g, state, hp):
        self._decay_weights(theta, hp)
        state.t += 1
        ema_(state.s, g, hp.rho1)  # biased first moment
        ema_square_(state.r, g, hp.rho2)  # biased second moment
        r = state.r
        if hp.amsgrad:
            torch._foreach_maximum_(state.r_max, state.r)  # AMSGrad: r never shrinks
            r = state.r_max
        # correct bias in both moments: ŝ = s/(1−ρ₁ᵗ) (folded into the step), r̂ = r/(1−ρ₂ᵗ)
        c1, c2 = (
            (bias_correction(hp.rho1, state.t), bias_correction(hp.rho2, state.t))
            if hp.bias_correction
            else (1.0, 1.0)
        )
        # Keras' ε̂: eps added to the raw √r is eps/√(1−ρ₂ᵗ) added to √r̂ (as the core)
        eps = hp.eps / math.sqrt(bias_correction(hp.rho2, state.t)) if hp.eps_hat else hp.eps
        denominator = root(r, hp.eps_root, eps, scale=c2)  # eps + √(r̂ + β)
        torch._foreach_addcdiv_(theta, state.s, denominator, value=-hp.lr / c1)  # apply update

    def _decay_weights(self, theta, hp):
        """Adam applies weight decay as L2 (in the gradient); AdamW overrides this."""


class AdamW(Adam):
    """AdamW: θ ← θ − α·λ·θ before Adam's step (decoupled weight decay)."""

    core = optim.AdamW

    def _decay_weights(self, theta, hp):
        if hp.weight_decay is not None:
            torch._foreach_mul_(theta, 1 - hp.lr * hp.weight_decay)  # decoupled weight decay
