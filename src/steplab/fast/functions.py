"""The built-in 2-D test functions compiled for the sweep kernels: no formula of their own.

Each test function is written once, in :mod:`steplab.formulas`, as element-wise formulas
of the coordinates (:data:`steplab.formulas.FORMULAS`). The problems run them on NumPy
columns; this module compiles the same functions with numba for one point, inlined into
the caller (a call left inside the sweep loop would stop it vectorizing).

The kernels call ``value(x, y, p0, p1, p2)`` and ``grad(x, y, p0, p1, p2) -> (gx, gy)``,
with the function's parameters (Rosenbrock's a and b, …) as ``p0, p1, p2`` in the order
of :data:`PARAMETERS`, zero-padded: scalars, not an array, since an array passed into a
function inside the sweep loop would cost reference counting there and stop the loop
from vectorizing. Tests check the compiled functions against the problems bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import FunctionType
from typing import Any

from steplab import formulas as core
from steplab.fast import _numba
from steplab.fast.kernels import jitted

#: name -> (parameter names, default values), as the formulas take them
PARAMETERS = core.PARAMETERS

_REGISTERED: set[Callable] = set()


def _register_exact_exp() -> None:
    """``core.exact_exp`` loops over ``math.exp`` for NumPy's arrays; for one float64 in
    compiled code it is ``math.exp`` itself (the same C function, hence the same bits)."""
    from numba.extending import overload

    def exp_of_one_float(z):
        return lambda z: math.exp(z)

    overload(core.exact_exp, inline="always")(exp_of_one_float)
    _REGISTERED.add(core.exact_exp)


def _make_compilable(function: Any) -> None:
    """Let numba compile ``function`` and the functions of its module that it calls.

    A formula may call helpers (Beale's residuals, Ackley's pieces): each is registered
    with numba's ``register_jitable``, which leaves it unchanged for Python and NumPy and
    has compiled callers compile it too, inlined.
    """
    from numba.extending import register_jitable

    if function in _REGISTERED:
        return
    _REGISTERED.add(function)
    for name in function.__code__.co_names:  # the global names it uses
        callee = function.__globals__.get(name)
        if isinstance(callee, FunctionType) and callee.__module__ == function.__module__:
            _make_compilable(callee)
    register_jitable(inline="always", error_model="numpy")(function)


_AT_POINT = """
def at_point(x, y, p0, p1, p2):
    return formula(x, y{parameters})
"""


def _at_point(formula: Callable, count: int) -> Any:
    """``formula(x, y, *parameters)`` compiled as ``at_point(x, y, p0, p1, p2)``."""
    _make_compilable(formula)
    namespace = {"formula": formula}
    source = _AT_POINT.format(parameters="".join(f", p{j}" for j in range(count)))
    exec(compile(source, f"<steplab.fast: {formula.__name__}>", "exec"), namespace)  # noqa: S102
    return jitted(namespace["at_point"])


#: name -> (value, gradient) numba functions, compiled on first use (None without numba)
FUNCTIONS: dict[str, tuple[Any, Any]] = dict.fromkeys(core.FORMULAS, (None, None))
if _numba.available():
    _register_exact_exp()
    for _name, (_value, _grad) in core.FORMULAS.items():
        _count = len(PARAMETERS[_name][0])
        FUNCTIONS[_name] = (_at_point(_value, _count), _at_point(_grad, _count))
