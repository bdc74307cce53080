"""The rules' element-wise operations for one float64 inside a numba kernel.

This module is the kernels' ``ops`` (it has the attributes of
:class:`steplab.optim.ops.Ops`). A module rather than a NamedTuple: numba resolves
``ops.sqrt`` on a module at compile time and inlines it, so the loops stay free of calls
and vectorize; each function gives NumPy's result for the same float64 inputs.
"""

from __future__ import annotations

import math

import numpy as np

from steplab.fast._numba import lazy_jit


@lazy_jit(inline=True)
def sqrt(x):
    return math.sqrt(x)  # error_model="numpy": √(negative) is NaN, as np.sqrt


@lazy_jit(inline=True)
def maximum(a, b):
    return a if (a >= b or a != a) else b  # NaN in either wins, as np.maximum


@lazy_jit(inline=True)
def sign(x):
    return np.sign(x)


@lazy_jit(inline=True)
def abs(x):  # noqa: A001 - the Ops field's name
    return math.fabs(x)


@lazy_jit(inline=True)
def where(condition, if_true, if_false):
    return if_true if condition else if_false


@lazy_jit(inline=True)
def pow(a, b):  # noqa: A001 - the Ops field's name
    return math.pow(a, b)
