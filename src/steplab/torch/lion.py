"""Lion on lists of tensors (see steplab.optim.lion)."""

from __future__ import annotations

import torch

from steplab import optim
from steplab.torch.base import TorchOptimizer, ema_


class Lion(TorchOptimizer):
    """Lion: c = ρ₁m + (1−ρ₁)ĝ;  θ ← θ − α·(sign(c) + λθ);  m ← ρ₂m + (1−ρ₂)ĝ."""

    core = optim.Lion

    def _init_moments(self, theta, hp):
        return {"m": torch.zeros_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        c = torch._foreach_mul(state.m, hp.rho1)  # interpolate momentum and gradient
        torch._foreach_add_(c, g, alpha=1 - hp.rho1)
        if hp.weight_decay is not None:
            torch._foreach_mul_(theta, 1 - hp.lr * hp.weight_decay)  # decoupled weight decay
        torch._foreach_sign_(c)
        torch._foreach_add_(theta, c, alpha=-hp.lr)  # a step of ±α in every coordinate
        ema_(state.m, g, hp.rho2)  # momentum tracks ĝ
