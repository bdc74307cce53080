"""Grids of runs: every optimizer × hyperparameter combination × seed, vectorized.

The DeepOBS protocol tunes the step size on a grid of 36 log-spaced values from 1e-5 to
1e2 (``DEEPOBS_LR_GRID``) and repeats the best setting over 10 seeds; ``sweep`` runs such a
grid as one ``(K, d)`` problem per optimizer (in chunks if K is large) and returns a tidy
:class:`Table` with one row per configuration and seed.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from steplab.run.loop import _run_hyperparameters, minimize
from steplab.run.records import Table

ENGINES = ("auto", "fast", "loop")
# Options under which a sweep is a plain fixed number of full-gradient steps: the only
# kind of run the compiled sweep kernels (steplab.fast) make.
_PLAIN_OPTIONS = {"steps", "x0", "progress", "record_every", "record_dim", "eval_every"}
_FAST_CHUNK = 8192  # configurations per compiled call: a loss history of 8192 × steps
# Compiling a kernel takes 1–2 s per (function, optimizer) and process, about what the loop
# needs for 5e5 configuration-steps: below that the loop is faster.
_FAST_MIN_WORK = 500_000

DEEPOBS_LR_GRID = np.logspace(-5, 2, 36)


def default_seeds(problem, batch_size=None) -> list[int]:
    """Seeds a sweep uses unless told: one on a deterministic problem (full-batch gradients,
    no noise: every seed gives the same run), ten (the DeepOBS protocol) otherwise."""
    data = getattr(problem, "n_train", None) is not None
    stochastic = problem.stochastic or (data and batch_size is not None)
    return list(range(10)) if stochastic else [0]


def sweep(
    problem, grid: dict, seeds=None, *, chunk_size: int = 512, engine="auto", **options
) -> Table:
    """Run every configuration in ``grid`` with every seed; one table row per run.

    ``grid`` maps an optimizer name (or an :class:`~steplab.optim.Optimizer` instance used as
    the base configuration, keyed by any label) to ``{hyperparameter: values}``, e.g.
    ``{"adam": {"lr": DEEPOBS_LR_GRID}, "sgd": {"lr": DEEPOBS_LR_GRID}}``. ``options`` go to
    :func:`~steplab.run.minimize` (``steps``, ``epochs``, ``batch_size``, stopping rules…).
    Rows hold ``optimizer``, the hyperparameters, ``seed``, ``config`` (index of the
    combination within its optimizer), ``status``, ``steps``, ``final_loss``, ``best_loss``,
    ``time`` and final metrics such as ``test_accuracy``. ``seeds`` defaults to one seed on
    a deterministic problem and ten (DeepOBS) on a stochastic one (:func:`default_seeds`).

    ``engine="auto"`` runs a large plain sweep of a 2-D catalogue test function (fixed
    ``steps``, no stopping rule, float64; at least 5e5 configuration-steps, so that
    compiling pays off) through steplab.fast's compiled kernels when numba is installed:
    the same rows (to rounding, which chaotic runs amplify), many times faster.
    ``engine="fast"`` takes the compiled kernels whatever the size; ``engine="loop"``
    always uses :func:`~steplab.run.minimize`.
    """
    from steplab import optim, problems

    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict {optimizer: {hyperparameter: values}}")
    if isinstance(problem, str):
        problem = problems.get(problem)
    if seeds is None:  # the one default, shared with the CLI
        seeds = default_seeds(problem, options.get("batch_size"))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    if "seed" in options:
        raise ValueError("give seeds=..., not seed=..., to sweep")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if isinstance(problem, str):
        problem = problems.get(problem)
    fast = engine != "loop" and _fast_sweep_fits(problem, options)
    if engine == "fast" and not fast:
        raise ValueError(
            "engine='fast' needs a 2-D catalogue test function, only steps/x0 options and "
            "numba installed; use engine='auto' to fall back to the loop"
        )
    table = Table()
    for label, space in grid.items():
        base = label if isinstance(label, optim.Optimizer) else optim.make(label)
        space = dict(space or {})
        names = list(space)
        for name in names:
            if name not in base.hyperparameters():
                raise ValueError(
                    f"{base.name} has no hyperparameter {name!r}; "
                    f"choose from {', '.join(base.hyperparameters())}"
                )
        value_lists = [np.atleast_1d(np.asarray(space[n], dtype=np.float64)) for n in names]
        combos = list(itertools.product(*value_lists)) if names else [()]
        plan = [(c, combo, s) for c, combo in enumerate(combos) for s in seeds]
        work = len(plan) * (options.get("steps") or 1000)
        compiled = fast and (engine == "fast" or work >= _FAST_MIN_WORK)
        size = _FAST_CHUNK if compiled else chunk_size
        for start in range(0, len(plan), size):
            chunk = plan[start : start + size]
            arrays = {n: np.array([combo[j] for _, combo, _ in chunk]) for j, n in enumerate(names)}
            optimizer = base.replace(**arrays) if arrays else base
            chunk_seeds = [s for *_, s in chunk]
            try:
                if compiled:
                    rows = _fast_rows(problem, optimizer, chunk_seeds, options)
                else:
                    rows = [
                        run.summary()
                        for run in minimize(problem, optimizer, seed=chunk_seeds, **options)
                    ]
            except KeyboardInterrupt:
                rows = None  # Ctrl+C between runs or in a compiled chunk: keep the table so far
            if rows is not None:
                for (c, _, _), row in zip(chunk, rows, strict=True):
                    row["config"] = c
                    table.append(row)
            # Ctrl+C inside minimize ends its runs "interrupted" (their partial rows are
            # kept above); either way the sweep stops here and returns what it has.
            if rows is None or any(row["status"] == "interrupted" for row in rows):
                table.interrupted = True
                return table
    return table


def _fast_sweep_fits(problem, options) -> bool:
    """Whether steplab.fast can run this sweep: a deterministic 2-D catalogue function,
    a fixed number of full-gradient steps in float64, and numba at hand."""
    from steplab import fast
    from steplab.problems import TestFunction

    return (
        type(problem) is TestFunction
        and problem.dim == 2
        and problem.name in fast.FUNCTIONS
        and set(options) <= _PLAIN_OPTIONS
        and fast.available()
    )


def _fast_rows(problem, optimizer, seeds, options) -> list[dict]:
    """The rows :func:`minimize` would give, from the compiled kernels' loss histories.

    The stopping rules of a plain run are the budget and divergence: a run stops at the
    first row whose loss is not finite (its last finite row counts) or exceeds
    1e8·max(1, |initial loss|) (that row counts), as in :func:`minimize`.
    """
    from steplab import fast

    K = len(seeds)
    steps = options.get("steps") or 1000
    x0 = options.get("x0")
    X = np.stack([problem.initial_point(s) for s in seeds]) if x0 is None else x0
    X = np.array(np.broadcast_to(np.asarray(X, dtype=np.float64), (K, 2)))
    start = time.perf_counter()
    _, losses = fast.sweep(problem.name, optimizer, X, steps, history=True, **problem.parameters)
    elapsed = time.perf_counter() - start
    threshold = 1e8 * np.maximum(1.0, np.abs(losses[0]))
    finite = np.isfinite(losses)
    stop = ~finite | (losses > threshold)
    rows = []
    configurations = _run_hyperparameters(optimizer, K)
    for k in range(K):
        hits = np.flatnonzero(stop[:, k])
        t = int(hits[0]) if hits.size else steps
        kept = losses[: t + 1 if finite[t, k] else t, k]
        hyperparameters = configurations[k]
        rows.append(
            {
                "problem": problem.name,
                "optimizer": hyperparameters["name"],
                **{n: v for n, v in hyperparameters.items() if n not in ("name", "nonfinite")},
                "seed": seeds[k],
                "status": "diverged" if hits.size else "max_steps",
                "steps": t,
                "epochs": None,
                "final_loss": float(kept[-1]) if kept.size else float("nan"),
                "best_loss": float(kept.min()) if kept.size else float("inf"),
                "time": elapsed,
            }
        )
    return rows
