"""Adam's relatives: Adamax (infinity norm), Nadam (Nesterov momentum), RAdam (rectified)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from steplab.optim.base import Optimizer, bias_correction, hyper

# --------------------------------------------------------------------------------------
# Adamax
# --------------------------------------------------------------------------------------


class AdamaxState(NamedTuple):
    t: int  # steps taken
    s: Any  # biased first moment
    u: Any  # exponentially weighted infinity norm


def adamax_step_scalars(ops, hp, t, state):
    return {"correct1": 1 / bias_correction(hp.rho1, t, ops)}  # 1/(1 − ρ₁ᵗ)


def adamax_rule(ops, hp, theta, g, s, u):
    s = hp.rho1 * s + (1 - hp.rho1) * g  # biased first moment
    u = ops.maximum(hp.rho2 * u, ops.abs(g) + hp.eps_max)  # infinity norm
    # α/(1 − ρ₁ᵗ) as a product with this step's factor, as in Adam: a division per
    # coordinate is the slowest operation of a step (u needs no bias correction)
    step_size = hp.lr * hp.correct1
    theta = theta + -step_size * s / (u + hp.eps)
    return theta, s, u


# --------------------------------------------------------------------------------------
# Nadam
# --------------------------------------------------------------------------------------


class NadamState(NamedTuple):
    t: int  # steps taken
    mu_product: Any  # Πᵗμ, the running product of the momentum schedule
    s: Any  # biased first moment
    r: Any  # biased second moment


def nadam_step_scalars(ops, hp, t, state):
    """Momentum schedule μₜ = ρ₁(1 − ½·0.96^(tψ)), its running product and the weights of
    today's gradient and tomorrow's momentum; 1 − ρ₂ᵗ."""
    mu = hp.rho1 * (1 - 0.5 * ops.pow(0.96, t * hp.momentum_decay))
    mu_next = hp.rho1 * (1 - 0.5 * ops.pow(0.96, (t + 1) * hp.momentum_decay))
    mu_product = state.mu_product * mu  # Πᵗμ
    return {
        "mu_product": mu_product,
        "gradient_part": (1 - mu) / (1 - mu_product),  # today's gradient ...
        "momentum_part": mu_next / (1 - mu_product * mu_next),  # ... and tomorrow's s
        "correct2": 1 / bias_correction(hp.rho2, t, ops),  # 1/(1 − ρ₂ᵗ)
    }


def nadam_rule(ops, hp, theta, g, s, r):
    s = hp.rho1 * s + (1 - hp.rho1) * g  # biased first moment
    r = hp.rho2 * r + (1 - hp.rho2) * g * g  # biased second moment
    denominator = ops.sqrt(r * hp.correct2) + hp.eps  # √r̂ + ε, r̂ = r/(1 − ρ₂ᵗ) as in Adam
    nesterov_moment = hp.gradient_part * g + hp.momentum_part * s
    theta = theta + -hp.lr * nesterov_moment / denominator
    return theta, s, r


# --------------------------------------------------------------------------------------
# RAdam
# --------------------------------------------------------------------------------------


class RAdamState(NamedTuple):
    t: int  # steps taken
    s: Any  # biased first moment
    r: Any  # biased second moment


def radam_step_scalars(ops, hp, t, state):
    """1/(1 − ρ₁ᵗ), √(1 − ρ₂ᵗ) and 1/(1 − ρ₂ᵗ), the length ρₜ of the moving average and
    the rectification (once per step here, so the rule's loop does one √ and one ÷)."""
    bc2 = bias_correction(hp.rho2, t, ops)
    rho_inf = 2 / (1 - hp.rho2) - 1
    rho_t = rho_inf - 2 * t * ops.pow(hp.rho2, t) / bc2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    return {
        "correct1": 1 / bias_correction(hp.rho1, t, ops),  # 1/(1 − ρ₁ᵗ)
        "root_bc2": ops.sqrt(bc2),  # √(1 − ρ₂ᵗ)
        "correct2": 1 / bc2,  # 1/(1 − ρ₂ᵗ)
        "rho_t": rho_t,
        "rectification": ops.sqrt(ops.maximum(ratio, 0)),
    }


def radam_rule(ops, hp, theta, g, s, r):
    s = hp.rho1 * s + (1 - hp.rho1) * g  # biased first moment
    r = hp.rho2 * r + (1 - hp.rho2) * g * g  # biased second moment
    s_hat = s * hp.correct1  # ŝ = s/(1−ρ₁ᵗ), one division less per coordinate
    if hp.eps_hat:  # torch: eps added to the raw √r
        adaptive = hp.root_bc2 / (ops.sqrt(r) + hp.eps)
    else:  # optax: eps added to √r̂
        adaptive = 1 / (ops.sqrt(r * hp.correct2) + hp.eps)
    # Early on, r̂ averages too few gradients to trust: plain momentum step instead.
    theta = theta + -hp.lr * s_hat * ops.where(hp.rho_t > 5, hp.rectification * adaptive, 1.0)
    return theta, s, r


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm.

    s ← ρ₁s + (1−ρ₁)ĝ;  u ← max(ρ₂u, |ĝ| + ε_max);  θ ← θ − α/(1−ρ₁ᵗ)·s/(u + ε).
    u needs no bias correction. Defaults: the paper's α = 0.002, ρ₁ = 0.9, ρ₂ = 0.999;
    ε_max = 1e-8 inside the max (torch, optax) keeps u > 0; Keras adds ε outside instead.
    """

    name = "adamax"
    state_type = AdamaxState
    rule = staticmethod(adamax_rule)
    step_scalars = staticmethod(adamax_step_scalars)
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

    def _step_size(self, hp, state):
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
    state_type = NadamState
    rule = staticmethod(nadam_rule)
    step_scalars = staticmethod(nadam_step_scalars)
    SCALAR_STATE = {"mu_product": 1.0}
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

    def _step_size(self, hp, state):
        return hp.lr / (np.sqrt(state.r * hp.correct2) + hp.eps)


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
    state_type = RAdamState
    rule = staticmethod(radam_rule)
    step_scalars = staticmethod(radam_step_scalars)
    PRESETS = {
        "torch": {"eps": 1e-8, "eps_hat": True},
        "optax": {"eps": 1e-8, "eps_hat": False},
    }

    lr: float = hyper(1e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(1e-8, "[0, inf)", "constant added outside the square root")
    eps_hat: bool = hyper(True, "bool", "add eps to the raw √r (torch) rather than √r̂")

    def _step_size(self, hp, state):
        if self.eps_hat:
            return hp.lr * hp.root_bc2 / (np.sqrt(state.r) + hp.eps)
        return hp.lr / (np.sqrt(state.r * hp.correct2) + hp.eps)
