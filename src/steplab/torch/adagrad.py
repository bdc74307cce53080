"""AdaGrad on lists of tensors, line for line the seed's pseudo-code (see steplab.optim.adagrad)."""

from __future__ import annotations

import torch

from steplab import optim
from steplab.torch.base import TorchOptimizer, root


class AdaGrad(TorchOptimizer):
    """AdaGrad: r ← r + ĝ⊙ĝ;  Δθ = −α/(β + √r)⊙ĝ;  θ ← θ + Δθ."""

    core = optim.AdaGrad

    def _init_moments(self, theta, hp):
        return {"r": torch.full_like(theta, hp.r0)}  # gradient accumulation variable

    def _update(self, theta, g, state, hp):
        state.t += 1
        torch._foreach_addcmul_(state.r, g, g)  # accumulate squared gradient
        denominator = root(state.r, hp.eps_root, hp.eps)  # β + √r
        torch._foreach_addcdiv_(theta, g, denominator, value=-hp.lr)  # θ ← θ − α·ĝ/(β + √r)
