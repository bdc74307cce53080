"""AdaGrad: the core's rule on tensors (see steplab.optim.adagrad and torch.base)."""

from __future__ import annotations

from steplab import optim
from steplab.torch.base import TorchOptimizer


class AdaGrad(TorchOptimizer):
    """AdaGrad: r ← r + ĝ⊙ĝ;  Δθ = −α/(β + √r)⊙ĝ;  θ ← θ + Δθ."""

    core = optim.AdaGrad
