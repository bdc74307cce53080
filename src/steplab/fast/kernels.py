"""Fused step kernels generated from each optimizer's rule: one pass over memory.

``Optimizer.rule`` (``steplab/optim/*.py``) is the only statement of an algorithm. NumPy
runs it on whole arrays, one array operation at a time; here numba compiles the same
function for one coordinate and calls it inside a parallel loop, so every array is read
once and written once per step. The optimizer's element-wise pieces (its weight decay, a
chain's clipping: ``steplab.optim.pieces``) are compiled into the same loop, before and after
the rule, so a chain of them is still one pass. Both compute in the arrays' compute dtype
(``steplab.optim.base.compute_dtype``: float32 for float32, else float64), with the same
operations in the same order and per-step scalars (1 − ρᵗ, …) computed once by the same
Python code and rounded to that dtype: the results are the same bits. No optimizer is
named here; a new optimizer's rule gets a kernel unchanged.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from steplab.fast import _numba, scalar_ops

_JITTED: dict[tuple, Any] = {}


def jitted(function: Callable, dtype: Any = np.float64) -> Any:
    """``function`` (a rule, a test function, a helper) as an inlined numba function whose
    arithmetic on ``dtype`` numbers stays in ``dtype``."""
    key = (function, np.dtype(dtype))
    if key not in _JITTED:
        if np.dtype(dtype) != np.float64:
            function = with_typed_literals(function, np.dtype(dtype).type)
        _JITTED[key] = _numba.numba.njit(inline="always", error_model="numpy")(function)
    return _JITTED[key]


class _WrapLiterals(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            call = ast.Call(ast.Name("_literal", ast.Load()), [node], [])
            return ast.copy_location(call, node)
        return node


def with_typed_literals(function: Callable, literal_type: type) -> Callable:
    """A copy of ``function`` whose number literals are ``literal_type`` numbers.

    Why: in ``1 - hp.rho1`` NumPy treats the Python number 1 as "weak" (NEP 50), so with a
    float32 ρ₁ the result is float32; numba types the literal as int64 and promotes the
    result to float64. Writing the literal as ``float32(1)`` gives numba NumPy's result,
    so the rule stays as readable as the seed and both paths do the same float32 steps.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef), function
    definition.decorator_list = []
    tree = ast.fix_missing_locations(_WrapLiterals().visit(tree))
    namespace = {**function.__globals__, "_literal": literal_type}
    filename = f"<{function.__qualname__} with {literal_type.__name__} literals>"
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102 - our own rule's source
    return namespace[definition.name]


# --------------------------------------------------------------------------------------
# The fused step kernel, generated for a rule and the moments a configuration keeps
# --------------------------------------------------------------------------------------

_STEP_TEMPLATE = """
def kernel(theta, g, {arrays}numbers, check):
    if check and not all_finite(g):  # before anything is written, in the same call
        return False
{scalars}    for i in prange(theta.size):
        # built per element (free once compiled): numba's parallel lowering cannot pass a
        # NamedTuple into the loop; its floats are read from numbers before the loop, so that
        # stores to theta cannot alias them and the loop vectorizes
        hp = HP({fields})
        x = compute(theta[i])
        gi = compute(g[i])
{before}        {outputs} = rule(ops, hp, {inputs})
{after}        theta[i] = x
{stores}    return True
"""

_KERNELS: dict[tuple, Any] = {}


def step_kernel(rule: Callable, kept: tuple[bool, ...], pieces: tuple[tuple, tuple], HP: type,
                statics: tuple, dtype: Any = np.float64, parallel: bool = True) -> Any:  # fmt: skip
    """The parallel kernel ``kernel(theta, g, *kept_moments, numbers, check)`` for ``rule``,
    computing in ``dtype`` (the arrays' compute dtype; ``numbers`` holds the step values'
    float fields in that dtype). With ``parallel=False`` the same source compiles to a loop
    on the calling thread (no thread pool: for callers that run their own, such as torch).

    ``kept[j]`` says whether the rule's j-th moment is an array of this state (else the
    rule gets 0.0 and its result is dropped); ``pieces`` is ``(before, after)``: the piece
    functions (``steplab.optim.pieces``) that run before and after the rule, in order
    (only those switched on). ``HP`` is the type of the rule's ``hp``; ``statics`` gives, per field,
    a switch's value (a bool, compiled in) or None (a float, read from the float64 array
    ``numbers`` in order: a NumPy array is far cheaper for numba to receive than a NamedTuple).
    One kernel per combination, compiled on first use.
    """
    return _compiled(_STEP_TEMPLATE, rule, kept, pieces, HP, statics, dtype, parallel)["kernel"]


def _compiled(template: str, rule: Callable, kept: tuple[bool, ...], pieces: tuple[tuple, tuple],
              HP: type, statics: tuple, dtype: Any,
              parallel: bool = True) -> dict[str, Any]:  # fmt: skip
    """The functions of ``template`` filled in for ``rule`` (see :func:`step_kernel`), each
    compiled by numba as a parallel kernel (``parallel=False``: a loop on the calling
    thread): name -> kernel."""
    dtype = np.dtype(dtype)
    key = (template, rule, kept, pieces, HP, statics, dtype, parallel)
    if key not in _KERNELS:
        names = [f"m{j}" for j, keep in enumerate(kept) if keep]
        before, after = pieces
        lines_before = "".join(
            f"        x, gi = before{j}(ops, hp, x, gi)\n" for j in range(len(before))
        )
        if after:  # they read the point the step started from
            lines_before = "        x_start = x\n" + lines_before
        lines_after = "".join(
            f"        x = after{j}(ops, hp, x_start, x, gi)\n" for j in range(len(after))
        )
        fields, n = [], 0
        for value in statics:
            if value is None:
                fields.append(f"c{n}")
                n += 1
            else:
                fields.append(repr(bool(value)))
        moments = [f"compute(m{j}[i])" if k else "compute(0.0)" for j, k in enumerate(kept)]
        source = template.format(
            arrays="".join(f"{n}, " for n in names),
            fields=", ".join(fields),
            scalars="".join(f"    c{j} = numbers[{j}]\n" for j in range(n)),
            before=lines_before,
            after=lines_after,
            outputs=", ".join(["x", *(f"v{j}" if k else "_" for j, k in enumerate(kept))]) + ",",
            inputs=", ".join(["x", "gi", *moments]),
            stores="".join(f"        m{j}[i] = v{j}\n" for j, keep in enumerate(kept) if keep),
        )
        namespace = {
            "HP": HP,
            "ops": scalar_ops,  # a module global: numba inlines its functions
            "prange": _numba.numba.prange if parallel else range,
            "compute": dtype.type,
            "rule": jitted(rule, dtype),
            # a call, not inlined: its fast-math flag (reassoc) stays on its own sum and
            # never reaches the rule's arithmetic
            "all_finite": _all_finite_kernel(parallel),
            **{f"before{j}": jitted(f, dtype) for j, f in enumerate(before)},
            **{f"after{j}": jitted(f, dtype) for j, f in enumerate(after)},
        }
        before_exec = set(namespace)
        exec(compile(source, f"<steplab kernel for {rule.__qualname__}>", "exec"), namespace)  # noqa: S102
        defined = [k for k in namespace if k not in before_exec and k != "__builtins__"]
        _KERNELS[key] = {
            k: _numba.numba.njit(parallel=parallel, error_model="numpy")(namespace[k])
            for k in defined
        }
    return _KERNELS[key]


# --------------------------------------------------------------------------------------
# The cautious mask in two passes (steplab.optim.modifiers.Cautious around a fused rule)
# --------------------------------------------------------------------------------------

# The mask's rescaling n/(Σmask + 1) sums over this step's update, which needs the new
# moments: pass 1 runs the rule and counts the mask, writing nothing; pass 2 runs it again
# and writes θ = start + Δθ·(mask·scale) and the moments. The same per-element code as the
# step kernel; ``decay`` is the decoupled decay's factor 1 − αλ taken out of the rule (1
# when there is none: x·1 is x), ``g`` the raw gradient the mask compares with.
_CAUTIOUS_TEMPLATE = """
def count(theta, g, {arrays}numbers, decay):
{scalars}    total = 0
    for i in prange(theta.size):
        hp = HP({fields})
        x = compute(theta[i]) * decay
        start = x
        gi = compute(g[i])
        g_raw = gi
{before}        {outputs} = rule(ops, hp, {inputs})
{after}        delta = x - start
        if -delta * g_raw > 0:
            total += 1
    return total


def apply(theta, g, {arrays}numbers, decay, scale):
{scalars}    for i in prange(theta.size):
        hp = HP({fields})
        x = compute(theta[i]) * decay
        start = x
        gi = compute(g[i])
        g_raw = gi
{before}        {outputs} = rule(ops, hp, {inputs})
{after}        delta = x - start
        mask = compute(1.0) if -delta * g_raw > 0 else compute(0.0)
        theta[i] = start + delta * (mask * scale)
{stores}
"""


def cautious_kernels(
    rule: Callable, kept: tuple[bool, ...], pieces: tuple[tuple, tuple], HP: type,
    statics: tuple, dtype: Any = np.float64,
) -> tuple[Any, Any]:  # fmt: skip
    """``(count, apply)`` for the cautious mask around ``rule`` (arguments as
    :func:`step_kernel`'s): ``count(theta, g, *moments, numbers, decay)`` returns Σmask
    and writes nothing; ``apply(theta, g, *moments, numbers, decay, scale)`` takes the
    masked step in place."""
    kernels = _compiled(_CAUTIOUS_TEMPLATE, rule, kept, pieces, HP, statics, dtype)
    return kernels["count"], kernels["apply"]


def _sum_of_squares(g):
    # float64 sum of g², in SIMD lanes (fastmath "reassoc" on this sum only): at the speed
    # of reading g; the order is fixed by the thread count, so a step gets the same number
    # on every path
    total = 0.0
    for i in _numba.prange(g.size):
        x = np.float64(g[i])
        total += x * x
    return total


_SUM_OF_SQUARES = None


def sum_of_squares(g: np.ndarray) -> float:
    """Σg² over every element of ``g``, in float64: one parallel pass."""
    global _SUM_OF_SQUARES
    if _SUM_OF_SQUARES is None:
        _SUM_OF_SQUARES = _numba.numba.njit(
            parallel=True, error_model="numpy", fastmath={"reassoc"}, cache=True
        )(_sum_of_squares)
    if g.dtype not in (np.float32, np.float64):
        g = g.astype(np.float64)
    return float(_SUM_OF_SQUARES(g.reshape(-1)))


def _all_finite(g):
    # g·0 is ±0 for a finite g and NaN for ±inf or NaN, so the sum is 0 exactly when all
    # are finite, in whatever order it is added: that lets the loop add in SIMD lanes
    # (fastmath "reassoc" below, nothing else), at the speed of reading g
    total = g.dtype.type(0)
    for i in _numba.prange(g.size):
        total += g[i] * g.dtype.type(0)
    return total == 0


_ALL_FINITE: dict[bool, Any] = {}


def _all_finite_kernel(parallel: bool = True) -> Any:
    # only the parallel one is cached on disk: numba's cache does not tell the two apart
    # (a serial caller would load the parallel code, and loading it starts the thread pool)
    if parallel not in _ALL_FINITE:
        _ALL_FINITE[parallel] = _numba.numba.njit(
            parallel=parallel, error_model="numpy", fastmath={"reassoc"}, cache=parallel
        )(_all_finite)
    return _ALL_FINITE[parallel]


def all_finite(g: np.ndarray) -> bool:
    """Whether no element of ``g`` is NaN or ±inf: one parallel read, no temporary."""
    return bool(_all_finite_kernel()(g.reshape(-1)))
