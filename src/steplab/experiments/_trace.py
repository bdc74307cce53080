"""A lesson's run as plain arrays: :func:`steplab.run.minimize` with every row recorded.

The lessons run tiny deterministic problems (2-D functions, small quadratics) for a few
hundred steps, and need every iterate and every effective step size. The loop itself is
:func:`steplab.run.minimize`; this module only asks it to record every step and to never
call a run diverged for being large (a saddle is unbounded below), and turns its history
into the arrays the figures and CSVs read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steplab.problems.base import Problem
from steplab.run.loop import minimize


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


def trace(label: str, optimizer, problem: Problem, x0, steps: int, *, stop=None) -> Trace:
    """Run ``optimizer`` for ``steps`` steps from ``x0`` on ``problem`` and keep every row.

    ``stop(x, f)``, if given, ends the trace early (e.g. once an iterate has left the
    picture): the arrays then end at the first row where it holds. The run itself goes on
    to ``steps``: later steps cannot change earlier rows, and if they overflow ``minimize``
    just ends the run there ("diverged"). A run that turns NaN/inf ends at its last
    finite row.
    """
    run = minimize(
        problem,
        optimizer,
        steps=steps,
        x0=x0,
        record_every=1,
        record_dim=problem.dim,  # every coordinate's iterate and step size
        divergence_threshold=np.inf,  # a large loss is no divergence here (saddle: −∞)
    )
    if run.status == "interrupted":  # minimize kept Ctrl+C's partial run: a lesson stops
        raise KeyboardInterrupt
    h = run.history
    params, loss = h["x"], h["loss"]
    n = len(loss)
    if stop is not None:
        n = next((t + 1 for t in range(n) if stop(params[t], loss[t])), n)
    cut = slice(0, n)
    return Trace(
        label, params[cut], loss[cut], h["grad_norm"][cut], h["step_size"][cut], h["time"][cut]
    )
