"""The array functions a per-tensor rule needs, one table per array library.

A per-tensor rule (Muon, Adafactor, …) sees a whole matrix: besides arithmetic it needs matrix
products, transposes, reductions along axes and, for Shampoo and SOAP, symmetric
eigendecompositions. It is written once over a :class:`MatrixOps` table, and whoever runs it
passes the table for its arrays: :data:`NUMPY_MATRIX_OPS` here, the torch table in
``steplab.torch.matrix``, the jax.numpy table in ``steplab.jax.matrix``.

Every array a rule sees has the configurations as leading axes: a ``(m, n)`` weight is held as
``(K, m, n)`` (K = 1 for one run), so a reduction is always over the *last* axes (``axes``
counts them: ``mean(x, 2)`` is the mean of each configuration's matrix) and ``matmul`` is a
batched product. Hyperparameters are Python floats or arrays of shape ``(K, 1, …)``.

Functions whose name ends in ``_`` (``lerp_``, ``maximum_``, ``rsqrt_``, ``mul_``,
``add_scaled_``, ``mul_into_``) return their result and *may* write it into their first
argument, as torch's in-place methods do: the table the torch optimizers step with does (one
pass over the memory, nothing allocated), NumPy's, JAX's and the pure torch table return a new
array. So a rule calls them only as ``x = ops.f_(x, …)`` on a value it owns (an array it made
itself, or θ or a state array that the result replaces) and never reads the old ``x`` again;
the gradient is never such an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class MatrixOps(NamedTuple):
    """Array functions for a per-tensor rule (see the module doc for the axis convention)."""

    sqrt: Callable[[Any], Any]
    maximum: Callable[[Any, Any], Any]
    minimum: Callable[[Any, Any], Any]
    matmul: Callable[[Any, Any], Any]  # batched over the leading axes
    addmm: Callable[[Any, Any, Any, Any, Any], Any]  # addmm(C, A, B, β, α) = β·C + α·(A·B)
    gram: Callable[[Any], Any]  # gram(X) = X·Xᵀ (symmetric: a table may compute half of it)
    add_gram: Callable[[Any, Any, Any, Any], Any]  # (C, X, β, α): β·C + α·X·Xᵀ, C symmetric
    mT: Callable[[Any], Any]  # swap the last two axes
    sum: Callable[[Any, Any], Any]  # over the last `axes` axes (or a tuple of axes), kept
    mean: Callable[[Any, Any], Any]  # over the last `axes` axes (or a tuple of axes), kept
    eigh: Callable[[Any], tuple[Any, Any]]  # symmetric: (eigenvalues ascending, vectors);
    # where the library's float32 iteration fails to converge, again in float64 (see _eigh)
    float32: Callable[[Any], Any]  # round a per-step scalar to float32 (optax's habit)
    cond: Callable[[Any, Callable[[], Any], Callable[[], Any]], Any]  # if on a step count
    concat: Callable[[list, int], Any]  # join arrays along an axis
    qr: Callable[[Any], Any]  # Q of the reduced QR decomposition (batched)
    argsort: Callable[[Any], Any]  # indices that sort the last axis, ascending
    take: Callable[[Any, Any, int], Any]  # take_along_axis, the indices broadcast first
    flip: Callable[[Any, int], Any]  # reverse one axis
    norm: Callable[[Any, Any], Any]  # √(Σ x²) over the last `axes` axes (or a tuple), kept
    cast: Callable[[Any, Any], Any]  # x in the dtype named ("bfloat16") or of another array
    lerp: Callable[[Any, Any, Any], Any]  # lerp(a, b, w) = a + w·(b − a) = (1 − w)·a + w·b
    # may write into the first argument (see the module doc):
    lerp_: Callable[[Any, Any, Any], Any]  # lerp_(a, b, w) = a + w·(b − a) = (1 − w)·a + w·b
    maximum_: Callable[[Any, Any], Any]  # maximum_(x, floor): x clamped below at floor
    rsqrt_: Callable[[Any], Any]  # 1/√x
    mul_: Callable[[Any, Any], Any]  # x·y
    add_scaled_: Callable[[Any, Any, Any], Any]  # add_scaled_(x, α, y) = x + α·y
    # mul_into_(buffer, x, y) = x·y (broadcast to buffer's shape), which may be written into
    # buffer: an array the rule made and no longer reads (its values are dropped, its memory
    # reused: no new array, whose first touch costs page faults at 4096²)
    mul_into_: Callable[[Any, Any, Any], Any]


def _last(axes: int | tuple[int, ...]) -> tuple[int, ...]:
    """``axes`` as a tuple: an int k means the last k axes."""
    return axes if isinstance(axes, tuple) else tuple(range(-axes, 0))


def _times(alpha: Any, x: Any) -> Any:
    """α·x, skipping the product when α is the number 1."""
    return x if isinstance(alpha, float) and alpha == 1.0 else alpha * x


def _cast(x: Any, like: Any) -> Any:
    if isinstance(like, str):  # NumPy has no bfloat16 of its own
        raise ValueError(
            f"NumPy arrays cannot be cast to {like}; a {like} iteration runs on the torch and "
            "JAX paths (steplab.torch.matrix, steplab.jax.matrix)"
        )
    return x.astype(like.dtype, copy=False)


def _eigh(S: Any) -> tuple[Any, Any]:
    """np.linalg.eigh, retried in float64 where float32's fails to converge.

    LAPACK's symmetric eigensolver can stop without converging on a finite, badly graded
    float32 matrix (Shampoo's statistics after steps of very unequal gradients); in float64 the
    same matrix converges. The retry is the authors' distributed Shampoo's
    (``retry_double_precision=True``, its default) and SOAP's reference code's; the result comes
    back in S's dtype. A float64 failure is raised.
    """
    try:
        return np.linalg.eigh(S)
    except np.linalg.LinAlgError:
        if S.dtype == np.float64:
            raise
        lam, V = np.linalg.eigh(S.astype(np.float64))
        return lam.astype(S.dtype), V.astype(S.dtype)


def _broadcast_index(x: Any, idx: Any, axis: int) -> Any:
    shape = list(x.shape)
    shape[axis] = idx.shape[axis]
    return np.broadcast_to(idx, shape)


#: NumPy's functions (matrix products go to BLAS).
NUMPY_MATRIX_OPS = MatrixOps(
    sqrt=np.sqrt,
    maximum=np.maximum,
    minimum=np.minimum,
    matmul=np.matmul,
    addmm=lambda C, A, B, beta, alpha: beta * C + _times(alpha, np.matmul(A, B)),
    gram=lambda X: np.matmul(X, np.swapaxes(X, -1, -2)),
    add_gram=lambda C, X, beta, alpha: beta * C + _times(alpha, X @ np.swapaxes(X, -1, -2)),
    mT=lambda x: np.swapaxes(x, -1, -2),
    sum=lambda x, axes: np.sum(x, axis=_last(axes), keepdims=True),
    mean=lambda x, axes: np.mean(x, axis=_last(axes), keepdims=True),
    eigh=_eigh,
    float32=np.float32,
    cond=lambda pred, if_true, if_false: if_true() if pred else if_false(),
    concat=lambda arrays, axis: np.concatenate(arrays, axis=axis),
    qr=lambda x: np.linalg.qr(x)[0],
    argsort=lambda x: np.argsort(x, axis=-1, kind="stable"),
    take=lambda x, idx, axis: np.take_along_axis(x, _broadcast_index(x, idx, axis), axis=axis),
    flip=lambda x, axis: np.flip(x, axis=axis),
    norm=lambda x, axes: np.sqrt(np.sum(x * x, axis=_last(axes), keepdims=True)),
    cast=_cast,
    lerp=lambda a, b, w: a + w * (b - a),
    lerp_=lambda a, b, w: a + w * (b - a),
    maximum_=np.maximum,
    rsqrt_=lambda x: 1 / np.sqrt(x),
    mul_=lambda x, y: x * y,
    add_scaled_=lambda x, alpha, y: x + alpha * y,
    mul_into_=lambda buffer, x, y: x * y,
)

__all__ = ["NUMPY_MATRIX_OPS", "MatrixOps"]
