"""A minimal full-gradient loop that records everything a lesson's figure needs.

The lessons run tiny deterministic problems (2-D functions, small quadratics) for a few
hundred steps, and need every iterate and every effective step size — a finer record than
a general run keeps by default. This helper is private to the experiments; the general
loop with minibatches, stopping rules and sweeps is :mod:`steplab.run`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Trace:
    """Iterates ``params (T+1, d)``, ``loss (T+1,)``, ``grad_norm (T+1,)``,
    ``step_size (T+1, d)`` (row 0 is NaN: no step yet) and cumulative ``time (T+1,)``."""

    label: str
    params: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    step_size: np.ndarray
    time: np.ndarray

    def first_step(self, condition: np.ndarray) -> int | None:
        """The first step at which ``condition`` (a boolean array over steps) holds."""
        hits = np.flatnonzero(condition)
        return int(hits[0]) if hits.size else None


def trace(label: str, optimizer, value_and_grad, x0, steps: int, *, stop=None) -> Trace:
    """Run ``optimizer`` for ``steps`` steps from ``x0`` on ``value_and_grad(x) -> (f, g)``.

    ``stop(x, f)``, if given, ends the run early (e.g. once an iterate has left the
    picture); the arrays then hold the steps actually taken.
    """
    theta = np.array(x0, dtype=np.float64)
    state = optimizer.init(theta)
    d = theta.size
    params = np.full((steps + 1, d), np.nan)
    loss = np.full(steps + 1, np.nan)
    gnorm = np.full(steps + 1, np.nan)
    sizes = np.full((steps + 1, d), np.nan)
    clock = np.zeros(steps + 1)
    start = time.perf_counter()
    n = steps
    for t in range(steps + 1):
        f, g = value_and_grad(theta)
        params[t], loss[t], gnorm[t] = theta, f, np.linalg.norm(g)
        clock[t] = time.perf_counter() - start
        if t == steps or (stop is not None and stop(theta, f)) or not np.isfinite(f):
            n = t
            break
        optimizer.step(theta, np.asarray(g, dtype=np.float64), state)
        sizes[t + 1] = optimizer.step_size(state)
    cut = slice(0, n + 1)
    return Trace(label, params[cut], loss[cut], gnorm[cut], sizes[cut], clock[cut])
