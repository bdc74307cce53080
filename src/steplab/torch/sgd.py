"""Plain gradient descent and its momentum variants, on lists of tensors (see steplab.optim.sgd)."""

from __future__ import annotations

import torch

from steplab import optim
from steplab.torch.base import TorchOptimizer


class SGD(TorchOptimizer):
    """Stochastic gradient descent: θ ← θ − α·ĝ."""

    core = optim.SGD

    def _update(self, theta, g, state, hp):
        state.t += 1
        torch._foreach_add_(theta, g, alpha=-hp.lr)  # θ ← θ − α·ĝ


class Momentum(TorchOptimizer):
    """Heavy-ball momentum: b ← ρ·b + ĝ;  θ ← θ − α·b  (torch.optim.SGD with momentum=ρ)."""

    core = optim.Momentum

    def _init_moments(self, theta, hp):
        return {"b": torch.zeros_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        torch._foreach_mul_(state.b, hp.rho)  # velocity: decaying sum of past gradients
        torch._foreach_add_(state.b, g)
        torch._foreach_add_(theta, state.b, alpha=-hp.lr)  # apply update


class Nesterov(TorchOptimizer):
    """Nesterov momentum: b ← ρ·b + ĝ;  θ ← θ − α·(ĝ + ρ·b)  (torch.optim.SGD nesterov=True)."""

    core = optim.Nesterov

    def _init_moments(self, theta, hp):
        return {"b": torch.zeros_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        torch._foreach_mul_(state.b, hp.rho)  # velocity
        torch._foreach_add_(state.b, g)
        look_ahead = torch._foreach_add(g, state.b, alpha=hp.rho)
        torch._foreach_add_(theta, look_ahead, alpha=-hp.lr)  # step along the look-ahead
