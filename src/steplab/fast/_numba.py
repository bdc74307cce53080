"""numba, if it is there: an optional dependency (``pip install steplab[fast]``).

Everything in :mod:`steplab.fast` compiles lazily, on first use, so ``import steplab``
stays fast and never needs numba. Without numba (or with ``STEPLAB_NO_NUMBA=1``, or
when numba cannot compile a case) steplab takes its readable NumPy path, which gives
the same numbers more slowly, and says so once with a single :class:`RuntimeWarning`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

numba: Any  # the numba module, or None when it is unavailable (numba ships no types)
try:
    if os.environ.get("STEPLAB_NO_NUMBA", "").strip() not in ("", "0"):
        raise ImportError("STEPLAB_NO_NUMBA is set")
    import numba
except ImportError as _exc:  # numba missing or switched off: the NumPy path does the work
    numba = None
    UNAVAILABLE_REASON = str(_exc)
else:
    UNAVAILABLE_REASON = ""

_warned = False


def available() -> bool:
    """Whether the fused numba kernels can be used."""
    return numba is not None


def warn_slow_path(reason: str) -> None:
    """Warn, once per process, that steplab runs its slower NumPy path."""
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"steplab.fast: {reason}; steplab uses its readable NumPy path instead "
        "(same numbers, slower). Install numba (pip install 'steplab[fast]') for the "
        "fused kernels.",
        RuntimeWarning,
        stacklevel=3,
    )


def compile_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "numba could not compile this case" (fall back, don't crash)."""
    if numba is None:
        return ()
    from numba.core.errors import NumbaError

    return (NumbaError,)


def lazy_jit(parallel: bool = False, inline: bool = False):
    """``numba.njit`` that compiles on first call (cached on disk), or nothing without numba.

    ``error_model="numpy"`` lets a division by zero give inf/NaN, as NumPy does, instead of
    raising — and, because no check is needed, lets LLVM vectorize the loops. ``inline``
    pastes a small function into its callers at numba's level (a call left inside a loop
    would stop LLVM from vectorizing it).
    """

    def decorate(function):
        if numba is None:
            return None
        options = {"inline": "always"} if inline else {}
        return numba.njit(cache=True, error_model="numpy", parallel=parallel, **options)(function)

    return decorate


def prange(*args):
    """numba's parallel range inside kernels (a plain range when numba is absent)."""
    return range(*args)


if numba is not None:
    prange = numba.prange  # noqa: F811 - the real one: split across threads when parallel
