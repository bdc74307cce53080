"""AdaDelta on lists of tensors (see steplab.optim.adadelta)."""

from __future__ import annotations

import torch

from steplab import optim
from steplab.torch.base import TorchOptimizer, ema_square_, root


class AdaDelta(TorchOptimizer):
    """AdaDelta: r ← ρ·r + (1−ρ)·ĝ²;  δ = √(u+ε)/√(r+ε)⊙ĝ;  u ← ρ·u + (1−ρ)·δ²;  θ ← θ − α·δ."""

    core = optim.AdaDelta

    def _init_moments(self, theta, hp):
        return {"r": torch.zeros_like(theta), "u": torch.zeros_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        ema_square_(state.r, g, hp.rho)  # squared gradients
        delta = root(state.u, hp.eps_root)  # √(u+ε)
        torch._foreach_div_(delta, root(state.r, hp.eps_root))  # ... / √(r+ε)
        torch._foreach_mul_(delta, g)  # ... ⊙ ĝ
        ema_square_(state.u, delta, hp.rho)  # squared updates
        torch._foreach_add_(theta, delta, alpha=-hp.lr)
