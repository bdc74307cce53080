"""Per-tensor optimizers (Muon, Adafactor) as optax transformations, from the core's rules.

::

    import steplab.jax.matrix as sjm
    tx = sjm.make("muon", preset="optax", lr=0.02)      # every leaf must be a matrix
    tx = sjm.routed("muon", lr=0.02)                    # 2-D leaves: Muon; others: AdamW
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)    # params are needed (jit-able)

The rule (:mod:`steplab.optim.matrix`) runs on each leaf with jax.numpy
(:data:`JAX_MATRIX_OPS`); the update is the new value minus the old. Hyperparameters are
Python numbers (checked by the core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from steplab.optim.matrix import MatrixOps, MatrixOptimizer
from steplab.optim.registry import lookup, registered


def _last(axes: int | tuple[int, ...]) -> tuple[int, ...]:
    """``axes`` as a tuple: an int k means the last k axes."""
    return axes if isinstance(axes, tuple) else tuple(range(-axes, 0))


def _broadcast_index(x: Any, idx: Any, axis: int) -> Any:
    shape = list(x.shape)
    shape[axis] = idx.shape[axis]
    return jnp.broadcast_to(idx, shape)


#: jax.numpy's functions for the per-tensor rules.
JAX_MATRIX_OPS = MatrixOps(
    sqrt=jnp.sqrt,
    maximum=jnp.maximum,
    minimum=jnp.minimum,
    matmul=jnp.matmul,
    addmm=lambda C, A, B, beta, alpha: beta * C + alpha * jnp.matmul(A, B),
    gram=lambda X: jnp.matmul(X, jnp.swapaxes(X, -1, -2)),
    add_gram=lambda C, X, beta, alpha: beta * C + alpha * jnp.matmul(X, jnp.swapaxes(X, -1, -2)),
    mT=lambda x: jnp.swapaxes(x, -1, -2),
    sum=lambda x, axes: jnp.sum(x, axis=_last(axes), keepdims=True),
    mean=lambda x, axes: jnp.mean(x, axis=_last(axes), keepdims=True),
    eigh=jnp.linalg.eigh,
    float32=jnp.float32,
    cond=lambda pred, if_true, if_false: jax.lax.cond(pred, if_true, if_false),
    concat=lambda arrays, axis: jnp.concatenate(arrays, axis=axis),
    qr=lambda x: jnp.linalg.qr(x)[0],
    argsort=lambda x: jnp.argsort(x, axis=-1, stable=True),
    take=lambda x, idx, axis: jnp.take_along_axis(x, _broadcast_index(x, idx, axis), axis=axis),
    flip=lambda x, axis: jnp.flip(x, axis=axis),
    norm=lambda x, axes: jnp.sqrt(jnp.sum(x * x, axis=_last(axes), keepdims=True)),
    cast=lambda x, like: x.astype(jnp.dtype(like) if isinstance(like, str) else like.dtype),
    lerp=lambda a, b, w: a + w * (b - a),
    lerp_=lambda a, b, w: a + w * (b - a),  # (JAX arrays are immutable: never in place)
    maximum_=jnp.maximum,
    rsqrt_=lambda x: 1 / jnp.sqrt(x),
    mul_=lambda x, y: x * y,
    add_scaled_=lambda x, alpha, y: x + alpha * y,
    mul_into_=lambda buffer, x, y: x * y,
)


class MatrixState(NamedTuple):
    """The step count and, per leaf (in the params' flattening order), its state arrays."""

    count: Any
    tensors: tuple[dict[str, Any], ...]


def transformation(core: MatrixOptimizer) -> optax.GradientTransformation:
    """The optax transformation of a configured core optimizer (e.g. ``Muon(lr=0.02)``)."""
    if core.configurations() is not None:
        raise ValueError(f"{core.name}: steplab.jax.matrix takes scalar hyperparameters")

    def init(params: Any) -> MatrixState:
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        tensors = []
        for path, leaf in leaves:
            core.check_tensor(tuple(leaf.shape), f"leaf {jax.tree_util.keystr(path)}")
            arrays = core.init_arrays(tuple(leaf.shape), np.dtype(leaf.dtype), None)
            tensors.append({k: jnp.asarray(v) for k, v in arrays.items()})
        return MatrixState(count=jnp.zeros([], jnp.int32), tensors=tuple(tensors))

    def update(updates: Any, state: MatrixState, params: Any = None) -> tuple[Any, MatrixState]:
        if params is None:
            raise ValueError(f"{core.name} needs the parameters: tx.update(grads, state, params)")
        grads, treedef = jax.tree_util.tree_flatten(updates)
        values = jax.tree_util.tree_leaves(params)
        t = state.count + 1
        out, tensors = [], []
        for x, g, arrays in zip(values, grads, state.tensors, strict=True):
            new_x, new = core.apply(JAX_MATRIX_OPS, t, x, g, arrays, batched=False)
            out.append((new_x - x).astype(x.dtype))
            tensors.append(new)
        return jax.tree_util.tree_unflatten(treedef, out), MatrixState(
            count=t, tensors=tuple(tensors)
        )

    return optax.GradientTransformation(init, update)


def make(name: str, preset: str = "seed", **hyperparameters: Any) -> optax.GradientTransformation:
    """The transformation of a core per-tensor optimizer by name, e.g. ``make("adafactor")``."""
    core = lookup(name)
    if core.KIND != "per_tensor":
        raise ValueError(
            f"{core.name} is element-wise: use steplab.jax.make; the per-tensor optimizers "
            f"are {', '.join(registered('per_tensor'))}"
        )
    return transformation(core.like(preset, **hyperparameters))


def labels_by_ndim(params: Any) -> Any:
    """The default routing: ``"matrix"`` for 2-D leaves, ``"other"`` for the rest."""
    return jax.tree.map(lambda x: "matrix" if jnp.ndim(x) == 2 else "other", params)


def routed(matrix: str | optax.GradientTransformation, preset: str = "seed",
           other: optax.GradientTransformation | None = None,
           labels: Any | Callable[[Any], Any] = labels_by_ndim,
           **hyperparameters: Any) -> optax.GradientTransformation:  # fmt: skip
    """``matrix`` (a name, or a transformation) on the leaves labelled ``"matrix"``, ``other``
    (default: steplab's AdamW, ``steplab.jax.make("adamw")``) on the rest, via
    ``optax.partition``. ``labels``: a pytree of labels or a function of the params."""
    if isinstance(matrix, str):
        matrix = make(matrix, preset, **hyperparameters)
    if other is None:
        from steplab.jax import make as make_elementwise

        other = make_elementwise("adamw")
    return optax.partition({"matrix": matrix, "other": other}, labels)


__all__ = ["JAX_MATRIX_OPS", "MatrixState", "labels_by_ndim", "make", "routed", "transformation"]
