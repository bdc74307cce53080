"""Adam's relatives, Adamax, Nadam, RAdam: the core's rules on tensors
(see steplab.optim.adam_variants and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class Adamax(TorchOptimizer):
    """Adamax: s ← ρ₁s + (1−ρ₁)ĝ;  u ← max(ρ₂u, |ĝ| + ε_max);  θ ← θ − α/(1−ρ₁ᵗ)·s/(u + ε)."""

    core = optim.Adamax


class Nadam(TorchOptimizer):
    """Nadam: Adam with Nesterov momentum and the warming-up schedule μₜ = ρ₁(1 − ½·0.96^(tψ)).

    θ ← θ − α·[(1−μₜ)/(1−Πᵗμ)·ĝ + μₜ₊₁/(1−Πᵗ⁺¹μ)·s] / (√r̂ + ε)  (torch.optim.NAdam).
    """

    core = optim.Nadam


class RAdam(TorchOptimizer):
    """RAdam: Adam's step times a rectification once ρₜ > 5, SGD with momentum before."""

    core = optim.RAdam
