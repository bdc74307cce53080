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

**One pass.** The element-wise pieces (:func:`clip`, :func:`add_decayed_weights`,
:func:`decay_weights`, and :func:`clip_by_global_norm` after its one reduction) are also
pieces of :mod:`steplab.optim.pieces`: :func:`fuse` makes a chain of them around one
optimizer into an optimizer whose ``step`` compiles them into the rule's pass (the fused
numba kernel, a sweep's kernel, torch's single pass), and :func:`fused_chain` does that
per parameter of a tree, with masks by label resolved per leaf. An optimizer's own
``weight_decay`` is such a piece too.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from steplab.optim import pieces as P
from steplab.optim.base import Optimizer, hyper, sum_of_squares

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


class ElementwiseTransformation(GradientTransformation):
    """A transformation that is also a piece (:mod:`steplab.optim.pieces`): ``piece`` and
    the values of its hyperparameters (``values``), so that :func:`fuse` can compile it
    into an optimizer's pass. As a transformation it runs on trees like any other."""

    piece: P.Piece
    values: dict[str, float]


def _elementwise(tx: GradientTransformation, piece: P.Piece,
                 **values: float) -> ElementwiseTransformation:  # fmt: skip
    result = ElementwiseTransformation(*tx)
    result.piece, result.values = piece, values
    return result


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """g·(c/‖g‖) when the global norm ‖g‖ exceeds c (one reduction over every leaf)."""
    max_norm = _check("max_norm", max_norm, 0.0, low_closed=False)

    def clip(updates: Tree, params: Tree) -> Tree:
        norm = global_norm(updates)
        if norm < max_norm:
            return updates
        return tree_map(lambda g: g / norm * max_norm, updates)  # optax's order

    return _elementwise(_stateless(clip), P.CLIP_BY_GLOBAL_NORM, clip_norm=max_norm)


def clip(max_delta: float) -> GradientTransformation:
    """Each coordinate of g clipped to [−δ, δ]."""
    max_delta = _check("max_delta", max_delta, 0.0)
    tx = _stateless(lambda u, p: tree_map(lambda g: np.clip(g, -max_delta, max_delta), u))
    return _elementwise(tx, P.CLIP, clip_delta=max_delta)


def add_decayed_weights(weight_decay: float) -> GradientTransformation:
    """g + λ·θ: an L2 penalty, before the optimizer (optax's add_decayed_weights)."""
    weight_decay = _check("weight_decay", weight_decay, 0.0)

    def add(updates: Tree, params: Tree) -> Tree:
        if params is None:
            raise ValueError("add_decayed_weights needs params")
        return tree_map(lambda g, p: g + weight_decay * p, updates, params)

    return _elementwise(_stateless(add), P.ADD_DECAYED_WEIGHTS, l2_weight_decay=weight_decay)


def decay_weights(lr: float, weight_decay: float) -> GradientTransformation:
    """Δθ − α·λ·θ: decoupled weight decay (AdamW), after the optimizer's step Δθ (in
    optax: add_decayed_weights between scale_by_adam and scale_by_learning_rate)."""
    lr = _check("lr", lr, 0.0, low_closed=False)
    weight_decay = _check("weight_decay", weight_decay, 0.0)

    def decay(updates: Tree, params: Tree) -> Tree:
        if params is None:
            raise ValueError("decay_weights needs params")
        return tree_map(lambda u, p: u - lr * weight_decay * p, updates, params)

    return _elementwise(_stateless(decay), P.DECAY_WEIGHTS, decay_lr=lr,
                        decoupled_weight_decay=weight_decay)  # fmt: skip


def scale(factor: float) -> GradientTransformation:
    """factor·g."""
    factor = float(factor)
    return _stateless(lambda u, p: tree_map(lambda g: factor * g, u))


def scale_by_learning_rate(lr: float) -> GradientTransformation:
    """−α·g: a descent step."""
    return scale(-_check("lr", lr, 0.0, low_closed=False))


class OptimizerTransformation(GradientTransformation):
    """:func:`from_optimizer`'s transformation; ``optimizer`` is the optimizer it runs."""

    optimizer: Any


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

    result = OptimizerTransformation(init, update)
    result.optimizer = optimizer
    return result


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

    result = MaskedTransformation(init, update)
    result.inner, result.mask = inner, mask
    return result


class MaskedTransformation(GradientTransformation):
    """:func:`masked`'s transformation: ``inner`` on the labels ``mask`` selects."""

    inner: GradientTransformation
    mask: Any


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


# --------------------------------------------------------------------------------------
# A chain of element-wise pieces compiled into one optimizer: one pass over memory
# --------------------------------------------------------------------------------------

_ELEMENTWISE = "clip, add_decayed_weights, clip_by_global_norm (before) and decay_weights (after)"


def fuse(*parts: Any) -> Optimizer:
    """The chain ``parts`` (element-wise transformations around one steplab optimizer, as
    in :func:`chain`) as one optimizer: its ``step`` runs every piece and the rule in one
    pass (the fused kernel for large arrays, NumPy's whole arrays otherwise, a sweep's
    kernel in ``steplab.fast.sweep``), with one reduction first if the chain clips by
    global norm. Equal to ``chain(*parts)`` to rounding (the same arithmetic but for
    decoupled decay, which the rule's pass applies to θ before the step).

    ``fuse(clip_by_global_norm(1.0), add_decayed_weights(1e-4), Adam(), decay_weights(1e-3,
    0.01))``: the pieces before the optimizer (:func:`clip_by_global_norm` first, if
    present; :func:`clip`, :func:`add_decayed_weights`) change ĝ before its rule; after it,
    :func:`decay_weights` changes the step. The optimizer's own ``weight_decay`` runs as it
    always does, right before the rule. Its name is ``chain(...)``; a state made by
    another chain is refused.
    """
    optimizer, before, after = _split(parts)
    chain_pieces = tuple(part.piece for part in (*before, *after))
    cls = _chained_class(type(optimizer), chain_pieces)
    values = {f.name: getattr(optimizer, f.name) for f in dataclasses.fields(optimizer) if f.init}
    for part in (*before, *after):
        values.update(part.values)
    return cls(**values)


def _split(parts: tuple) -> tuple[Optimizer, list, list]:
    """(the optimizer, the pieces before it, the pieces after it), checked."""
    optimizer: Any = None
    before: list[ElementwiseTransformation] = []
    after: list[ElementwiseTransformation] = []
    for part in parts:
        # an optimizer (anything with a KIND, so that a whole-array one is named below), or
        # from_optimizer's transformation of one
        inner = part if hasattr(part, "KIND") else getattr(part, "optimizer", None)
        if inner is not None:
            if optimizer is not None:
                raise ValueError(f"a fused chain holds one optimizer; got {optimizer.name} "
                                 f"and {inner.name}")  # fmt: skip
            optimizer = inner
            continue
        if isinstance(part, MaskedTransformation):
            raise ValueError("masked pieces select parameters by label: fuse runs on one "
                             "array; use fused_chain on a dict of parameters")  # fmt: skip
        if not isinstance(part, ElementwiseTransformation):
            raise ValueError(f"fuse takes the element-wise pieces {_ELEMENTWISE} and one "
                             f"steplab optimizer; got {part!r}")  # fmt: skip
        (after if optimizer is not None else before).append(part)
    if optimizer is None:
        raise ValueError("a fused chain needs a steplab optimizer (e.g. Adam()) among its parts")
    if getattr(optimizer, "KIND", None) != "elementwise":
        raise ValueError(f"{optimizer.name}: fuse compiles element-wise rules, and this one "
                         f"is {getattr(optimizer, 'KIND', None)}")  # fmt: skip
    for part in before:
        if part.piece.after:
            raise ValueError(f"{part.piece.name} changes the optimizer's step: put it after "
                             "the optimizer in the chain")  # fmt: skip
    for part in after:
        if not part.piece.after:
            raise ValueError(f"{part.piece.name} changes the gradient: put it before the "
                             "optimizer in the chain")  # fmt: skip
    if any(part.piece.needs_grad_norm for part in before[1:]):
        raise ValueError("clip_by_global_norm must come first in a fused chain (it clips "
                         "the gradient as it arrives, with one reduction)")  # fmt: skip
    names = [part.piece.name for part in (*before, *after)]
    if len(set(names)) != len(names):
        raise ValueError(f"a fused chain holds each piece once; got {', '.join(names)}")
    if getattr(optimizer, "NEEDS_GRAD_NORM", False) or getattr(optimizer, "CHAIN", ()):
        raise ValueError(f"{optimizer.name} is a fused chain already: list its pieces in one")
    return optimizer, before, after


_CHAINED: dict[tuple, type[Optimizer]] = {}


def _chained_class(base: type[Optimizer], chain_pieces: tuple[P.Piece, ...]) -> type[Optimizer]:
    """The optimizer class ``base`` with ``chain_pieces`` around its rule (one per base
    and pieces, made on first use): ``base``'s fields plus the pieces' ``hyper`` fields."""
    key = (base, chain_pieces)
    if key not in _CHAINED:
        fields = [(f.name, float, hyper(f.default, f.interval, f.doc))
                  for piece in chain_pieces for f in piece.fields]  # fmt: skip
        before = [p.name for p in chain_pieces if not p.after]
        after = [p.name for p in chain_pieces if p.after]
        cls_name = f"Chained{base.__name__}{len(_CHAINED)}"
        cls = dataclasses.make_dataclass(
            cls_name, fields, bases=(base,), frozen=True, kw_only=True, eq=False,
            namespace={"name": f"chain({', '.join([*before, base.name, *after])})",
                       "CHAIN": chain_pieces, "__module__": __name__,
                       "__reduce__": _reduce_chained},
        )  # fmt: skip
        globals()[cls_name] = _CHAINED[key] = cls  # found by name, as pickle looks
    return _CHAINED[key]


def _reduce_chained(self: Optimizer) -> tuple:
    base = type(self).__mro__[1]
    values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
    return (_rebuild_chained, (base, type(self).CHAIN, values))


def _rebuild_chained(base: type, chain_pieces: tuple, values: dict) -> Optimizer:
    return _chained_class(base, chain_pieces)(**values)


def with_piece(optimizer: Any, piece: P.Piece, **settings: Any) -> Optimizer:
    """``optimizer`` (or the fused chain it is) with one more element-wise ``piece``: what a
    spec's ``"adamw+clip_by_global_norm:clip_norm=1"`` builds. ``settings`` are the
    piece's fields (their defaults otherwise). A piece before the rule goes after those
    already there, but the global norm first (where :func:`fuse` requires it); a piece
    after the rule goes last."""
    if getattr(optimizer, "KIND", None) != "elementwise" or not isinstance(optimizer, Optimizer):
        raise ValueError(
            f"{piece.name} compiles into an element-wise rule's pass; "
            f"{getattr(optimizer, 'name', optimizer)!r} is not one (put {piece.name} before "
            "any other modifier)"
        )
    unknown = sorted(set(settings) - {f.name for f in piece.fields})
    if unknown:
        raise ValueError(f"{piece.name} has no setting {', '.join(unknown)}; its settings: "
                         f"{', '.join(f.name for f in piece.fields)}")  # fmt: skip
    chain_pieces = type(optimizer).CHAIN
    if any(p.name == piece.name for p in chain_pieces):
        raise ValueError(f"a fused chain holds each piece once; {piece.name} is there already")
    base = type(optimizer).__mro__[1] if chain_pieces else type(optimizer)
    values = {f.name: getattr(optimizer, f.name) for f in dataclasses.fields(optimizer) if f.init}
    values.update({f.name: f.default for f in piece.fields}, **settings)
    pieces = [*chain_pieces, piece]
    ordered = (*(p for p in pieces if not p.after and p.needs_grad_norm),
               *(p for p in pieces if not p.after and not p.needs_grad_norm),
               *(p for p in pieces if p.after))  # fmt: skip
    return _chained_class(base, ordered)(**values)


def _register_pieces() -> None:
    """Each element-wise piece a modifier of optimizer specs, with its fields as the
    spec's keys: ``"adamw+clip_by_global_norm:clip_norm=1,lr=1e-3"``."""
    from steplab.optim.registry import register_wrapper

    for piece in (P.CLIP_BY_GLOBAL_NORM, P.CLIP, P.ADD_DECAYED_WEIGHTS, P.DECAY_WEIGHTS):
        register_wrapper(
            piece.name,
            lambda optimizer, piece=piece, **settings: with_piece(optimizer, piece, **settings),
            {f.name: f.interval for f in piece.fields},
        )


_register_pieces()


class FusedChainState(NamedTuple):
    states: dict[str, Any]  # each label's optimizer state (steplab's mutable State)


def fused_chain(*parts: Any) -> GradientTransformation:
    """:func:`fuse` over a dict of parameters by label: each label's pieces (a
    :func:`masked` piece only where its mask, a dict by label, selects the label) and the
    optimizer, one fused step per parameter; :func:`clip_by_global_norm`'s norm is taken
    over every parameter (one reduction each), as optax's. A transformation like
    :func:`chain`'s (``init``, ``update``), equal to it to rounding."""

    def per_label(params: Tree) -> dict[str, Optimizer]:
        if not isinstance(params, dict):
            raise TypeError("fused_chain runs on a dict of parameters by label")
        made = {}
        for label in params:
            chosen = []
            for part in parts:
                if isinstance(part, MaskedTransformation):
                    if not isinstance(part.mask, dict) or part.mask.keys() != params.keys():
                        raise ValueError(
                            "fused_chain needs each mask as a dict over the labels "
                            f"{sorted(params)} (known before the step)"
                        )
                    if part.mask[label]:
                        chosen.append(part.inner)
                else:
                    chosen.append(part)
            made[label] = fuse(*chosen)
        return made

    def init(params: Tree) -> FusedChainState:
        optimizers = per_label(params)
        return FusedChainState({k: optimizers[k].init(np.asarray(p)) for k, p in params.items()})

    def update(updates: Tree, state: FusedChainState, params: Tree = None) -> tuple:
        if params is None:
            raise ValueError("fused_chain needs params")
        optimizers = per_label(params)
        norm = None
        if any(opt.NEEDS_GRAD_NORM for opt in optimizers.values()):
            norm = math.sqrt(sum(sum_of_squares(np.asarray(g)) for g in updates.values()))
        steps, states = {}, {}
        for label, opt in optimizers.items():
            theta, leaf_state = np.array(params[label]), copy.deepcopy(state.states[label])
            opt.step(theta, np.asarray(updates[label]), leaf_state, grad_norm=norm)
            steps[label], states[label] = theta - params[label], leaf_state
        return steps, FusedChainState(states)

    return GradientTransformation(init, update)


__all__ = [
    "ElementwiseTransformation",
    "FusedChainState",
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
    "fuse",
    "fused_chain",
    "global_norm",
    "masked",
    "scale",
    "scale_by_learning_rate",
    "tree_map",
    "with_piece",
]
