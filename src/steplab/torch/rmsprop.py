"""RMSProp: the core's rule on tensors (see steplab.optim.rmsprop and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class RMSProp(TorchOptimizer):
    """RMSProp: r ← ρ·r + (1−ρ)·ĝ⊙ĝ;  Δθ = −α/(β + √r)⊙ĝ;  θ ← θ + Δθ.

    ``centered`` divides by β + √(r − m²), m ← ρ·m + (1−ρ)·ĝ; ``momentum`` μ keeps a
    velocity b ← μ·b + ĝ/(β+√r) and steps θ ← θ − α·b (as torch.optim.RMSprop).
    """

    core = optim.RMSProp
