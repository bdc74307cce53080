"""steplab.fast: optional numba kernels for one-pass optimizer steps and big sweeps.

* :func:`fused_step` is what ``Optimizer.step`` calls for large arrays: each
  optimizer's loop body fused into one pass over memory (``steplab.fast.kernels``).
* :func:`sweep` runs many configurations (K starting points, per-configuration
  hyperparameters) of any optimizer on a built-in 2-D test function, a block of
  configurations at a time in registers (``steplab.fast.sweeps``).

numba is optional (``pip install 'steplab[fast]'``). Nothing compiles at import; the
first call compiles (and caches on disk). Without numba, or with ``STEPLAB_NO_NUMBA=1``,
everything still works through NumPy, more slowly, after a single RuntimeWarning.
Threads: :func:`set_threads` or ``STEPLAB_THREADS`` (default 1).
"""

from steplab.fast._numba import available
from steplab.fast.dispatch import MIN_SIZE, fused_step, set_threads, threads
from steplab.fast.sweeps import FUNCTIONS, sweep

__all__ = ["FUNCTIONS", "MIN_SIZE", "available", "fused_step", "set_threads", "sweep", "threads"]
