"""RMSProp (Hinton, Srivastava & Swersky, 2012, lecture 6e), exactly as the seed's pseudo-code.

AdaGrad's ever-growing sum is replaced by an exponentially weighted moving average, so
old gradients are forgotten and the step sizes stop shrinking for good.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from steplab.optim.base import Optimizer, hyper, moment_like


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

    def _init_moments(self, theta, hp):
        moments = {"r": moment_like(theta, hp.r0)}  # gradient accumulation variable
        if self.centered:
            moments["m"] = moment_like(theta)  # moving average of the gradient
        if hp.momentum is not None:
            moments["b"] = moment_like(theta)  # velocity
        return moments

    def _update(self, theta, g, state, hp):
        state.t += 1
        state.r[...] = hp.rho * state.r + (1 - hp.rho) * g * g  # accumulate squared gradient
        if self.centered:
            state.m[...] = hp.rho * state.m + (1 - hp.rho) * g  # average gradient
        denominator = self._denominator(state, hp)  # β + √r
        if hp.momentum is None:
            delta = -hp.lr / denominator * g  # compute update
        else:
            state.b[...] = hp.momentum * state.b + g / denominator  # velocity
            delta = -hp.lr * state.b
        theta += delta  # apply update

    def _denominator(self, state, hp):
        """β + √r; with ``centered``, β + √(r − m²): the root of the gradient's variance."""
        r = state.r - state.m * state.m if self.centered else state.r
        return hp.eps + np.sqrt(r + hp.eps_root)

    def _step_size(self, state, hp):
        return hp.lr / self._denominator(state, hp)
