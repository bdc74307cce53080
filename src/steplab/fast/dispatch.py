"""When ``Optimizer.step`` takes the fused kernel, and how it calls it.

With ``impl="auto"`` the fused kernel runs a step when all of these hold (otherwise
NumPy runs the same rule, with the same bits):

* numba is installed and compiles the kernel (else one warning, then NumPy);
* theta has at least :data:`MIN_SIZE` elements (below that, calling a kernel costs
  more than NumPy's few small array operations save);
* theta is float32 or float64, and theta, grad and every moment are C-contiguous;
* every hyperparameter is a scalar (a sweep's per-configuration arrays take NumPy).

``impl="fused"`` raises with the reason instead of falling back.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from steplab.fast import _numba, kernels
from steplab.optim.base import FUSED_MIN_SIZE, compute_dtype

#: Smallest theta (number of elements) that impl="auto" gives to the fused kernel.
MIN_SIZE = FUSED_MIN_SIZE
#: Elements per thread below which a kernel uses fewer threads (starting one costs ~µs).
PER_THREAD = 1 << 16

_threads = None  # set by set_threads; None: from STEPLAB_THREADS, else every core
_broken: set = set()  # rules numba failed to compile in this process


def threads() -> int:
    """Threads the kernels may use: :func:`set_threads`, else ``STEPLAB_THREADS``, else all
    the cores numba may use (``NUMBA_NUM_THREADS``, the machine's cores by default)."""
    wanted = _threads if _threads is not None else os.environ.get("STEPLAB_THREADS", "")
    cores = _numba.numba.config.NUMBA_NUM_THREADS if _numba.numba is not None else 1
    if wanted == "":
        return cores
    try:
        count = int(wanted)
    except ValueError:
        raise ValueError(f"STEPLAB_THREADS must be a positive integer, got {wanted!r}") from None
    if count < 1:
        raise ValueError(f"the number of threads must be >= 1, got {count}")
    return min(count, cores)


def set_threads(count: int | None) -> None:
    """Use ``count`` threads in the kernels (``None``: back to ``STEPLAB_THREADS``/all cores)."""
    global _threads
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"threads must be a positive integer or None, got {count!r}")
    _threads = count


def _use_threads(size: int) -> None:
    count = max(1, min(threads(), size // PER_THREAD))
    if count != _numba.numba.get_num_threads():  # setting costs more than asking
        _numba.numba.set_num_threads(count)


def why_not_fused(optimizer, theta: np.ndarray, grad: np.ndarray, state,
                  declared: dict) -> str | None:  # fmt: skip
    """None if the fused kernel can run this step, else the reason (see the module doc)."""
    if optimizer.KIND != "elementwise":
        return f"its rule is {optimizer.KIND}, and the fused kernel runs element-wise rules"
    if not _numba.available():
        _numba.warn_slow_path(f"numba is not available ({_numba.UNAVAILABLE_REASON})")
        return f"numba is not available ({_numba.UNAVAILABLE_REASON})"
    if type(optimizer).rule in _broken:
        return "numba could not compile its rule"
    if theta.dtype not in (np.float32, np.float64):
        return f"theta is {theta.dtype}; the kernels take float32 and float64"
    arrays = (theta, grad, *(getattr(state, n) for n in _kept(optimizer, state)))
    if not all(a.flags.c_contiguous for a in arrays):
        return "theta, grad and the moments must be C-contiguous"
    if any(isinstance(v, np.ndarray) for v in declared.values()):
        return "a hyperparameter holds one value per configuration (an array)"
    if any(isinstance(getattr(state, k), np.ndarray) for k in optimizer.SCALAR_STATE):
        return "the state holds a per-configuration scalar (an array)"
    return None


def all_finite(grad: np.ndarray) -> bool:
    """Whether the gradient is finite everywhere: one parallel pass at memory speed."""
    _use_threads(grad.size)
    return kernels.all_finite(grad)


def _kept(optimizer, state) -> list[str]:
    return [n for n in optimizer.moment_names() if getattr(state, n, None) is not None]


def step(optimizer, declared: dict, hp: Any, theta: np.ndarray, grad: np.ndarray, state,
         check: bool = False) -> bool:  # fmt: skip
    """Run the step of ``optimizer``'s rule on theta and the state's moments, in place, with
    the step values ``hp`` (``state.t`` and scalar state are the caller's). With ``check``,
    first make sure the gradient is finite, in the same kernel call: if it is not, write
    nothing and return False."""
    cls = type(optimizer)
    kept = tuple(getattr(state, n, None) is not None for n in cls.moment_names())
    pieces = switched_on(cls, hp)
    statics = tuple(v if isinstance(v, bool) else None for v in hp)
    dtype = compute_dtype(theta)  # float32 arrays step in float32, as the NumPy rule does
    numbers = np.array([v for v in hp if not isinstance(v, bool)], dtype=dtype)
    kernel = kernels.step_kernel(cls.rule, kept, pieces, type(hp), statics, dtype)
    moments = [getattr(state, n).reshape(-1) for n in _kept(optimizer, state)]
    _use_threads(theta.size)
    try:
        return bool(kernel(theta.reshape(-1), grad.reshape(-1), *moments, numbers, check))
    except _numba.compile_errors() as exc:  # nothing was written: NumPy does this step
        _broken.add(cls.rule)
        raise CompileError(f"numba could not compile the {optimizer.name} rule ({exc})") from exc


def cautious_step(optimizer, hp: Any, theta: np.ndarray, grad: np.ndarray, state,
                  decay: float) -> None:  # fmt: skip
    """:class:`steplab.optim.modifiers.Cautious`'s step around ``optimizer``'s fused rule,
    in place: pass 1 counts the mask (writes nothing), pass 2 takes the masked step.
    ``decay``: the decoupled decay's factor 1 − αλ applied first, unmasked (1.0: none)."""
    from steplab.optim.modifiers import cautious_scale

    cls = type(optimizer)
    kept = tuple(getattr(state, n, None) is not None for n in cls.moment_names())
    statics = tuple(v if isinstance(v, bool) else None for v in hp)
    dtype = compute_dtype(theta)
    numbers = np.array([v for v in hp if not isinstance(v, bool)], dtype=dtype)
    args = (theta.reshape(-1), grad.reshape(-1),
            *(getattr(state, n).reshape(-1) for n in _kept(optimizer, state)), numbers)  # fmt: skip
    factor = np.dtype(dtype).type(decay)
    _use_threads(theta.size)
    try:
        count, apply = kernels.cautious_kernels(
            cls.rule, kept, switched_on(cls, hp), type(hp), statics, dtype
        )
        total = count(*args, factor)
    except _numba.compile_errors() as exc:  # nothing was written: NumPy does this step
        _broken.add(cls.rule)
        raise CompileError(f"numba could not compile the {optimizer.name} rule ({exc})") from exc
    apply(*args, factor, cautious_scale(theta.size, int(total), dtype))


def switched_on(cls: Any, hp: Any) -> tuple[tuple, tuple]:
    """The functions of ``cls``'s pieces that ``hp``'s static switches turn on, (before,
    after) the rule: what a kernel compiles around it."""
    return tuple(
        tuple(p.function for p in side if p.switch is None or getattr(hp, p.switch))
        for side in cls.pieces()
    )  # type: ignore[return-value]


def sum_of_squares(grad: np.ndarray) -> float:
    """Σĝ² in float64: the one reduction pass that clipping by global norm needs."""
    _use_threads(grad.size)
    return kernels.sum_of_squares(grad)


class CompileError(RuntimeError):
    """numba could not compile a rule: the caller runs NumPy instead (and warns once)."""


class FusedBackend:
    """The fused step as ``steplab.optim`` calls it (see
    :func:`steplab.optim.base.register_step_backend`): registered by ``steplab.fast`` when
    it is imported, and named by ``steplab`` to be imported on first use."""

    CompileError = CompileError
    why_not = staticmethod(why_not_fused)
    step = staticmethod(step)
    cautious_step = staticmethod(cautious_step)
    sum_of_squares = staticmethod(sum_of_squares)
    available = staticmethod(_numba.available)
    warn_slow_path = staticmethod(_numba.warn_slow_path)

    @staticmethod
    def unavailable_reason() -> str:
        return _numba.UNAVAILABLE_REASON


#: The object ``steplab.optim`` runs fused steps through.
STEP_BACKEND = FusedBackend()
