"""steplab.fast: optional numba kernels generated from the optimizers' rules.

* :func:`step` is what ``Optimizer.step`` calls for large arrays (``impl="auto"`` or
  ``"fused"``): the optimizer's rule fused into one parallel pass over memory
  (``steplab.fast.kernels``). ``steplab.optim`` never imports this package: it registers
  itself as the step backend ``"fused"`` (:data:`STEP_BACKEND`) when imported, and
  ``import steplab`` names it to be imported on first use.
* :func:`sweep` runs many configurations (K starting points, per-configuration
  hyperparameters) of any optimizer on a built-in 2-D test function, a block of
  configurations at a time in registers (``steplab.fast.sweeps``).

Both are built from ``Optimizer.rule``, the single statement of each algorithm, and give
NumPy's bits. numba is optional (``pip install 'steplab[fast]'``); nothing compiles at
import. Without numba, or with ``STEPLAB_NO_NUMBA=1``, everything still works through
NumPy, more slowly, after a single RuntimeWarning. Threads: :func:`set_threads` or
``STEPLAB_THREADS`` (default: every core, for arrays large enough to share).
"""

from steplab.fast._numba import available, warn_slow_path
from steplab.fast.dispatch import (
    MIN_SIZE,
    STEP_BACKEND,
    CompileError,
    all_finite,
    set_threads,
    step,
    threads,
    why_not_fused,
)
from steplab.fast.sweeps import FUNCTIONS, sweep
from steplab.optim import register_step_backend

register_step_backend("fused", STEP_BACKEND)  # Optimizer.step's fused path; optim imports no fast

__all__ = [
    "FUNCTIONS",
    "MIN_SIZE",
    "STEP_BACKEND",
    "CompileError",
    "all_finite",
    "available",
    "set_threads",
    "step",
    "sweep",
    "threads",
    "warn_slow_path",
    "why_not_fused",
]
