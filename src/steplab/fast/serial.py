"""Single-threaded passes over many arrays in one call, for callers with their own threads.

:mod:`steplab.fast.kernels` compiles each rule into a *parallel* loop run by numba's thread
pool. A caller that runs its own pool (torch on CPU, with OpenMP) should not start a second
one in its process: two pools spin on the same cores. So here the same generated source
compiles into a loop on the calling thread (``step_kernel(..., parallel=False)``), and one
call steps a whole table of arrays given by address (θ, ĝ and each moment of one tensor
per row: a model's hundreds of small tensors cost one call, not hundreds). The reductions
(Σĝ² in float64, "is ĝ finite") read the same tables, also on the calling thread.

Every function trusts its table: each address must point at a live, C-contiguous array of
``dtype`` with the row's number of elements, and the arrays a step writes must not overlap
the arrays it reads. The step gives the bits of the NumPy rule (the fused kernel's source,
in the same order, without fast-math: numba does not contract ``a + s·b`` into one rounding
unless told to).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steplab.fast import _numba, dispatch, kernels

#: What :func:`step_table` raises when numba cannot compile a rule (nothing is written).
CompileError = dispatch.CompileError

_TABLE_STEP = """
def table_step(addresses, sizes, numbers):
    for j in range(sizes.size):
        n = sizes[j]
        step({arrays}numbers, False)
"""

_STEPS: dict[tuple, Any] = {}
_POINTERS: dict[np.dtype, Any] = {}


def _pointer(dtype: np.dtype) -> Any:
    """A numba intrinsic turning an address (int64) into a pointer to ``dtype`` numbers."""
    if dtype not in _POINTERS:
        from numba.core import types
        from numba.extending import intrinsic

        element = _numba.numba.from_dtype(dtype)

        @intrinsic
        def pointer(typingctx, address):
            def codegen(context, builder, signature, args):
                return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

            return types.CPointer(element)(types.int64), codegen

        _POINTERS[dtype] = pointer
    return _POINTERS[dtype]


def _table_kernel(cls: Any, kept: tuple[bool, ...], pieces: tuple[tuple, tuple], HP: type,
                  statics: tuple, dtype: np.dtype) -> Any:  # fmt: skip
    key = (cls.rule, kept, pieces, HP, statics, dtype)
    if key not in _STEPS:
        columns = 2 + sum(kept)  # θ, ĝ, the kept moments
        arrays = "".join(f"carray(pointer(addresses[j, {c}]), n), " for c in range(columns))
        namespace = {
            "step": kernels.step_kernel(cls.rule, kept, pieces, HP, statics, dtype, parallel=False),
            "carray": _numba.numba.carray,
            "pointer": _pointer(dtype),
        }
        source = _TABLE_STEP.format(arrays=arrays)
        exec(
            compile(source, f"<steplab table step for {cls.rule.__qualname__}>", "exec"), namespace
        )  # noqa: S102
        # nogil: like torch's kernels, the step lets other Python threads run meanwhile
        _STEPS[key] = _numba.numba.njit(error_model="numpy", nogil=True)(namespace["table_step"])
    return _STEPS[key]


def step_table(optimizer: Any, hp: Any, addresses: np.ndarray, sizes: np.ndarray,
               dtype: Any, moments: tuple[str, ...]) -> None:  # fmt: skip
    """One step of ``optimizer``'s rule (with its switched-on pieces) on every row of
    ``addresses``, in place, on the calling thread.

    ``addresses`` (int64, one row per tensor) holds the addresses of θ, ĝ and the moments
    named in ``moments`` (those the state keeps, in ``optimizer.moment_names()`` order);
    ``sizes`` (int64) each row's number of elements; ``dtype`` (float32 or float64) theirs.
    ``hp``: the step values (``prepare_step``), whose numbers are rounded to ``dtype`` as the
    NumPy step rounds them. Raises :class:`steplab.fast.CompileError` (nothing written) if
    numba cannot compile the rule.
    """
    cls = type(optimizer)
    dtype = np.dtype(dtype)
    statics = tuple(v if isinstance(v, bool) else None for v in hp)
    numbers = np.array([v for v in hp if not isinstance(v, bool)], dtype=dtype)
    # a step after the first looks its kernel up by what picks it, and does nothing else in
    # Python: a memory-bound step leaves the caches cold, and every line of Python around
    # it then costs several times its warm time (docs/speed.md, "SGD's default step")
    key = (cls, moments, type(hp), statics, dtype, addresses.shape[1])
    kernel = _READY.get(key)
    try:
        if kernel is None:
            kernel = _READY[key] = _checked_kernel(optimizer, hp, addresses, statics, dtype,
                                                   moments)  # fmt: skip
        kernel(addresses, sizes, numbers)
    except _numba.compile_errors() as exc:  # compiling fails before anything runs
        raise CompileError(f"numba could not compile the {optimizer.name} rule ({exc})") from exc


#: (optimizer class, moments, step values' type, switches, dtype, columns) -> kernel
_READY: dict[tuple, Any] = {}


def _checked_kernel(optimizer: Any, hp: Any, addresses: np.ndarray, statics: tuple,
                    dtype: np.dtype, moments: tuple[str, ...]) -> Any:  # fmt: skip
    """The table kernel for ``optimizer``'s rule with the pieces ``hp`` switches on, after
    checking that the table's columns are θ, ĝ and ``moments`` in the rule's order."""
    cls = type(optimizer)
    names = cls.moment_names()
    kept = tuple(name in moments for name in names)
    if [n for n in names if n in moments] != list(moments) or addresses.shape[1] != 2 + len(
        moments
    ):
        raise ValueError(
            f"{optimizer.name}: the table's moment columns {moments} must be moments of "
            f"{names}, in that order, one column each after θ and ĝ"
        )
    pieces = dispatch.switched_on(cls, hp)
    return _table_kernel(cls, kept, pieces, type(hp), statics, dtype)


# -- reductions over a table of arrays (one address per row) -------------------------------

# Each array is read as 8 far-apart streams at once, one accumulator each: on the 2-core
# box at least as fast as one stream, sometimes faster (benchmarks/bench_torch_optim.py
# --check-pass, "8 streams at once" against "BLAS dot x·x"; docs/speed.md).
_REDUCTIONS = """
def sum_of_squares(addresses, sizes):
    # Σx² in float64 (fast-math "reassoc" on this function only: lanes, any order)
    total = 0.0
    for j in range(sizes.size):
        x = carray(pointer(addresses[j]), sizes[j])
        n = x.size // 8
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for i in range(n):
            a0 += float64(x[i]) ** 2
            a1 += float64(x[n + i]) ** 2
            a2 += float64(x[2 * n + i]) ** 2
            a3 += float64(x[3 * n + i]) ** 2
            a4 += float64(x[4 * n + i]) ** 2
            a5 += float64(x[5 * n + i]) ** 2
            a6 += float64(x[6 * n + i]) ** 2
            a7 += float64(x[7 * n + i]) ** 2
        total += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
        for i in range(8 * n, x.size):
            total += float64(x[i]) ** 2
    return total


def sum_times_zero(addresses, sizes):
    # x·0 is ±0 for a finite x and NaN for ±inf or NaN: the sum is 0 exactly when every
    # x is finite, in whatever order it is added (so "reassoc" cannot change the answer)
    total = zero
    for j in range(sizes.size):
        x = carray(pointer(addresses[j]), sizes[j])
        n = x.size // 8
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        for i in range(n):
            a0 += x[i] * zero
            a1 += x[n + i] * zero
            a2 += x[2 * n + i] * zero
            a3 += x[3 * n + i] * zero
            a4 += x[4 * n + i] * zero
            a5 += x[5 * n + i] * zero
            a6 += x[6 * n + i] * zero
            a7 += x[7 * n + i] * zero
        total += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
        for i in range(8 * n, x.size):
            total += x[i] * zero
    return total
"""

_REDUCERS: dict[np.dtype, tuple[Any, Any]] = {}


def _reducers(dtype: np.dtype) -> tuple[Any, Any]:
    if dtype not in _REDUCERS:
        namespace = {
            "carray": _numba.numba.carray,
            "pointer": _pointer(dtype),
            "float64": np.float64,
            "zero": dtype.type(0),
        }
        exec(compile(_REDUCTIONS, f"<steplab table reductions, {dtype}>", "exec"), namespace)  # noqa: S102
        jit = _numba.numba.njit(error_model="numpy", fastmath={"reassoc"}, nogil=True)
        _REDUCERS[dtype] = (jit(namespace["sum_of_squares"]), jit(namespace["sum_times_zero"]))
    return _REDUCERS[dtype]


def sum_of_squares(addresses: np.ndarray, sizes: np.ndarray, dtype: Any) -> float:
    """Σx² in float64 over every array of the table (``addresses``: int64, one per row;
    ``sizes``: their numbers of elements; all of ``dtype``, float32 or float64): one read of
    each, on the calling thread."""
    return float(_reducers(np.dtype(dtype))[0](addresses, sizes))


def all_finite(addresses: np.ndarray, sizes: np.ndarray, dtype: Any) -> bool:
    """Whether no element of the table's arrays is NaN or ±inf: one read of each, on the
    calling thread, no temporary."""
    return bool(_reducers(np.dtype(dtype))[1](addresses, sizes) == 0)
