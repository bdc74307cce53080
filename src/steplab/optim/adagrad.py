"""AdaGrad (Duchi, Hazan & Singer, 2011), exactly as the seed's pseudo-code.

Each coordinate's step size is α over the root of the sum of all its squared
gradients so far: large derivatives → small steps, small derivatives → large steps.
The sum only grows, so the steps only shrink (sometimes too early, Goodfellow et al., 2016).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from steplab.optim.base import Optimizer, hyper


class AdaGradState(NamedTuple):
    t: int  # steps taken
    r: Any  # gradient accumulation variable


def adagrad_rule(ops, hp, theta, g, r):
    r = r + g * g  # accumulate squared gradient
    delta = -hp.lr / (hp.eps + ops.sqrt(r + hp.eps_root)) * g  # compute update
    theta = theta + delta  # apply update
    return theta, r


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AdaGrad(Optimizer):
    """AdaGrad: r ← r + ĝ⊙ĝ;  Δθ = −α/(β + √r)⊙ĝ;  θ ← θ + Δθ.

    Seed defaults: β = 1e-7 *outside* the root (``eps``), r₀ = 0. The seed gives no α;
    we take 0.01, the default of torch.optim.Adagrad. ``eps_root`` adds a constant
    *inside* the root (optax's and Keras' convention), ``r0`` is the initial accumulator.
    """

    name = "adagrad"
    state_type = AdaGradState
    rule = staticmethod(adagrad_rule)
    PRESETS = {
        "torch": {"lr": 1e-2, "eps": 1e-10, "eps_root": 0.0, "r0": 0.0},
        "optax": {"eps": 0.0, "eps_root": 1e-7, "r0": 0.1},
        "keras": {"lr": 1e-3, "eps": 0.0, "eps_root": 1e-7, "r0": 0.1},
    }

    lr: float = hyper(1e-2, "(0, inf)", "global step size α")
    eps: float = hyper(1e-7, "[0, inf)", "β added outside the square root")
    eps_root: float = hyper(0.0, "[0, inf)", "constant added inside the square root")
    r0: float = hyper(0.0, "[0, inf)", "initial value of the accumulator r")

    def initial_moment(self, name, hp):
        return hp.r0  # r₀

    def _step_size(self, hp, state):
        return hp.lr / (hp.eps + np.sqrt(state.r + hp.eps_root))
