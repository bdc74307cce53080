"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from steplab.optim.base import Optimizer, hyper


class LionState(NamedTuple):
    t: int  # steps taken
    m: Any  # momentum


def lion_rule(ops, hp, theta, g, m):
    c = hp.rho1 * m + (1 - hp.rho1) * g  # interpolate momentum and gradient
    theta = theta + -hp.lr * ops.sign(c)  # a step of ±α in every coordinate
    m = hp.rho2 * m + (1 - hp.rho2) * g  # momentum tracks ĝ
    return theta, m


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Lion(Optimizer):
    """Lion: c = ρ₁m + (1−ρ₁)ĝ;  θ ← θ − α·(sign(c) + λθ);  m ← ρ₂m + (1−ρ₂)ĝ.

    Every coordinate moves by exactly ±α (plus decay): only the sign of an interpolation
    of momentum and gradient survives. The paper's defaults: ρ₁ = 0.9, ρ₂ = 0.99, and an
    α 3–10× smaller than Adam's (1e-4 here). Weight decay is decoupled, as in AdamW.
    """

    name = "lion"
    state_type = LionState
    rule = staticmethod(lion_rule)
    PRESETS = {
        "optax": {"lr": 1e-4, "weight_decay": 1e-3},
        "keras": {"lr": 1e-3},
    }
    DECOUPLED_WEIGHT_DECAY = True

    lr: float = hyper(1e-4, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "interpolation weight ρ₁ of the update direction")
    rho2: float = hyper(0.99, "[0, 1)", "decay rate ρ₂ of the momentum")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ")
