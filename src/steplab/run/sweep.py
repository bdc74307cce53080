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

ENGINES = ("auto", "fast", "loop", "ray")
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
    problem,
    grid: dict,
    seeds=None,
    *,
    chunk_size: int = 512,
    engine="auto",
    store=None,
    address: str | None = None,
    **options,
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
    always uses :func:`~steplab.run.minimize`. ``engine="ray"`` runs the chunks ``"auto"``
    would run as tasks on a Ray cluster (:mod:`steplab.run.ray_engine`): the same rows,
    row for row. ``address`` joins a running cluster; None starts a local runtime.

    ``store`` (a file path) makes the sweep durable (:mod:`steplab.run.store`): each chunk's
    rows are written to that SQLite file as they finish; a sweep started again with the same
    store skips the finished trials and returns the table an uninterrupted sweep gives.
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
    if address is not None and engine != "ray":
        raise ValueError(f"address= is for engine='ray' (got engine={engine!r})")
    fast = engine != "loop" and _fast_sweep_fits(problem, options)
    if engine == "fast" and not fast:
        raise ValueError(
            "engine='fast' needs a 2-D catalogue test function, only steps/x0 options and "
            "numba installed; use engine='auto' to fall back to the loop"
        )
    parts = []
    for entry, (label, space) in enumerate(grid.items()):
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
        parts.append(_Part(entry, base, names, value_lists, plan, compiled))

    results = None
    interrupted = False
    if store is not None:
        from steplab.run import store as stores

        identity = _fingerprint(problem, grid, parts, seeds, options)
        stores.check(store, identity)  # reads only: a bad store is reported, untouched
    ray = None
    if engine == "ray":
        from steplab.run import ray_engine

        ray = ray_engine.connect(address)
    if store is not None:
        results = stores.ResultStore.open(store, identity)
    try:
        done = results.done() if results is not None else {}
        remaining = sum(
            (entry, t) not in done
            for entry, part in enumerate(parts)
            for t in range(len(part.plan))
        )
        chunks = []
        for part in parts:
            todo = [t for t in range(len(part.plan)) if (part.entry, t) not in done]
            size = _FAST_CHUNK if part.compiled else chunk_size
            if ray is not None:
                size = ray_engine.task_size(remaining, ray_engine.workers(ray), size)
            for start in range(0, len(todo), size):
                chunks.append(_Chunk(part, todo[start : start + size]))
        if ray is not None:
            finished = ray_engine.run(_run_chunk, problem, chunks, options, ray)
        else:
            finished = ((chunk, _run_chunk(problem, chunk, options)) for chunk in chunks)
        rows = dict(done)
        try:
            for chunk, chunk_rows in finished:
                keyed = [
                    (chunk.entry, t, row) for t, row in zip(chunk.trials, chunk_rows, strict=True)
                ]
                if results is not None:  # on disk as soon as the chunk is done; a run cut
                    # short by Ctrl+C is not done, so a resumed sweep runs it again
                    results.add([k for k in keyed if k[2]["status"] != "interrupted"])
                rows.update(((entry, t), row) for entry, t, row in keyed)
                # Ctrl+C inside minimize ends its runs "interrupted" (their partial rows are
                # kept): the sweep stops here and returns what it has.
                if any(row["status"] == "interrupted" for row in chunk_rows):
                    interrupted = True
                    break
        except KeyboardInterrupt:
            interrupted = True  # between chunks or in a compiled chunk: keep the table so far
    finally:
        if results is not None:
            results.close()
    order = [(part.entry, t) for part in parts for t in range(len(part.plan))]
    table = Table(rows[key] for key in order if key in rows)
    table.interrupted = interrupted
    return table


class _Part:
    """One grid entry: its base optimizer, hyperparameter names and (config, combo, seed)
    plan, and whether its chunks run through the compiled kernels."""

    def __init__(self, entry, base, names, value_lists, plan, compiled):
        self.entry, self.base, self.names = entry, base, names
        self.value_lists, self.plan, self.compiled = value_lists, plan, compiled


class _Chunk:
    """Trials of one part run together as one vectorized call: what a task ships (its own
    slice of the plan, not the whole plan)."""

    def __init__(self, part: _Part, trials: list[int]):
        self.entry, self.base, self.names = part.entry, part.base, part.names
        self.compiled, self.trials = part.compiled, trials
        self.plan = [part.plan[t] for t in trials]


def _run_chunk(problem, chunk: _Chunk, options: dict) -> list[dict]:
    """The rows of one chunk's trials, in order: the work of one task on any engine."""
    plan = chunk.plan
    arrays = {n: np.array([combo[j] for _, combo, _ in plan]) for j, n in enumerate(chunk.names)}
    optimizer = chunk.base.replace(**arrays) if arrays else chunk.base
    chunk_seeds = [s for *_, s in plan]
    if chunk.compiled:
        rows = _fast_rows(problem, optimizer, chunk_seeds, options)
    else:
        rows = [run.summary() for run in minimize(problem, optimizer, seed=chunk_seeds, **options)]
    for (c, _, _), row in zip(plan, rows, strict=True):
        row["config"] = c
    return rows


def _fingerprint(problem, grid, parts, seeds, options) -> dict:
    """What makes a sweep this sweep (for its results store): problem, grid, seeds,
    options and which kernel each entry uses. Not the engine or chunking: rows do not
    depend on them."""
    return {
        "problem": problem.info(),
        "grid": [
            {
                "label": str(label),
                "optimizer": part.base.config(),
                "values": {
                    n: v.tolist() for n, v in zip(part.names, part.value_lists, strict=True)
                },
                "kernel": "compiled" if part.compiled else "loop",
            }
            for label, part in zip(grid, parts, strict=True)
        ],
        "seeds": seeds,
        "options": {k: v for k, v in sorted(options.items()) if k != "progress"},
    }


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
    1e8·max(1, |initial loss|) (that row counts): :func:`steplab.run.stopping.diverged`,
    the rule :func:`minimize` applies.
    """
    from steplab import fast
    from steplab.run.stopping import diverged, divergence_limits

    K = len(seeds)
    steps = options.get("steps") or 1000
    x0 = options.get("x0")
    X = np.stack([problem.initial_point(s) for s in seeds]) if x0 is None else x0
    X = np.array(np.broadcast_to(np.asarray(X, dtype=np.float64), (K, 2)))
    start = time.perf_counter()
    _, losses = fast.sweep(problem.name, optimizer, X, steps, history=True, **problem.parameters)
    elapsed = time.perf_counter() - start
    finite = np.isfinite(losses)
    stop = diverged(losses, divergence_limits(losses[0]))  # the loop's rule, row by row
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
