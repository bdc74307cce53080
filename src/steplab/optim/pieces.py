"""Element-wise pieces that run around a rule: weight decay, clipping.

A piece is one small idea of optax's ``chain`` written for one coordinate, so that every
backend composes it with the rule in the same pass: the NumPy step runs it on whole arrays,
the fused and sweep kernels (``steplab.fast``) compile it into their loop next to the rule,
torch and JAX run it through ``apply_rule``. Two places:

- **before** the rule, ``function(ops, hp, theta, g) -> (theta, g)``: it changes the
  gradient the rule sees (clipping, an L2 penalty) or the point it steps from (decoupled
  weight decay θ·(1 − αλ), as AdamW and Lion write it);
- **after** the rule, ``function(ops, hp, theta, theta_new, g) -> theta_new``: it changes
  the step, knowing the point it started from (decoupled decay in optax's place,
  Δθ − αλθ).

Each piece reads its own hyperparameters from ``hp`` by name (``fields``), and may run only
where a static switch ``hp.<switch>`` is on (``weight_decay_on``: no work when λ = 0).
Every optimizer's own weight decay is one of these pieces (:func:`own_pieces`), so an
optimizer is "its pieces, then its rule" on every path; a chain
(:func:`steplab.optim.transforms.fuse`) adds more in front or behind.

This module imports nothing of steplab's: the optimizer base class builds on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Field(NamedTuple):
    """A hyperparameter a piece adds to the optimizer it is chained with."""

    name: str
    default: float
    interval: str
    doc: str


class Piece(NamedTuple):
    name: str  # as a chain names it: "clip", "add_decayed_weights", ...
    function: Callable[..., Any]  # see the module doc for the two signatures
    after: bool = False  # runs on the rule's result instead of its input
    switch: str | None = None  # hp flag that turns the piece on (None: always on)
    fields: tuple[Field, ...] = ()  # hyperparameters it adds to a chain
    # per-step values it needs from a reduction over ĝ (the global norm): filled in by the
    # step from ``grad_norm`` (see Optimizer.prepare_step)
    needs_grad_norm: bool = False


# --------------------------------------------------------------------------------------
# Every optimizer's own weight decay (``weight_decay``, λ)
# --------------------------------------------------------------------------------------


def add_weight_decay(ops, hp, theta, g):
    g = g + hp.weight_decay * theta  # L2 penalty: ĝ + λ·θ (torch's weight_decay)
    return theta, g


def decay_weights_first(ops, hp, theta, g):
    theta = theta * (1 - hp.lr * hp.weight_decay)  # decoupled: θ·(1 − α·λ), then the step
    return theta, g


L2_DECAY = Piece("weight_decay", add_weight_decay, switch="weight_decay_on")
DECOUPLED_DECAY = Piece("weight_decay", decay_weights_first, switch="weight_decay_on")


def own_pieces(decoupled: bool, rule_decays_weights: bool) -> tuple[Piece, ...]:
    """An optimizer's own weight decay as pieces before its rule: none where the rule
    decays weights itself, decoupled for AdamW-like optimizers, else L2."""
    if rule_decays_weights:
        return ()
    return (DECOUPLED_DECAY,) if decoupled else (L2_DECAY,)


# --------------------------------------------------------------------------------------
# Pieces a chain adds (steplab.optim.transforms names them as optax does)
# --------------------------------------------------------------------------------------


def clip_by_value(ops, hp, theta, g):
    g = ops.maximum(g, -hp.clip_delta)  # g clipped to [−δ, δ]: min(max(g, −δ), δ),
    g = -ops.maximum(-g, -hp.clip_delta)  # the min written with max
    return theta, g


def add_decayed_weights(ops, hp, theta, g):
    g = g + hp.l2_weight_decay * theta  # ĝ + λ·θ before the rule (optax.add_decayed_weights)
    return theta, g


def clip_by_global_norm(ops, hp, theta, g):
    # ĝ/‖ĝ‖·c when ‖ĝ‖ ≥ c, in optax's order; below c both numbers are 1 and ĝ is unchanged
    g = g / hp.clip_divisor * hp.clip_factor
    return theta, g


def decay_weights_after(ops, hp, theta, theta_new, g):
    # optax's adamw: Δθ − α·λ·θ, with θ the point the step started from
    theta_new = theta_new - hp.decay_lr * hp.decoupled_weight_decay * theta
    return theta_new


CLIP = Piece(
    "clip",
    clip_by_value,
    fields=(Field("clip_delta", 1.0, "[0, inf)", "bound δ of each coordinate of ĝ"),),
)
ADD_DECAYED_WEIGHTS = Piece(
    "add_decayed_weights",
    add_decayed_weights,
    fields=(Field("l2_weight_decay", 0.0, "[0, inf)", "L2 penalty λ added to ĝ before the rule"),),
)
CLIP_BY_GLOBAL_NORM = Piece(
    "clip_by_global_norm",
    clip_by_global_norm,
    needs_grad_norm=True,
    fields=(Field("clip_norm", 1.0, "(0, inf)", "bound c of ‖ĝ‖"),),
)
DECAY_WEIGHTS = Piece("decay_weights", decay_weights_after, after=True, fields=(
    Field("decay_lr", 1.0, "(0, inf)", "step size α of the decoupled decay"),
    Field("decoupled_weight_decay", 0.0, "[0, inf)", "decoupled weight decay λ")))  # fmt: skip


def clip_numbers(grad_norm: Any, clip_norm: Any, ops: Any) -> tuple[Any, Any]:
    """(divisor, factor) of :func:`clip_by_global_norm` for ``grad_norm`` = ‖ĝ‖:
    (‖ĝ‖, c) when ‖ĝ‖ ≥ c, else (1, 1) (then ĝ passes unchanged, bit for bit)."""
    if isinstance(grad_norm, (float, int)):
        return (1.0, 1.0) if grad_norm < clip_norm else (float(grad_norm), clip_norm)
    below = grad_norm < clip_norm  # a traced or tensor norm (JAX, torch)
    return ops.where(below, 1.0, grad_norm), ops.where(below, 1.0, clip_norm)


__all__ = [
    "ADD_DECAYED_WEIGHTS",
    "CLIP",
    "CLIP_BY_GLOBAL_NORM",
    "DECAY_WEIGHTS",
    "DECOUPLED_DECAY",
    "L2_DECAY",
    "Field",
    "Piece",
    "clip_numbers",
    "own_pieces",
]
