"""The few element-wise operations a rule needs besides arithmetic, supplied by the caller.

An optimizer's rule (``adam_rule``, ``rmsprop_rule``, …) is written once, with ``+ − × ÷``
and the functions of an :class:`Ops`. Whoever runs the rule passes the operations for its
arrays: :data:`NUMPY_OPS` for NumPy arrays (the readable path), scalar numba functions for
the fused and sweep kernels (``steplab.fast``), jax.numpy or torch functions for those
arrays. Every function is element-wise, so a rule never needs Python branching on values.

``pow`` is used only for per-step scalars such as 1 − ρᵗ, never inside the element-wise
update: NumPy's vectorized ``np.power`` differs from C's ``pow`` in the last bit for some
inputs, so :func:`exact_pow` evaluates C's ``pow`` element by element (per-configuration
arrays are short), and a step gives the same bits whether ρ is a float or an array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class Ops(NamedTuple):
    """Element-wise operations for a rule (each takes and returns arrays or scalars)."""

    sqrt: Callable[[Any], Any]
    maximum: Callable[[Any, Any], Any]
    sign: Callable[[Any], Any]
    abs: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]  # where(condition, if_true, if_false)
    pow: Callable[[Any, Any], Any]  # per-step scalars only (see the module doc)


_pow = np.frompyfunc(math.pow, 2, 1)


def exact_pow(base: Any, exponent: Any) -> Any:
    """``base ** exponent`` as C's ``pow`` gives it, element by element (float64)."""
    if isinstance(base, (float, int)) and isinstance(exponent, (float, int)):
        return math.pow(base, exponent)  # the common case, first: a sweep's table calls often
    if np.ndim(base) == 0 and np.ndim(exponent) == 0:
        return math.pow(float(base), float(exponent))
    values = _pow(np.asarray(base, dtype=np.float64), np.asarray(exponent, dtype=np.float64))
    return np.asarray(values, dtype=np.float64)


#: NumPy's functions: the readable path, on whole arrays.
NUMPY_OPS = Ops(
    sqrt=np.sqrt,
    maximum=np.maximum,
    sign=np.sign,
    abs=np.abs,
    where=np.where,
    pow=exact_pow,
)

__all__ = ["NUMPY_OPS", "Ops", "exact_pow"]
