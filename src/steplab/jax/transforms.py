"""The gradient transformations of :mod:`steplab.optim.transforms` on the JAX path.

Where optax has the same piece, it *is* optax's (``optax.chain``, ``optax.clip``, …); the
settings are checked by the NumPy core first, so a bad one raises the same message on every
path. A steplab optimizer becomes a piece through :func:`steplab.jax.transformation`::

    from steplab.jax import transforms as T
    from steplab.optim import Adam

    tx = T.chain(T.clip_by_global_norm(1.0), T.from_optimizer(Adam.like("optax", lr=1e-3)),
                 T.decay_weights(1e-3, 0.1))
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

Each chain equals the NumPy core's chain of the same pieces (tests/test_jax_transforms.py).
(Not to be confused with :mod:`steplab.jax.transform`, which turns one optimizer's rule into
an optax transformation.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from optax import GradientTransformation

from steplab.jax.transform import transformation
from steplab.optim import transforms as core

apply_updates = optax.apply_updates


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """``optax.chain``: each transformation's updates fed to the next; its state is optax's
    (a tuple, one state per piece). ``update`` first checks that the state is one this
    chain's ``init`` makes for these updates (the number of pieces, each piece's pytree
    structure and leaf shapes) and names the piece that differs: a state from another
    chain is refused with a clear message rather than optax's, or a wrong result (JAX
    states are values, so nothing changes before the error either way)."""
    inner = optax.chain(*transforms)
    expected: dict[Any, Any] = {}  # the init's state per (structure, shapes) of the updates

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        leaves, structure = jax.tree.flatten(updates)
        key = (structure, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
        if key not in expected:  # traced once per shape, as jit would
            expected[key] = jax.eval_shape(inner.init, updates)
        _check_chain_state(expected[key], state)
        return inner.update(updates, state, params)

    return GradientTransformation(inner.init, update)


def _check_chain_state(expected: tuple, state: Any) -> None:
    """``ValueError`` naming the first difference between ``state`` and the state this
    chain's init makes (``expected``: its shapes)."""
    n = len(expected)
    hint = "a state from another chain? Use this chain's init(params)"
    if not isinstance(state, tuple) or len(state) != n:
        got = f"{len(state)} states" if isinstance(state, tuple) else type(state).__name__
        raise ValueError(f"chain of {n} pieces: this state holds {got}, not {n} ({hint})")
    for number, (made, held) in enumerate(zip(expected, state, strict=True), 1):
        made_leaves, made_tree = jax.tree.flatten(made)
        held_leaves, held_tree = jax.tree.flatten(held)
        if made_tree != held_tree:  # type: ignore[operator]
            raise ValueError(
                f"chain of {n} pieces: piece {number}'s state is {_short(held_tree)}, but "
                f"this chain's init makes {_short(made_tree)} ({hint})"
            )
        for path, a, b in zip(jax.tree_util.tree_flatten_with_path(made)[0], made_leaves,
                              held_leaves, strict=True):  # fmt: skip
            if jnp.shape(a) != jnp.shape(b):
                raise ValueError(
                    f"chain of {n} pieces: piece {number}'s state at "
                    f"{jax.tree_util.keystr(path[0])} has shape {jnp.shape(b)}, but this "
                    f"chain's init makes {a.shape} ({hint})"
                )


def _short(tree: Any, limit: int = 160) -> str:
    text = str(tree).removeprefix("PyTreeDef(").removesuffix(")")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """g·(c/‖g‖) when ‖g‖ exceeds c (``optax.clip_by_global_norm``)."""
    core.clip_by_global_norm(max_norm)  # checks max_norm as every path does
    return optax.clip_by_global_norm(float(max_norm))


def clip(max_delta: float) -> GradientTransformation:
    """Each coordinate clipped to [−δ, δ] (``optax.clip``)."""
    core.clip(max_delta)
    return optax.clip(float(max_delta))


def add_decayed_weights(weight_decay: float) -> GradientTransformation:
    """g + λθ, an L2 penalty before the optimizer (``optax.add_decayed_weights``)."""
    core.add_decayed_weights(weight_decay)
    return optax.add_decayed_weights(float(weight_decay))


def decay_weights(lr: float, weight_decay: float) -> GradientTransformation:
    """Δθ − αλθ, decoupled decay after the optimizer's step: ``optax.add_decayed_weights``
    with −αλ (u + (−αλ)θ is u − αλθ to the bit)."""
    core.decay_weights(lr, weight_decay)
    return optax.add_decayed_weights(-(float(lr) * float(weight_decay)))


def scale(factor: float) -> GradientTransformation:
    """factor·g (``optax.scale``)."""
    return optax.scale(float(factor))


def scale_by_learning_rate(lr: float) -> GradientTransformation:
    """−α·g (``optax.scale_by_learning_rate``)."""
    core.scale_by_learning_rate(lr)
    return optax.scale_by_learning_rate(float(lr))


def from_optimizer(optimizer: Any) -> GradientTransformation:
    """A configured steplab optimizer (``Adam.like("optax", lr=1e-3)``) as the piece that
    turns gradients into steps: its rule through :func:`steplab.jax.transformation`."""
    cls = type(optimizer)
    settings = {f: getattr(optimizer, f) for f in cls.hyperparameters()}
    return transformation(cls, "seed", **settings)


def masked(
    inner: GradientTransformation, mask: dict[str, bool] | Callable[[Any], Any]
) -> GradientTransformation:
    """``inner`` on the leaves the mask selects, the others unchanged (``optax.masked``)."""
    return optax.masked(inner, mask)


def MultiSteps(  # noqa: N802 - the core's and optax's name
    inner: GradientTransformation, every_k: int
) -> GradientTransformation:
    """The mean of ``every_k`` gradients, then one step of ``inner``; zero updates in
    between (``optax.MultiSteps``, accumulating in the parameters' dtype as the core does:
    optax's own default is float32)."""
    core.MultiSteps(core.clip(0.0), every_k)  # checks every_k

    def accumulation(tree: Any) -> optax.MultiSteps:  # in the dtype of tree's leaves
        dtypes = {leaf.dtype for leaf in jax.tree.leaves(tree)}
        dtype = dtypes.pop() if len(dtypes) == 1 else jnp.result_type(float)
        return optax.MultiSteps(inner, every_k, accumulator_dtype=dtype)

    def init(params: Any) -> Any:
        return accumulation(params).init(params)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        return accumulation(state.acc_grads).update(updates, state, params)

    return optax.GradientTransformation(init, update)


__all__ = [
    "GradientTransformation",
    "MultiSteps",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "decay_weights",
    "from_optimizer",
    "masked",
    "scale",
    "scale_by_learning_rate",
]
