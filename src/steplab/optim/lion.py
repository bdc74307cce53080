"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")."""

from __future__ import annotations

import dataclasses

import numpy as np

from steplab.optim.base import Optimizer, hyper, moment_like


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Lion(Optimizer):
    """Lion: c = ρ₁m + (1−ρ₁)ĝ;  θ ← θ − α·(sign(c) + λθ);  m ← ρ₂m + (1−ρ₂)ĝ.

    Every coordinate moves by exactly ±α (plus decay): only the sign of an interpolation
    of momentum and gradient survives. The paper's defaults: ρ₁ = 0.9, ρ₂ = 0.99, and an
    α 3–10× smaller than Adam's (1e-4 here). Weight decay is decoupled, as in AdamW.
    """

    name = "lion"
    PRESETS = {
        "optax": {"lr": 1e-4, "weight_decay": 1e-3},
        "keras": {"lr": 1e-3},
    }
    DECOUPLED_WEIGHT_DECAY = True

    lr: float = hyper(1e-4, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "interpolation weight ρ₁ of the update direction")
    rho2: float = hyper(0.99, "[0, 1)", "decay rate ρ₂ of the momentum")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ")

    def _init_moments(self, theta, hp):
        return {"m": moment_like(theta)}

    def _update(self, theta, g, state, hp):
        state.t += 1
        c = hp.rho1 * state.m + (1 - hp.rho1) * g  # interpolate momentum and gradient
        if hp.weight_decay is not None:
            theta *= 1 - hp.lr * hp.weight_decay  # decoupled weight decay
        theta += -hp.lr * np.sign(c)  # a step of ±α in every coordinate
        state.m[...] = hp.rho2 * state.m + (1 - hp.rho2) * g  # momentum tracks ĝ
