"""AdaDelta: the core's rule on tensors (see steplab.optim.adadelta and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class AdaDelta(TorchOptimizer):
    """AdaDelta: r ← ρ·r + (1−ρ)·ĝ²;  δ = √(u+ε)/√(r+ε)⊙ĝ;  u ← ρ·u + (1−ρ)·δ²;  θ ← θ − α·δ."""

    core = optim.AdaDelta
