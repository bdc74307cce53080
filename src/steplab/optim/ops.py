"""The few element-wise operations a rule needs besides arithmetic, supplied by the caller.

An optimizer's rule (``adam_rule``, ``rmsprop_rule``, …) is written once, with ``+ − × ÷``
and the functions of an :class:`Ops`. Whoever runs the rule passes the operations for its
arrays. Each backend defines its table once, in one place:

==========================  =================================================================
NumPy (the readable path)   :data:`NUMPY_OPS`, here
numba (fused step, sweeps)  :mod:`steplab.fast.scalar_ops` (a module with these attributes)
torch (both routes)         :data:`steplab.torch.ops.TORCH_OPS`
JAX                         :data:`steplab.jax.transform.JAX_OPS`
==========================  =================================================================

**The contract.** Every function is element-wise and takes, besides the backend's arrays,
plain numbers (the step's values): a rule never branches on array values in Python (it
uses ``where``), so the same rule runs on NumPy arrays, on one float inside a numba loop,
on lists of torch tensors and on traced JAX arrays. ``where(c, x, y)`` with a number ``c``
(a condition on t, such as RAdam's ρₜ > 5) picks a whole operand. ``maximum`` propagates
NaN (as ``np.maximum``).

``pow`` is used only for per-step scalars such as 1 − ρᵗ, never inside the element-wise
update, and every backend uses the one :func:`exact_pow`: NumPy's vectorized ``np.power``
differs from C's ``pow`` in the last bit for some inputs, so numbers and NumPy arrays get
C's ``pow`` element by element (per-configuration arrays are short), and a step gives the
same bits whether ρ is a float or an array, on every backend. Other arrays (a traced JAX
value, a torch tensor) use their own ``**``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class Ops(NamedTuple):
    """Element-wise operations for a rule (each takes and returns arrays or numbers)."""

    sqrt: Callable[[Any], Any]
    maximum: Callable[[Any, Any], Any]
    sign: Callable[[Any], Any]
    abs: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]  # where(condition, if_true, if_false)
    pow: Callable[[Any, Any], Any]  # per-step scalars only (see the module doc)


_pow = np.frompyfunc(math.pow, 2, 1)


def exact_pow(base: Any, exponent: Any) -> Any:
    """``base ** exponent`` as C's ``pow`` gives it for numbers and NumPy arrays (element by
    element, float64); any other array type (torch, JAX) with its own ``**``."""
    if isinstance(base, numbers.Real) and isinstance(exponent, numbers.Real):
        return math.pow(base, exponent)  # the common case, first: a sweep's table calls often
    if isinstance(base, (np.ndarray, numbers.Real)) and isinstance(
        exponent, (np.ndarray, numbers.Real)
    ):
        if np.ndim(base) == 0 and np.ndim(exponent) == 0:  # type: ignore[arg-type]
            return math.pow(float(base), float(exponent))
        values = _pow(np.asarray(base, dtype=np.float64), np.asarray(exponent, dtype=np.float64))
        return np.asarray(values, dtype=np.float64)
    return base**exponent


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
