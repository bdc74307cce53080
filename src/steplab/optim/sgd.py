"""Plain gradient descent and its momentum variants (the seed's quadratic-form comparison).

Momentum keeps a velocity ``b`` as torch.optim.SGD does (b ← ρ·b + g, θ ← θ − α·b).
With a constant α this is the textbook heavy ball v ← ρ·v − α·g, θ ← θ + v, with v = −α·b;
torch's form keeps that equality when α changes between steps as well.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from steplab.optim.base import Optimizer, hyper


class SGDState(NamedTuple):
    t: int  # steps taken


class MomentumState(NamedTuple):
    t: int  # steps taken
    b: Any  # velocity


def sgd_rule(ops, hp, theta, g):
    delta = -hp.lr * g  # compute update
    theta = theta + delta  # apply update
    return (theta,)


def momentum_rule(ops, hp, theta, g, b):
    b = hp.rho * b + g  # velocity: decaying sum of past gradients
    theta = theta + -hp.lr * b  # apply update
    return theta, b


def nesterov_rule(ops, hp, theta, g, b):
    b = hp.rho * b + g  # velocity
    theta = theta + -hp.lr * (g + hp.rho * b)  # step along the look-ahead direction
    return theta, b


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SGD(Optimizer):
    """Stochastic gradient descent: θ ← θ − α·ĝ (Robbins & Monro, 1951)."""

    name = "sgd"
    PRESETS = {"torch": {"lr": 1e-3}, "optax": {}, "keras": {"lr": 1e-2}}

    state_type = SGDState
    rule = staticmethod(sgd_rule)

    lr: float = hyper(1e-2, "(0, inf)", "global step size α")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Momentum(Optimizer):
    """SGD with heavy-ball momentum (Polyak, 1964; Sutskever et al., 2013).

    b ← ρ·b + ĝ;  θ ← θ − α·b   (torch.optim.SGD with momentum=ρ, dampening=0).
    """

    name = "momentum"
    PRESETS = {"torch": {"lr": 1e-3}, "keras": {"lr": 1e-2}}

    state_type = MomentumState
    rule = staticmethod(momentum_rule)

    lr: float = hyper(1e-2, "(0, inf)", "global step size α")
    rho: float = hyper(0.9, "[0, 1)", "momentum coefficient ρ")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Nesterov(Momentum):
    """Nesterov's accelerated gradient (Nesterov, 1983), in Sutskever et al.'s (2013) form.

    b ← ρ·b + ĝ;  θ ← θ − α·(ĝ + ρ·b)   (torch.optim.SGD with nesterov=True).
    The look-ahead ĝ + ρ·b stands for the gradient at θ + ρ·v without a second evaluation.
    """

    name = "nesterov"
    rule = staticmethod(nesterov_rule)
