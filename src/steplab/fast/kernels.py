"""Fused step kernels generated from each optimizer's rule: one pass over memory.

``Optimizer.rule`` (``steplab/optim/*.py``) is the only statement of an algorithm. NumPy
runs it on whole arrays, one array operation at a time; here numba compiles the same
function for one coordinate and calls it inside a parallel loop, so every array is read
once and written once per step. Both compute in float64 (a float32 array is read as
float64 and rounded once when stored), with the same operations in the same order and
per-step scalars (1 − ρᵗ, …) computed once by the same Python code: the results are the
same bits. No optimizer is named here; a new optimizer's rule gets a kernel unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from steplab.fast import _numba, scalar_ops
from steplab.optim.base import decay_weights, l2_penalty

_JITTED: dict[Callable, Any] = {}


def jitted(function: Callable) -> Any:
    """``function`` (a rule, a test function, a helper) as an inlined numba function."""
    if function not in _JITTED:
        _JITTED[function] = _numba.numba.njit(inline="always", error_model="numpy")(function)
    return _JITTED[function]


# --------------------------------------------------------------------------------------
# The fused step kernel, generated for a rule and the moments a configuration keeps
# --------------------------------------------------------------------------------------

_STEP_TEMPLATE = """
def kernel(theta, g, {arrays}h):
{scalars}    for i in prange(theta.size):
        # built per element (free once compiled): numba's parallel lowering cannot pass a
        # NamedTuple into the loop; its floats are read from h before the loop, so that
        # stores to theta cannot alias them and the loop vectorizes
        hp = HP({fields})
        x = float64(theta[i])
        gi = float64(g[i])
{weight_decay}        {outputs} = rule(ops, hp, {inputs})
        theta[i] = x
{stores}"""

_KERNELS: dict[tuple, Any] = {}


def step_kernel(rule: Callable, kept: tuple[bool, ...], weight_decay: str, HP: type,
                statics: tuple) -> Any:  # fmt: skip
    """The parallel kernel ``kernel(theta, g, *kept_moments, h)`` for ``rule``.

    ``kept[j]`` says whether the rule's j-th moment is an array of this state (else the
    rule gets 0.0 and its result is dropped); ``weight_decay`` is ``""``, ``"l2"`` or
    ``"decoupled"``. ``HP`` is the type of the rule's ``hp``; ``statics`` gives, per field,
    a switch's value (a bool, compiled in) or None (a float, read from the float64 array
    ``h`` in order: a NumPy array is far cheaper for numba to receive than a NamedTuple).
    One kernel per combination, compiled on first use.
    """
    key = (rule, kept, weight_decay, HP, statics)
    if key not in _KERNELS:
        names = [f"m{j}" for j, keep in enumerate(kept) if keep]
        decay = {
            "": "",
            "l2": "        gi = l2_penalty(hp, x, gi)\n",
            "decoupled": "        x = decay_weights(hp, x)\n",
        }[weight_decay]
        fields, n = [], 0
        for value in statics:
            if value is None:
                fields.append(f"c{n}")
                n += 1
            else:
                fields.append(repr(bool(value)))
        moments = [f"float64(m{j}[i])" if k else "0.0" for j, k in enumerate(kept)]
        source = _STEP_TEMPLATE.format(
            arrays="".join(f"{n}, " for n in names),
            fields=", ".join(fields),
            scalars="".join(f"    c{j} = h[{j}]\n" for j in range(n)),
            weight_decay=decay,
            outputs=", ".join(["x", *(f"v{j}" if k else "_" for j, k in enumerate(kept))]) + ",",
            inputs=", ".join(["x", "gi", *moments]),
            stores="".join(f"        m{j}[i] = v{j}\n" for j, keep in enumerate(kept) if keep),
        )
        namespace = {
            "HP": HP,
            "ops": scalar_ops,  # a module global: numba inlines its functions
            "prange": _numba.numba.prange,
            "float64": np.float64,
            "rule": jitted(rule),
            "l2_penalty": jitted(l2_penalty),
            "decay_weights": jitted(decay_weights),
        }
        exec(compile(source, f"<steplab kernel for {rule.__qualname__}>", "exec"), namespace)  # noqa: S102
        _KERNELS[key] = _numba.numba.njit(parallel=True, error_model="numpy")(namespace["kernel"])
    return _KERNELS[key]


def _all_finite(g):
    bad = 0
    for i in _numba.prange(g.size):
        bad += not np.isfinite(g[i])
    return bad == 0


_ALL_FINITE = None


def all_finite(g: np.ndarray) -> bool:
    """Whether no element of ``g`` is NaN or ±inf: one parallel read, no temporary."""
    global _ALL_FINITE
    if _ALL_FINITE is None:
        _ALL_FINITE = _numba.numba.njit(parallel=True, error_model="numpy", cache=True)(_all_finite)
    return bool(_ALL_FINITE(g.reshape(-1)))
