"""Plain gradient descent and its momentum variants: the core's rules on tensors
(see steplab.optim.sgd and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class SGD(TorchOptimizer):
    """Stochastic gradient descent: θ ← θ − α·ĝ."""

    core = optim.SGD


class Momentum(TorchOptimizer):
    """Heavy-ball momentum: b ← ρ·b + ĝ;  θ ← θ − α·b  (torch.optim.SGD with momentum=ρ)."""

    core = optim.Momentum


class Nesterov(TorchOptimizer):
    """Nesterov momentum: b ← ρ·b + ĝ;  θ ← θ − α·(ĝ + ρ·b)  (torch.optim.SGD nesterov=True)."""

    core = optim.Nesterov
