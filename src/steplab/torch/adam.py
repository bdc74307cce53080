"""Adam and AdamW: the core's rule on tensors (see steplab.optim.adam and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class Adam(TorchOptimizer):
    """Adam: s ← ρ₁s + (1−ρ₁)ĝ;  r ← ρ₂r + (1−ρ₂)ĝ⊙ĝ;  ŝ = s/(1−ρ₁ᵗ);  r̂ = r/(1−ρ₂ᵗ);
    Δθ = −α·ŝ/√(r̂ + β);  θ ← θ + Δθ.

    ``Adam.like("torch", params)`` is torch.optim.Adam (ε outside the root); ``fused=True``
    runs any configuration (the seed's ε inside the root, AMSGrad, Keras' ε̂, bfloat16) as
    one compiled pass over memory.
    """

    core = optim.Adam


class AdamW(Adam):
    """AdamW: θ ← θ − α·λ·θ before Adam's step (decoupled weight decay)."""

    core = optim.AdamW
