"""RMSProp on lists of tensors, line for line the seed's pseudo-code (see steplab.optim.rmsprop)."""

from __future__ import annotations

import torch

from steplab import optim
from steplab.torch.base import TorchOptimizer, ema_, ema_square_, root


class RMSProp(TorchOptimizer):
    """RMSProp: r ← ρ·r + (1−ρ)·ĝ⊙ĝ;  Δθ = −α/(β + √r)⊙ĝ;  θ ← θ + Δθ.

    ``centered`` divides by β + √(r − m²), m ← ρ·m + (1−ρ)·ĝ; ``momentum`` μ keeps a
    velocity b ← μ·b + ĝ/(β+√r) and steps θ ← θ − α·b (as torch.optim.RMSprop).
    """

    core = optim.RMSProp

    def _init_moments(self, theta, hp):
        moments = {"r": torch.full_like(theta, hp.r0)}  # gradient accumulation variable
        if hp.centered:
            moments["m"] = torch.zeros_like(theta)  # moving average of the gradient
        if hp.momentum is not None:
            moments["b"] = torch.zeros_like(theta)  # velocity
        return moments

    def _update(self, theta, g, state, hp):
        state.t += 1
        ema_square_(state.r, g, hp.rho)  # accumulate squared gradient
        if hp.centered:
            ema_(state.m, g, hp.rho)
            variance = torch._foreach_addcmul(state.r, state.m, state.m, value=-1)  # r − m²
            denominator = root(variance, hp.eps_root, hp.eps)
        else:
            denominator = root(state.r, hp.eps_root, hp.eps)  # β + √r
        if hp.momentum is None:
            torch._foreach_addcdiv_(theta, g, denominator, value=-hp.lr)  # θ ← θ − α·ĝ/(β+√r)
            return
        torch._foreach_mul_(state.b, hp.momentum)  # b ← μ·b + ĝ/(β+√r)
        torch._foreach_addcdiv_(state.b, g, denominator)
        torch._foreach_add_(theta, state.b, alpha=-hp.lr)
