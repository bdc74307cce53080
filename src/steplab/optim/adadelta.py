"""AdaDelta (Zeiler, 2012): RMSProp whose step carries its own units.

The step size α/√r of RMSProp is replaced by √(u + ε)/√(r + ε), where u is the moving
average of past squared *updates*: the ratio has the units of θ, and needs no α.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from steplab.optim.base import Optimizer, hyper


class AdaDeltaState(NamedTuple):
    t: int  # steps taken
    r: Any  # moving average of squared gradients
    u: Any  # moving average of squared updates


def adadelta_rule(ops, hp, theta, g, r, u):
    r = hp.rho * r + (1 - hp.rho) * g * g  # squared gradients
    delta = ops.sqrt(u + hp.eps_root) / ops.sqrt(r + hp.eps_root) * g
    u = hp.rho * u + (1 - hp.rho) * delta * delta  # squared updates
    theta = theta + -hp.lr * delta
    return theta, r, u


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AdaDelta(Optimizer):
    """AdaDelta: r ← ρ·r + (1−ρ)·ĝ²;  δ = √(u+ε)/√(r+ε)⊙ĝ;  u ← ρ·u + (1−ρ)·δ²;  θ ← θ − α·δ.

    Defaults from the paper: ρ = 0.95, ε = 1e-6 (inside both roots, so ``eps_root``) and
    α = 1 (the paper has no step size; torch's ``lr`` multiplies δ).
    """

    name = "adadelta"
    state_type = AdaDeltaState
    rule = staticmethod(adadelta_rule)
    PRESETS = {
        "torch": {"lr": 1.0, "rho": 0.9, "eps_root": 1e-6},
        "optax": {"lr": 1.0, "rho": 0.9, "eps_root": 1e-6},
        "keras": {"lr": 1e-3, "rho": 0.95, "eps_root": 1e-7},
    }

    lr: float = hyper(1.0, "(0, inf)", "multiplies the step δ")
    rho: float = hyper(0.95, "[0, 1)", "decay rate ρ of both moving averages")
    eps_root: float = hyper(1e-6, "(0, inf)", "ε inside both square roots")

    def _step_size(self, hp, state):
        return hp.lr * np.sqrt(state.u + hp.eps_root) / np.sqrt(state.r + hp.eps_root)
