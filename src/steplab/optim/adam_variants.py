"""Adam's relatives: Adamax (infinity norm), Nadam (Nesterov momentum), RAdam (rectified)."""

from __future__ import annotations

import dataclasses

import numpy as np

from steplab.optim.base import Optimizer, bias_correction, hyper, moment_like


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm.

    s ← ρ₁s + (1−ρ₁)ĝ;  u ← max(ρ₂u, |ĝ| + ε_max);  θ ← θ − α/(1−ρ₁ᵗ)·s/(u + ε).
    u needs no bias correction. Defaults: the paper's α = 0.002, ρ₁ = 0.9, ρ₂ = 0.999;
    ε_max = 1e-8 inside the max (torch, optax) keeps u > 0; Keras adds ε outside instead.
    """

    name = "adamax"
    PRESETS = {
        "torch": {"lr": 2e-3, "eps": 0.0, "eps_max": 1e-8},
        "optax": {"lr": 2e-3, "eps": 0.0, "eps_max": 1e-8},
        "keras": {"lr": 1e-3, "eps": 1e-7, "eps_max": 0.0},
    }

    lr: float = hyper(2e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the infinity norm")
    eps: float = hyper(0.0, "[0, inf)", "constant added to u in the denominator")
    eps_max: float = hyper(1e-8, "[0, inf)", "constant added to |ĝ| inside the max")

    def _init_moments(self, theta, hp):
        return {"s": moment_like(theta), "u": moment_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        state.s[...] = hp.rho1 * state.s + (1 - hp.rho1) * g  # biased first moment
        np.maximum(hp.rho2 * state.u, np.abs(g) + hp.eps_max, out=state.u)  # infinity norm
        step_size = hp.lr / bias_correction(hp.rho1, state.t)
        theta += -step_size * state.s / (state.u + hp.eps)

    def _step_size(self, state, hp):
        return hp.lr / (state.u + hp.eps)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Nadam(Optimizer):
    """Nadam (Dozat, 2016): Adam with Nesterov momentum, as torch.optim.NAdam and Keras.

    μₜ = ρ₁(1 − ½·0.96^(tψ)) is a warming-up momentum schedule, Πμ its running product:
    s ← ρ₁s + (1−ρ₁)ĝ;  r ← ρ₂r + (1−ρ₂)ĝ²;  r̂ = r/(1−ρ₂ᵗ);
    θ ← θ − α·[(1−μₜ)/(1−Πᵗμ)·ĝ + μₜ₊₁/(1−Πᵗ⁺¹μ)·s] / (√r̂ + ε).
    Defaults (torch): α = 0.002, ψ = 0.004, ε = 1e-8 outside the root.
    """

    name = "nadam"
    PRESETS = {
        "torch": {"lr": 2e-3, "eps": 1e-8},
        # Keras 3 computes μₜ with 0.96ᵗ, i.e. ψ = 1 (Keras 2 used ψ = 0.004).
        "keras": {"lr": 1e-3, "eps": 1e-7, "momentum_decay": 1.0},
    }

    lr: float = hyper(2e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(1e-8, "[0, inf)", "constant added outside the square root")
    momentum_decay: float = hyper(4e-3, "[0, inf)", "ψ of the momentum schedule")

    def _init_moments(self, theta, hp):
        return {"s": moment_like(theta), "r": moment_like(theta), "mu_product": 1.0}

    @staticmethod
    def _mu(hp, t):
        """Momentum schedule μₜ = ρ₁(1 − ½·0.96^(tψ)), in float64 whatever theta's dtype."""
        return _f64(hp.rho1) * (1 - 0.5 * 0.96 ** (t * _f64(hp.momentum_decay)))

    def _update(self, theta, g, state, hp):
        state.t += 1
        t = state.t
        mu, mu_next = self._mu(hp, t), self._mu(hp, t + 1)
        state.mu_product = state.mu_product * mu  # Πᵗμ
        state.s[...] = hp.rho1 * state.s + (1 - hp.rho1) * g  # biased first moment
        state.r[...] = hp.rho2 * state.r + (1 - hp.rho2) * g * g  # biased second moment
        denominator = np.sqrt(state.r / bias_correction(hp.rho2, t)) + hp.eps
        gradient_part = (1 - mu) / (1 - state.mu_product)  # today's gradient ...
        momentum_part = mu_next / (1 - state.mu_product * mu_next)  # ... and tomorrow's s
        nesterov_moment = _as(gradient_part, g) * g + _as(momentum_part, g) * state.s
        theta += -hp.lr * nesterov_moment / denominator

    def _step_size(self, state, hp):
        r_hat = state.r / bias_correction(hp.rho2, state.t) if state.t else state.r
        return hp.lr / (np.sqrt(r_hat) + hp.eps)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class RAdam(Optimizer):
    """RAdam (Liu et al., 2020): Adam whose adaptive step is switched on once r̂ is reliable.

    ρ∞ = 2/(1−ρ₂) − 1 and ρₜ = ρ∞ − 2tρ₂ᵗ/(1−ρ₂ᵗ) estimate the length of the moving
    average. While ρₜ ≤ 5 the step is SGD with momentum, θ ← θ − α·ŝ; after that it is
    Adam's step times the rectification √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ)).
    Defaults (torch): α = 1e-3, ε = 1e-8 added to the raw √r (``eps_hat``; optax adds it
    to √r̂).
    """

    name = "radam"
    PRESETS = {
        "torch": {"eps": 1e-8, "eps_hat": True},
        "optax": {"eps": 1e-8, "eps_hat": False},
    }

    lr: float = hyper(1e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(1e-8, "[0, inf)", "constant added outside the square root")
    eps_hat: bool = hyper(True, "bool", "add eps to the raw √r (torch) rather than √r̂")

    def _init_moments(self, theta, hp):
        return {"s": moment_like(theta), "r": moment_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        t = state.t
        state.s[...] = hp.rho1 * state.s + (1 - hp.rho1) * g  # biased first moment
        state.r[...] = hp.rho2 * state.r + (1 - hp.rho2) * g * g  # biased second moment
        s_hat = state.s / bias_correction(hp.rho1, t)
        rho_inf = 2 / (1 - hp.rho2) - 1
        rho_t = rho_inf - 2 * t * hp.rho2**t / bias_correction(hp.rho2, t)
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        rectification = np.sqrt(np.maximum(ratio, 0))
        adaptive = self._adaptive(state, hp)
        # Early on, r̂ averages too few gradients to trust: plain momentum step instead.
        theta += -hp.lr * s_hat * np.where(rho_t > 5, rectification * adaptive, 1)

    def _adaptive(self, state, hp):
        """1/(√r̂ + ε), with ``eps_hat`` √(1−ρ₂ᵗ)/(√r + ε) (torch's form)."""
        correction = bias_correction(hp.rho2, state.t) if state.t else 1.0
        if self.eps_hat:
            return np.sqrt(correction) / (np.sqrt(state.r) + hp.eps)
        return 1 / (np.sqrt(state.r / correction) + hp.eps)

    def _step_size(self, state, hp):
        return hp.lr * self._adaptive(state, hp)


def _f64(value):
    return value.astype(np.float64) if isinstance(value, np.ndarray) else value


def _as(factor, like):
    """A float64 per-configuration factor in ``like``'s dtype (Python floats stay weak)."""
    return factor.astype(like.dtype) if isinstance(factor, np.ndarray) else factor
