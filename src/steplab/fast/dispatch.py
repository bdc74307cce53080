"""When ``Optimizer.step`` takes the fused kernel, and how it calls it.

The fast path applies to a step when all of these hold (otherwise the readable
``_update`` runs, with the same numbers):

* numba is installed and compiles the kernel (else one warning, then NumPy);
* theta has at least :data:`MIN_SIZE` elements (below that, calling a kernel costs
  more than NumPy's few small array operations save);
* theta is float32 or float64, and theta, grad and every moment are C-contiguous;
* every hyperparameter is a scalar (a sweep's per-configuration arrays take NumPy);
* the gradient is finite, or ``nonfinite="propagate"`` (a NaN or inf goes to the
  readable path, which raises or skips with its message).

Every option of every optimizer is covered (Adam's amsgrad and eps_hat, RMSProp's
centered and momentum, weight decay, …); the one exception is Nadam with a
per-configuration running product of μ.
"""

from __future__ import annotations

import os

import numpy as np

from steplab.fast import _numba
from steplab.optim import OPTIMIZERS
from steplab.optim.base import _FUSED_MIN_SIZE

#: Smallest theta (number of elements) that takes the fused kernel (set in optim.base).
MIN_SIZE = _FUSED_MIN_SIZE

_threads = None  # set by set_threads; None: from STEPLAB_THREADS, else 1
_broken: set[str] = set()  # kernels numba failed to compile in this process


def threads() -> int:
    """Threads the fused kernels use: :func:`set_threads`, else ``STEPLAB_THREADS``, else 1.

    Capped at numba's ``NUMBA_NUM_THREADS`` (the cores it may use).
    """
    wanted = _threads if _threads is not None else os.environ.get("STEPLAB_THREADS", "1")
    try:
        count = int(wanted)
    except ValueError:
        raise ValueError(f"STEPLAB_THREADS must be a positive integer, got {wanted!r}") from None
    if count < 1:
        raise ValueError(f"the number of threads must be >= 1, got {count}")
    if _numba.numba is not None:
        count = min(count, _numba.numba.config.NUMBA_NUM_THREADS)
    return count


def set_threads(count: int | None) -> None:
    """Use ``count`` threads in the fused kernels (``None``: back to ``STEPLAB_THREADS``/1)."""
    global _threads
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"threads must be a positive integer or None, got {count!r}")
    _threads = count


def fused_step(optimizer, theta: np.ndarray, grad: np.ndarray, state) -> bool:
    """Run ``optimizer``'s step as one fused kernel if it applies (see the module doc).

    Returns True when theta and state were updated, False to let the readable path run.
    """
    from steplab.fast import kernels  # here, not at import: importing steplab stays fast

    name = optimizer.name
    prepare = kernels.PREPARE.get(name)
    if prepare is None or type(optimizer) is not OPTIMIZERS.get(name):
        return False  # a subclass may change _update: only the library's own classes
    if name in _broken or theta.dtype not in (np.float32, np.float64):
        return False
    if not _numba.available():
        _numba.warn_slow_path(f"numba is not available ({_numba.UNAVAILABLE_REASON})")
        return False
    moments = state.arrays()
    arrays = (theta, grad, *moments.values())
    if not all(a.flags.c_contiguous and a.shape == theta.shape for a in arrays):
        return False
    hp = optimizer._broadcast(theta.shape, theta.dtype)
    if any(isinstance(v, np.ndarray) for v in vars(hp).values()):
        return False
    assert _numba.numba is not None  # _numba.available() was checked above
    _numba.numba.set_num_threads(threads())
    flat_grad = grad.reshape(-1)
    saved_t, saved_product = state.t, getattr(state, "mu_product", None)
    try:
        if optimizer.nonfinite != "propagate" and not kernels.all_finite(flat_grad):
            return False  # the readable path raises or skips, with its message
        call = prepare(optimizer, hp, state, theta.dtype.type)
        if call is None:
            return False
        kernel, moment_arrays, scalars = call
        flat = (a.reshape(-1) for a in moment_arrays)
        kernel(theta.reshape(-1), flat_grad, *flat, *scalars)
    except _numba.compile_errors() as exc:
        state.t = saved_t  # nothing was written: undo the counter, let NumPy do the step
        if saved_product is not None:
            state.mu_product = saved_product
        _broken.add(name)
        _numba.warn_slow_path(f"numba could not compile the {name} kernel ({exc})")
        return False
    return True
