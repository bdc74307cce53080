"""Adam's relatives on lists of tensors: Adamax, Nadam, RAdam (see steplab.optim.adam_variants)."""

from __future__ import annotations

import math

import torch

from steplab import optim
from steplab.optim.base import bias_correction
from steplab.torch.base import TorchOptimizer, ema_, ema_square_, root


class Adamax(TorchOptimizer):
    """Adamax: s ← ρ₁s + (1−ρ₁)ĝ;  u ← max(ρ₂u, |ĝ| + ε_max);  θ ← θ − α/(1−ρ₁ᵗ)·s/(u + ε)."""

    core = optim.Adamax

    def _init_moments(self, theta, hp):
        return {"s": torch.zeros_like(theta), "u": torch.zeros_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        ema_(state.s, g, hp.rho1)  # biased first moment
        torch._foreach_mul_(state.u, hp.rho2)  # infinity norm: u ← max(ρ₂u, |ĝ| + ε_max)
        magnitude = torch._foreach_abs(g)
        torch._foreach_add_(magnitude, hp.eps_max)
        torch._foreach_maximum_(state.u, magnitude)
        step_size = hp.lr / bias_correction(hp.rho1, state.t)
        denominator = torch._foreach_add(state.u, hp.eps)
        torch._foreach_addcdiv_(theta, state.s, denominator, value=-step_size)


class Nadam(TorchOptimizer):
    """Nadam: Adam with Nesterov momentum and the warming-up schedule μₜ = ρ₁(1 − ½·0.96^(tψ)).

    θ ← θ − α·[(1−μₜ)/(1−Πᵗμ)·ĝ + μₜ₊₁/(1−Πᵗ⁺¹μ)·s] / (√r̂ + ε)  (torch.optim.NAdam).
    """

    core = optim.Nadam
    SCALAR_STATE = ("mu_product",)

    def _init_moments(self, theta, hp):
        return {"s": torch.zeros_like(theta), "r": torch.zeros_like(theta), "mu_product": 1.0}

    @staticmethod
    def _mu(hp, t):
        """Momentum schedule μₜ = ρ₁(1 − ½·0.96^(tψ))."""
        return hp.rho1 * (1 - 0.5 * 0.96 ** (t * hp.momentum_decay))

    def _update(self, theta, g, state, hp):
        state.t += 1
        t = state.t
        mu, mu_next = self._mu(hp, t), self._mu(hp, t + 1)
        state.mu_product = state.mu_product * mu  # Πᵗμ
        ema_(state.s, g, hp.rho1)  # biased first moment
        ema_square_(state.r, g, hp.rho2)  # biased second moment
        denominator = root(state.r, eps=hp.eps, scale=bias_correction(hp.rho2, t))  # √r̂ + ε
        gradient_part = (1 - mu) / (1 - state.mu_product)  # today's gradient ...
        momentum_part = mu_next / (1 - state.mu_product * mu_next)  # ... and tomorrow's s
        torch._foreach_addcdiv_(theta, g, denominator, value=-hp.lr * gradient_part)
        torch._foreach_addcdiv_(theta, state.s, denominator, value=-hp.lr * momentum_part)


class RAdam(TorchOptimizer):
    """RAdam: Adam's step times a rectification once ρₜ > 5, SGD with momentum before."""

    core = optim.RAdam

    def _init_moments(self, theta, hp):
        return {"s": torch.zeros_like(theta), "r": torch.zeros_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        t = state.t
        ema_(state.s, g, hp.rho1)  # biased first moment
        ema_square_(state.r, g, hp.rho2)  # biased second moment
        step_size = hp.lr / bias_correction(hp.rho1, t)  # α·ŝ = α/(1−ρ₁ᵗ)·s
        rho_inf = 2 / (1 - hp.rho2) - 1
        rho_t = rho_inf - 2 * t * hp.rho2**t / bias_correction(hp.rho2, t)
        if rho_t <= 5:  # r̂ averages too few gradients to trust: plain momentum step
            torch._foreach_add_(theta, state.s, alpha=-step_size)
            return
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        rectification = math.sqrt(ratio)
        correction = bias_correction(hp.rho2, t)
        if hp.eps_hat:  # √(1−ρ₂ᵗ)/(√r + ε), torch's form
            denominator = root(state.r, eps=hp.eps)
            step_size *= math.sqrt(correction)
        else:  # 1/(√r̂ + ε)
            denominator = root(state.r, eps=hp.eps, scale=correction)
        torch._foreach_addcdiv_(theta, state.s, denominator, value=-step_size * rectification)
