"""Adam and AdamW on lists of tensors, line for line the seed's pseudo-code
(see steplab.optim.adam)."""

from __future__ import annotations

import math

import torch

from steplab import optim
from steplab.optim.base import bias_correction
from steplab.torch.base import TorchOptimizer, ema_, ema_square_, root


class Adam(TorchOptimizer):
    """Adam: s ← ρ₁s + (1−ρ₁)ĝ;  r ← ρ₂r + (1−ρ₂)ĝ⊙ĝ;  ŝ = s/(1−ρ₁ᵗ);  r̂ = r/(1−ρ₂ᵗ);
    Δθ = −α·ŝ/√(r̂ + β);  θ ← θ + Δθ.

    ``Adam.like("torch", params)`` is torch.optim.Adam (ε outside the root); with
    ``fused=True`` the step runs in torch's fused kernel (torch conventions only:
    ``eps_root=0``, ``eps_hat=False``, bias correction on; float32/float64 parameters).
    """

    core = optim.Adam
    OPTIONS = {**TorchOptimizer.OPTIONS, "fused": False}

    def _check_group(self, group):
        if not group["fused"]:
            return
        if group["eps_root"] or group["eps_hat"] or not group["bias_correction"]:
            raise ValueError(
                f"{type(self).__name__}(fused=True) runs torch's fused kernel, which computes "
                "ŝ/(√r̂ + eps): it needs eps_root=0, eps_hat=False, bias_correction=True "
                f"(e.g. {type(self).__name__}.like('torch', params, fused=True))"
            )
        low = [p.dtype for p in group["params"] if p.dtype in (torch.bfloat16, torch.float16)]
        if low:
            raise ValueError(
                f"{type(self).__name__}(fused=True) needs float32/float64 parameters (it would "
                f"keep the state in {low[0]}); use fused=False, which keeps it in float32"
            )

    def _init_moments(self, theta, hp):
        moments = {"s": torch.zeros_like(theta), "r": torch.zeros_like(theta)}
        if hp.amsgrad:
            moments["r_max"] = torch.zeros_like(theta)
        return moments

    def _update(self, theta, g, state, hp):
        if hp.fused:
            self._fused_update(theta, g, state, hp)
            return
        self._decay_weights(theta, hp)
        state.t += 1
        ema_(state.s, g, hp.rho1)  # biased first moment
        ema_square_(state.r, g, hp.rho2)  # biased second moment
        r = state.r
        if hp.amsgrad:
            torch._foreach_maximum_(state.r_max, state.r)  # AMSGrad: r never shrinks
            r = state.r_max
        # correct bias in both moments: ŝ = s/(1−ρ₁ᵗ) (folded into the step), r̂ = r/(1−ρ₂ᵗ)
        c1, c2 = (
            (bias_correction(hp.rho1, state.t), bias_correction(hp.rho2, state.t))
            if hp.bias_correction
            else (1.0, 1.0)
        )
        # Keras' ε̂: eps added to the raw √r is eps/√(1−ρ₂ᵗ) added to √r̂ (as the core)
        eps = hp.eps / math.sqrt(bias_correction(hp.rho2, state.t)) if hp.eps_hat else hp.eps
        denominator = root(r, hp.eps_root, eps, scale=c2)  # eps + √(r̂ + β)
        torch._foreach_addcdiv_(theta, state.s, denominator, value=-hp.lr / c1)  # apply update

    def _fused_update(self, theta, g, state, hp):
        """The same step by torch's fused Adam/AdamW kernel (one pass over memory).

        ĝ already holds ``maximize`` and Adam's L2 term, so the kernel gets neither;
        AdamW's decoupled decay is the kernel's own ``weight_decay``.
        """
        state.t += 1
        step = torch.full((), float(state.t), dtype=torch.float32, device=theta[0].device)
        decoupled = self.core.DECOUPLED_WEIGHT_DECAY
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        kernel(
            theta,
            g,
            state.s,
            state.r,
            state.r_max if hp.amsgrad else [],
            [step] * len(theta),
            amsgrad=hp.amsgrad,
            lr=hp.lr,
            beta1=hp.rho1,
            beta2=hp.rho2,
            weight_decay=(hp.weight_decay or 0.0) if decoupled else 0.0,
            eps=hp.eps,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    def _decay_weights(self, theta, hp):
        """Adam applies weight decay as L2 (in the gradient); AdamW overrides this."""


class AdamW(Adam):
    """AdamW: θ ← θ − α·λ·θ before Adam's step (decoupled weight decay)."""

    core = optim.AdamW

    def _decay_weights(self, theta, hp):
        if hp.weight_decay is not None:
            torch._foreach_mul_(theta, 1 - hp.lr * hp.weight_decay)  # decoupled weight decay
