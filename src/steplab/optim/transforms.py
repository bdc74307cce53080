"""Gradient transformations on NumPy arrays, chained as optax chains them.

A transformation is a pair of pure functions (optax's ``GradientTransformation``)::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = apply_updates(params, updates)

``params``, ``grads`` and ``updates`` are trees: a NumPy array, or a dict of them keyed
by parameter label (``{"w": ..., "b": ...}``), which is what :func:`masked` selects by.
Small pieces, each one idea: clipping by global norm or by value, weight decay as L2
(:func:`add_decayed_weights`, before the optimizer) or decoupled (:func:`decay_weights`,
after it), masks per label, gradient accumulation (:class:`MultiSteps`), and any
steplab optimizer as the piece that turns gradients into steps
(:func:`from_optimizer`). :func:`chain` runs them in order.

Weight decay also still lives inside the optimizers (``weight_decay``, written into
their kernels); these pieces stand beside it so that a chain can be compared with
optax's, piece for piece.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

Tree = Any  # an array, or a dict of arrays by label


class GradientTransformation(NamedTuple):
    init: Callable[[Tree], Any]
    update: Callable[..., tuple[Tree, Any]]


def tree_map(function: Callable, tree: Tree, *rest: Tree) -> Tree:
    """``function`` on each leaf (an array, or the values of dicts with the same keys)."""
    if isinstance(tree, dict):
        for other in rest:
            if not isinstance(other, dict) or other.keys() != tree.keys():
                raise ValueError(
                    f"trees differ: labels {sorted(tree)} against "
                    f"{sorted(other) if isinstance(other, dict) else type(other).__name__}"
                )
        return {k: function(tree[k], *(other[k] for other in rest)) for k in tree}
    return function(tree, *rest)


def leaves(tree: Tree) -> list[Any]:
    return list(tree.values()) if isinstance(tree, dict) else [tree]


def apply_updates(params: Tree, updates: Tree) -> Tree:
    """params + updates, leaf by leaf (new arrays)."""
    return tree_map(lambda p, u: p + u, params, updates)


def global_norm(tree: Tree) -> float:
    """‖g‖ over every leaf: one reduction pass."""
    return math.sqrt(sum(float(np.sum(leaf * leaf)) for leaf in leaves(tree)))


def _check(name: str, value: Any, low: float, low_closed: bool = True) -> float:
    value = float(value)
    if not (math.isfinite(value) and (value >= low if low_closed else value > low)):
        interval = f"{'[' if low_closed else '('}{low:g}, inf)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------
# The pieces
# --------------------------------------------------------------------------------------


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Each transformation's updates fed to the next (optax.chain)."""

    def init(params: Tree) -> tuple:
        return tuple(tx.init(params) for tx in transforms)

    def update(updates: Tree, state: tuple, params: Tree = None) -> tuple[Tree, tuple]:
        if len(state) != len(transforms):
            raise ValueError(
                f"this state has {len(state)} parts but the chain has {len(transforms)} "
                "transformations: it comes from another chain"
            )
        new_state = []
        for tx, part in zip(transforms, state, strict=True):
            updates, part = tx.update(updates, part, params)
            new_state.append(part)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def _stateless(function: Callable[[Tree, Tree], Tree]) -> GradientTransformation:
    return GradientTransformation(lambda params: (), lambda u, s, p=None: (function(u, p), s))


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """g·(c/‖g‖) when the global norm ‖g‖ exceeds c (one reduction over every leaf)."""
    max_norm = _check("max_norm", max_norm, 0.0, low_closed=False)

    def clip(updates: Tree, params: Tree) -> Tree:
        norm = global_norm(updates)
        if norm < max_norm:
            return updates
        return tree_map(lambda g: g / norm * max_norm, updates)  # optax's order

    return _stateless(clip)


def clip(max_delta: float) -> GradientTransformation:
    """Each coordinate of g clipped to [−δ, δ]."""
    max_delta = _check("max_delta", max_delta, 0.0)
    return _stateless(lambda u, p: tree_map(lambda g: np.clip(g, -max_delta, max_delta), u))


def add_decayed_weights(weight_decay: float) -> GradientTransformation:
    """g + λ·θ: an L2 penalty, before the optimizer (optax's add_decayed_weights)."""
    weight_decay = _check("weight_decay", weight_decay, 0.0)

    def add(updates: Tree, params: Tree) -> Tree:
        if params is None:
            raise ValueError("add_decayed_weights needs params")
        return tree_map(lambda g, p: g + weight_decay * p, updates, params)

    return _stateless(add)


def decay_weights(lr: float, weight_decay: float) -> GradientTransformation:
    """Δθ − α·λ·θ: decoupled weight decay (AdamW), after the optimizer's step Δθ (in
    optax: add_decayed_weights between scale_by_adam and scale_by_learning_rate)."""
    lr = _check("lr", lr, 0.0, low_closed=False)
    weight_decay = _check("weight_decay", weight_decay, 0.0)

    def decay(updates: Tree, params: Tree) -> Tree:
        if params is None:
            raise ValueError("decay_weights needs params")
        return tree_map(lambda u, p: u - lr * weight_decay * p, updates, params)

    return _stateless(decay)


def scale(factor: float) -> GradientTransformation:
    """factor·g."""
    factor = float(factor)
    return _stateless(lambda u, p: tree_map(lambda g: factor * g, u))


def scale_by_learning_rate(lr: float) -> GradientTransformation:
    """−α·g: a descent step."""
    return scale(-_check("lr", lr, 0.0, low_closed=False))


def from_optimizer(optimizer: Any) -> GradientTransformation:
    """A steplab optimizer as the piece that turns gradients into steps: its update
    (θ_new − θ) on each leaf, its state per leaf."""

    def init(params: Tree) -> Tree:
        return tree_map(lambda p: optimizer.init_state(np.asarray(p)), params)

    def update(updates: Tree, state: Tree, params: Tree = None) -> tuple[Tree, Tree]:
        if params is None:
            raise ValueError(f"from_optimizer({optimizer.name}) needs params")
        pairs = tree_map(lambda g, s, p: optimizer.update(p, g, s), updates, state, params)
        steps = tree_map(lambda pair, p: pair[0] - p, pairs, params)
        return steps, tree_map(lambda pair: pair[1], pairs)

    return GradientTransformation(init, update)


class MaskedState(NamedTuple):
    inner: Any  # the inner transformation's state, over the selected leaves only


def masked(
    inner: GradientTransformation,
    mask: dict[str, bool] | Callable[[Tree], dict[str, bool]],
) -> GradientTransformation:
    """``inner`` on the leaves whose label the mask selects; the others pass unchanged
    (optax.masked). ``mask``: {label: bool}, or a function of params giving one."""

    def select(tree: Tree, params: Tree) -> dict:
        if not isinstance(tree, dict):
            raise TypeError("masked needs trees that are dicts by label")
        chosen = mask(params) if callable(mask) else mask
        if chosen.keys() != tree.keys():
            raise ValueError(
                f"the mask's labels {sorted(chosen)} are not the parameters' {sorted(tree)}"
            )
        return {k: tree[k] for k in tree if chosen[k]}

    def init(params: Tree) -> MaskedState:
        return MaskedState(inner.init(select(params, params)))

    def update(updates: Tree, state: MaskedState, params: Tree = None) -> tuple:
        chosen = select(updates, params if params is not None else updates)
        inner_params = None if params is None else {k: params[k] for k in chosen}
        new, inner_state = inner.update(chosen, state.inner, inner_params)
        return {k: new.get(k, updates[k]) for k in updates}, MaskedState(inner_state)

    return GradientTransformation(init, update)


class MultiStepsState(NamedTuple):
    mini_step: int  # gradients accumulated since the last step
    acc_grads: Tree  # their running mean
    inner: Any  # the inner transformation's state


class MultiSteps:
    """Gradient accumulation (optax.MultiSteps): the mean of k gradients, then one step
    of ``inner``; zero updates in between."""

    def __init__(self, inner: GradientTransformation, every_k: int) -> None:
        if isinstance(every_k, bool) or not isinstance(every_k, int) or every_k < 1:
            raise ValueError(f"every_k must be an integer in [1, inf), got {every_k!r}")
        self.inner_tx, self.every_k = inner, every_k

    def init(self, params: Tree) -> MultiStepsState:
        zeros = tree_map(np.zeros_like, params)
        return MultiStepsState(0, zeros, self.inner_tx.init(params))

    def update(self, updates: Tree, state: MultiStepsState, params: Tree = None) -> tuple:
        k = state.mini_step
        mean = tree_map(lambda a, g: a + (g - a) / (k + 1), state.acc_grads, updates)
        if k + 1 < self.every_k:
            zeros = tree_map(np.zeros_like, updates)
            return zeros, MultiStepsState(k + 1, mean, state.inner)
        steps, inner = self.inner_tx.update(mean, state.inner, params)
        return steps, MultiStepsState(0, tree_map(np.zeros_like, mean), inner)

    def gradient_transformation(self) -> GradientTransformation:
        return GradientTransformation(self.init, self.update)


__all__ = [
    "GradientTransformation",
    "MaskedState",
    "MultiSteps",
    "MultiStepsState",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "decay_weights",
    "from_optimizer",
    "global_norm",
    "masked",
    "scale",
    "scale_by_learning_rate",
    "tree_map",
]
