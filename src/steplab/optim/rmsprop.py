"""RMSProp (Hinton, Srivastava & Swersky, 2012, lecture 6e), exactly as the seed's pseudo-code.

AdaGrad's ever-growing sum is replaced by an exponentially weighted moving average, so
old gradients are forgotten and the step sizes stop shrinking for good.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from steplab.optim.base import Optimizer, hyper


class RMSPropState(NamedTuple):
    t: int  # steps taken
    r: Any  # gradient accumulation variable
    m: Any = None  # moving average of the gradient (centered only)
    b: Any = None  # velocity (momentum only)


def rmsprop_rule(ops, hp, theta, g, r, m, b):
    r = hp.rho * r + (1 - hp.rho) * g * g  # accumulate squared gradient
    if hp.centered:  # divide by the root of the variance r − m²
        m = hp.rho * m + (1 - hp.rho) * g  # average gradient
        denominator = hp.eps + ops.sqrt(r - m * m + hp.eps_root)
    else:
        denominator = hp.eps + ops.sqrt(r + hp.eps_root)  # β + √r
    if hp.momentum_on:
        b = hp.momentum * b + g / denominator  # velocity
        delta = -hp.lr * b
    else:
        delta = -hp.lr / denominator * g  # compute update
    theta = theta + delta  # apply update
    return theta, r, m, b


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class RMSProp(Optimizer):
    """RMSProp: r ← ρ·r + (1−ρ)·ĝ⊙ĝ;  Δθ = −α/(β + √r)⊙ĝ;  θ ← θ + Δθ.

    Seed defaults: β = 1e-6 *outside* the root (``eps``), r₀ = 0. The seed gives no α and
    no ρ; we take Hinton's α = 0.001 and ρ = 0.9 (Keras' and optax's defaults too).

    Options beyond the seed: ``eps_root`` (constant inside the root), ``r0`` (initial r),
    ``centered`` (Graves, 2013: divide by the root of the variance r − m², m the average
    gradient) and ``momentum`` μ (b ← μ·b + ĝ/(β+√r); θ ← θ − α·b, as torch and Keras).
    """

    name = "rmsprop"
    state_type = RMSPropState
    rule = staticmethod(rmsprop_rule)
    PRESETS = {
        "torch": {"lr": 1e-2, "rho": 0.99, "eps": 1e-8, "eps_root": 0.0},
        "optax": {"rho": 0.9, "eps": 0.0, "eps_root": 1e-8},
        "keras": {"lr": 1e-3, "rho": 0.9, "eps": 0.0, "eps_root": 1e-7},
    }
    OFF_WHEN_ZERO = ("weight_decay", "momentum")

    lr: float = hyper(1e-3, "(0, inf)", "global step size α")
    rho: float = hyper(0.9, "[0, 1)", "decay rate ρ of the moving average")
    eps: float = hyper(1e-6, "[0, inf)", "β added outside the square root")
    eps_root: float = hyper(0.0, "[0, inf)", "constant added inside the square root")
    r0: float = hyper(0.0, "[0, inf)", "initial value of r")
    centered: bool = hyper(False, "bool", "divide by the root of the gradient's variance")
    momentum: float = hyper(0.0, "[0, 1)", "momentum μ applied to the scaled gradient")

    def kept_moments(self, hp):
        return ("r",) + ("m",) * self.centered + ("b",) * hp.momentum_on

    def initial_moment(self, name, hp):
        return hp.r0 if name == "r" else 0.0

    def _step_size(self, hp, state):
        r = state.r - state.m * state.m if self.centered else state.r
        return hp.lr / (hp.eps + np.sqrt(r + hp.eps_root))
