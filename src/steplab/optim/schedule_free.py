"""Schedule-Free SGD and AdamW (Defazio et al., 2024, "The Road Less Scheduled").

Schedule-Free keeps no learning-rate schedule. It keeps three points instead, of which
two are stored:

- z, the base optimizer's own iterate: z ← z − γ·d (d the gradient, or Adam's
  normalized gradient), always at the full step size γ;
- x, the running weighted average of the z's: x ← (1 − c)·x + c·z, with
  c = wₜ/Σwᵢ and wₜ = tʳ·γ_maxᵖ (uniform average for r = 0, γ_max the largest step size
  so far, so that warm-up steps weigh less);
- y = (1 − β)·z + β·x, the point where the gradient is taken.

x is the point to *evaluate* at (test loss, checkpoints for inference); y is the point
to *train* at. As the authors' ``schedulefree`` package does, theta holds y, the state
holds z (and Adam's second moment r), and x is recomputed from y and z when it is
wanted: :func:`eval_params` (x = y + (1 − 1/β)(z − y)). Taking theta itself for an
evaluation is the mistake to avoid: it is y, the point the gradient was taken at.

The update of y follows from the three lines above (the package's "primal averaging"
form, one pass over memory)::

    y ← y + c·(z − y)                    # towards the new average ...
    y ← y + γ·(β(1 − c) − 1)·d           # ... and along the step z takes
    z ← z − γ·d

Weight decay λ: Schedule-Free SGD adds λ·y to the gradient (an L2 penalty, as the
package and optax's ``schedule_free_sgd`` do); Schedule-Free AdamW adds λ·y to the
*normalized* gradient d, so it shrinks z by γ·λ·y, decoupled from Adam's per-coordinate
scaling (the paper's Algorithm 1, the package and optax's ``schedule_free_adamw``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from steplab.optim.base import THETA0, Optimizer, bias_correction, hyper
from steplab.optim.ops import NUMPY_OPS, Ops
from steplab.optim.registry import register
from steplab.optim.schedules import Schedule


class ScheduleFreeSGDState(NamedTuple):
    t: int  # steps taken
    weight_sum: Any  # Σ wᵢ, the averaging weights so far
    lr_max: Any  # the largest step size so far
    z: Any  # the base iterate (SGD's own sequence)


class ScheduleFreeAdamWState(NamedTuple):
    t: int  # steps taken
    weight_sum: Any  # Σ wᵢ
    lr_max: Any  # the largest step size so far
    z: Any  # the base iterate
    r: Any  # biased second moment


def averaging_scalars(ops, hp, t, state):
    """The step size γₜ after linear warm-up, the new γ_max and Σw, and the averaging
    weight c = wₜ/Σw with wₜ = tʳ·γ_maxᵖ (c = 0 while every weight is 0)."""
    lr = hp.lr * ops.where(t < hp.warmup_steps, t / ops.maximum(hp.warmup_steps, 1), 1.0)
    lr_max = ops.maximum(state.lr_max, lr)
    weight = ops.pow(t, hp.poly_power) * ops.pow(lr_max, hp.weight_lr_power)
    weight_sum = state.weight_sum + weight
    with np.errstate(divide="ignore", invalid="ignore"):
        c = ops.where(weight_sum > 0, weight / weight_sum, 0.0)
    return {"lr": lr, "lr_max": lr_max, "weight_sum": weight_sum, "c": c}


def schedule_free_sgd_rule(ops, hp, theta, g, z):
    y = theta  # the gradient's point (weight decay, an L2 penalty λ·y, is in ĝ already)
    y = y + hp.c * (z - y)  # towards the average x ...
    y = y + hp.lr * (hp.rho * (1 - hp.c) - 1) * g  # ... and along z's step
    z = z - hp.lr * g  # the base iterate: a plain gradient step
    return y, z


def schedule_free_adamw_step_scalars(ops, hp, t, state):
    scalars = averaging_scalars(ops, hp, t, state)
    scalars["correct2"] = 1 / bias_correction(hp.rho2, t, ops)  # 1/(1 − ρ₂ᵗ)
    return scalars


def schedule_free_adamw_rule(ops, hp, theta, g, z, r):
    y = theta  # the gradient's point
    r = hp.rho2 * r + (1 - hp.rho2) * g * g  # biased second moment
    d = g / (ops.sqrt(r * hp.correct2) + hp.eps)  # ĝ/(√r̂ + ε): Adam without momentum
    if hp.weight_decay_on:
        d = d + hp.weight_decay * y  # decoupled decay, at y, where the paper puts it
    y = y + hp.c * (z - y)  # towards the average x ...
    y = y + hp.lr * (hp.rho1 * (1 - hp.c) - 1) * d  # ... and along z's step
    z = z - hp.lr * d  # the base iterate
    return y, z, r


class ScheduleFreeBase(Optimizer):
    """What both Schedule-Free optimizers share: the averaging weights and z₀ = θ₀."""

    SCALAR_STATE = {"weight_sum": 0.0, "lr_max": 0.0}

    def hyper_at(self, t: Any, before: Any, ops: Ops = NUMPY_OPS) -> Any:
        """The step values of step ``t`` (the protocol's ``prepare_step`` on the declared
        hyperparameters of scalar theta): the rule's ``hp``, with the new ``weight_sum``
        and ``lr_max`` among them (``before``: the ``SCALAR_STATE`` values before the
        step). What the Schedule-Free torch and JAX optimizers pass to ``apply_rule``."""
        declared = self.declared_for(())
        if isinstance(declared["lr"], Schedule):  # (the NumPy step evaluates it; these do not)
            raise ValueError(
                f"{self.name}: lr must be a number on the torch and JAX paths (a torch LR "
                "scheduler may change it between steps; warmup_steps gives a linear warm-up)"
            )
        return self.prepare_step(declared, t, before, ops).hp

    def initial_moment(self, name: str, hp: Any) -> Any:
        return THETA0 if name == "z" else 0.0  # z, x and y all start at θ₀

    def momentum(self) -> Any:
        """β, the interpolation weight between x and z (rho or rho1)."""
        raise NotImplementedError

    def eval_params(self, theta: Any, state: Any) -> Any:
        """x, the point to evaluate at, from theta (= y) and state (a new array)."""
        return eval_params(theta, state, self.momentum())

    def train_params(self, x: Any, state: Any) -> Any:
        """y, the point to train at, from x and state: the inverse of :meth:`eval_params`."""
        beta = self.momentum()
        return x + (1 - beta) * (state.z - x)


def eval_params(theta: Any, state: Any, rho: Any) -> Any:
    """x = y + (1 − 1/β)(z − y): the averaged point, where a Schedule-Free model is
    evaluated (theta is y, the point the gradients are taken at; β is rho or rho1)."""
    if not hasattr(state, "z"):
        raise TypeError(
            "eval_params needs the state of a Schedule-Free optimizer (it holds z), "
            f"got {type(state).__name__}"
        )
    return theta + (1 - 1 / rho) * (state.z - theta)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ScheduleFreeSGD(ScheduleFreeBase):
    """Schedule-Free SGD: y ← y + c(z − y) + γ(β(1−c) − 1)ĝ;  z ← z − γĝ.

    Defaults are the ``schedulefree`` package's (γ = 1.0, β = 0.9, no warm-up, uniform
    averaging with weights γ_max²). Evaluate at :func:`eval_params`, not at theta.
    """

    name = "schedule_free_sgd"
    state_type = ScheduleFreeSGDState
    rule = staticmethod(schedule_free_sgd_rule)
    step_scalars = staticmethod(averaging_scalars)
    PRESETS = {"schedulefree": {}, "optax": {}}

    lr: float = hyper(1.0, "(0, inf)", "step size γ of the base iterate z")
    rho: float = hyper(0.9, "(0, 1)", "interpolation β: y = (1 − β)z + βx")
    warmup_steps: float = hyper(0.0, "[0, inf)", "steps of linear warm-up of γ")
    poly_power: float = hyper(0.0, "[0, inf)", "r in the averaging weight tʳ·γ_maxᵖ")
    weight_lr_power: float = hyper(2.0, "[0, inf)", "p in the averaging weight tʳ·γ_maxᵖ")
    weight_decay: float = hyper(0.0, "[0, inf)", "L2 penalty: adds λ·y to the gradient")

    def momentum(self) -> Any:
        return self.rho


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ScheduleFreeAdamW(ScheduleFreeBase):
    """Schedule-Free AdamW: r ← ρ₂r + (1−ρ₂)ĝ⊙ĝ;  d = ĝ/(√(r/(1−ρ₂ᵗ)) + ε) + λy;
    y ← y + c(z − y) + γ(β(1−c) − 1)d;  z ← z − γd.

    Defaults are the ``schedulefree`` package's (γ = 0.0025, β = ρ₁ = 0.9, ρ₂ = 0.999,
    ε = 1e-8 outside the root). Evaluate at :func:`eval_params`, not at theta.
    """

    name = "schedule_free_adamw"
    RULE_DECAYS_WEIGHTS = True  # λ·y joins the normalized gradient: no generic decay
    state_type = ScheduleFreeAdamWState
    rule = staticmethod(schedule_free_adamw_rule)
    step_scalars = staticmethod(schedule_free_adamw_step_scalars)
    PRESETS = {"schedulefree": {}, "optax": {}}

    lr: float = hyper(0.0025, "(0, inf)", "step size γ of the base iterate z")
    rho1: float = hyper(0.9, "(0, 1)", "interpolation β: y = (1 − β)z + βx")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(1e-8, "[0, inf)", "constant added outside the square root")
    warmup_steps: float = hyper(0.0, "[0, inf)", "steps of linear warm-up of γ")
    poly_power: float = hyper(0.0, "[0, inf)", "r in the averaging weight tʳ·γ_maxᵖ")
    weight_lr_power: float = hyper(2.0, "[0, inf)", "p in the averaging weight tʳ·γ_maxᵖ")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled decay: adds λ·y to the step")

    def momentum(self) -> Any:
        return self.rho1


register(ScheduleFreeSGD)
register(ScheduleFreeAdamW)

__all__ = [
    "ScheduleFreeBase",
    "ScheduleFreeAdamW",
    "ScheduleFreeAdamWState",
    "ScheduleFreeSGD",
    "ScheduleFreeSGDState",
    "eval_params",
]
