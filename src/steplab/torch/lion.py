"""Lion: the core's rule on tensors (see steplab.optim.lion and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class Lion(TorchOptimizer):
    """Lion: c = ρ₁m + (1−ρ₁)ĝ;  θ ← θ − α·(sign(c) + λθ);  m ← ρ₂m + (1−ρ₂)ĝ."""

    core = optim.Lion
