"""Grids of runs: every optimizer × hyperparameter combination × seed, vectorized.

The DeepOBS protocol tunes the step size on a grid of 36 log-spaced values from 1e-5 to
1e2 (``DEEPOBS_LR_GRID``) and repeats the best setting over 10 seeds; ``sweep`` runs such a
grid as one ``(K, d)`` problem per optimizer (in chunks if K is large) and returns a tidy
:class:`Table` with one row per configuration and seed.
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from typing import Literal, overload

import numpy as np

from steplab.run.loop import _run_hyperparameters, minimize
from steplab.run.records import Columns, Table

_Columns = Columns  # the name this module gave it first

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


# What the type checker sees: a table, unless return_table may be False. The other
# keyword arguments (chunk_size, engine, store, address, minimize's options) are checked
# when called, with messages naming them.
@overload
def sweep(problem, grid: dict, seeds=..., *, return_table: Literal[True] = ..., **kw) -> Table: ...
@overload
def sweep(problem, grid: dict, seeds=..., *, return_table: bool, **kw) -> Table | None: ...


def sweep(
    problem,
    grid: dict,
    seeds=None,
    *,
    chunk_size: int = 512,
    engine="auto",
    store=None,
    address: str | None = None,
    return_table: bool = True,
    **options,
) -> Table | None:
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
    ``return_table=False`` (with a store) keeps no rows in memory and returns None: a sweep
    of millions of trials, read back later with :func:`steplab.run.store.read`.
    """
    from steplab import optim, problems

    _check_arguments(grid, chunk_size, engine, store, address)
    if not isinstance(return_table, bool):
        raise ValueError(f"return_table must be True or False, got {return_table!r}")
    if not return_table and store is None:
        raise ValueError("return_table=False needs store=...: the rows would go nowhere")
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
        for name, values in zip(names, value_lists, strict=True):
            if values.size == 0:  # like seeds=[]: an empty axis is a mistake, not 0 rows
                raise ValueError(f"grid[{label!r}][{name!r}] holds no values; give at least one")
        plan = _Plan(value_lists, seeds)
        work = len(plan) * (options.get("steps") or 1000)
        # The compiled kernels record losses at θ, the point gradients are taken at; an
        # optimizer judged elsewhere (Schedule-Free's x, an average) runs in the loop, which
        # judges it at its evaluation point as minimize does.
        judged_elsewhere = getattr(base, "eval_params", None) is not None
        if engine == "fast" and judged_elsewhere:
            raise ValueError(
                f"engine='fast' records losses where gradients are taken, but {base.name} is "
                "judged at its evaluation point (eval_params); use engine='auto' or 'loop'"
            )
        compiled = fast and not judged_elsewhere and (engine == "fast" or work >= _FAST_MIN_WORK)
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
        # Each part's rows by trial index (None: still to run), in sweep order; without a
        # table, one byte per trial (1: done), so that memory stays flat for 10⁶ trials.
        slots: list = [
            [None] * len(part.plan) if return_table else bytearray(len(part.plan)) for part in parts
        ]
        blocks: list = [[] for _ in parts]  # each part's finished runs of trials
        if results is not None and return_table:
            for (entry, t), row in results.done().items():
                slots[entry][t] = row
        elif results is not None:
            for entry, bits in results.done_trials().items():
                size = min(len(bits), len(slots[entry]))
                slots[entry][:size] = bits[:size]
        remaining = sum(len(part_rows) - _count_done(part_rows) for part_rows in slots)
        if results is not None and remaining and not results.writable:
            raise stores.StoreError(
                f"results store {store} is read-only and {remaining} trials remain; "
                "copy it somewhere writable to finish the sweep"
            )
        sizes = []
        for part in parts:
            size = _FAST_CHUNK if part.compiled else chunk_size
            if ray is not None:  # a compiled chunk (8192 trials) is a big enough task
                chunks_per_task = 1 if part.compiled else ray_engine.CHUNKS_PER_TASK
                size = ray_engine.task_size(
                    remaining, ray_engine.workers(ray), size, chunks_per_task
                )
            sizes.append(size)
        signer = results.signer() if results is not None else None
        widths = [_FAST_CHUNK if part.compiled else chunk_size for part in parts]
        reserve = results.reserve_batch if results is not None else None
        chunks = _chunks(parts, sizes, widths, slots, signer, return_table, reserve)
        if ray is not None:
            finished = ray_engine.run(_run_chunk_columns, problem, chunks, options, ray)
        else:
            finished = ((chunk, _run_chunk(problem, chunk, options)) for chunk in chunks)
        try:
            for chunk, (chunk_rows, batches, stopped) in finished:
                if results is not None:  # on disk as soon as the chunk is done; a run cut
                    # short by Ctrl+C is not done (not in batches), so a resumed sweep runs it
                    results.add_records(batches)
                part_rows = slots[chunk.entry]
                trials = chunk.trials
                run = trials[-1] - trials[0] == len(trials) - 1
                if chunk_rows is not None and return_table and run:
                    # a run of trials: its rows stay one block (a Ray task's: columns), which
                    # the table joins in trial order without building a dict per row
                    blocks[chunk.entry].append((trials[0], chunk_rows))
                elif chunk_rows is not None:  # trials around ones a store already had
                    if isinstance(chunk_rows, Columns) and return_table:
                        chunk_rows = chunk_rows.rows()
                    _place(part_rows, trials, chunk_rows, return_table)
                else:  # no table: every trial stored, marked done
                    for batch in batches:
                        _place(part_rows, batch.trials, None, False)
                # Ctrl+C inside minimize ends its runs "interrupted" (their partial rows are
                # kept): the sweep stops here and returns what it has.
                if stopped:
                    interrupted = True
                    break
        except KeyboardInterrupt:
            interrupted = True  # between chunks or in a compiled chunk: keep the table so far
        finally:
            finished.close()  # now, not when garbage-collected: cancels Ray tasks in flight
    finally:
        if results is not None:
            results.close()
    if not return_table:
        return None
    table = Table.from_blocks(itertools.chain.from_iterable(map(_in_order, slots, blocks)))
    table.interrupted = interrupted
    return table


def _check_arguments(grid, chunk_size, engine, store, address) -> None:
    """Types and values of sweep's own arguments, checked before anything runs."""
    import os

    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict {optimizer: {hyperparameter: values}}")
    for label, space in grid.items():
        if space is not None and not isinstance(space, dict):
            raise ValueError(
                f"grid[{label!r}] must be a dict {{hyperparameter: values}}, "
                f"got {type(space).__name__}"
            )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(engine, str):
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise ValueError(
            f"store must be a file path (str or pathlib.Path) or None, got {type(store).__name__}"
        )
    if address is not None and not isinstance(address, str):
        raise ValueError(
            "address must be a string such as 'HOST:6379', 'ray://HOST:10001' or 'auto' "
            f"(or None for a local runtime), got {type(address).__name__} {address!r}"
        )


class _Plan:
    """A grid entry's trials in sweep order — every combination of the hyperparameter values
    (the last name varying fastest, as ``itertools.product``) with every seed — computed
    from the trial's index, so that a sweep of 10⁶ trials holds no list of them."""

    def __init__(self, value_lists, seeds):
        self.value_lists, self.seeds = value_lists, seeds
        self.shape = tuple(len(values) for values in value_lists)
        self._seeds = np.empty(len(seeds), dtype=object)  # the seeds as given, any size
        self._seeds[:] = seeds

    def __len__(self) -> int:
        return math.prod(self.shape) * len(self.seeds)

    def take(self, trials: list[int]) -> tuple[list[int], list[np.ndarray], list[int]]:
        """The trials' combination indices, hyperparameter values (one array per name) and
        seeds."""
        configs, seeds = np.divmod(np.asarray(trials, dtype=np.int64), len(self.seeds))
        index = np.unravel_index(configs, self.shape) if self.shape else ()
        values = [v[i] for v, i in zip(self.value_lists, index, strict=True)]
        return configs.tolist(), values, self._seeds[seeds].tolist()


class _Part:
    """One grid entry: its base optimizer, hyperparameter names and (config, combo, seed)
    plan, and whether its chunks run through the compiled kernels."""

    def __init__(self, entry, base, names, value_lists, plan, compiled):
        self.entry, self.base, self.names = entry, base, names
        self.value_lists, self.plan, self.compiled = value_lists, plan, compiled


def _chunks(parts, sizes, widths, slots, signer, keep_rows=True, reserve=None):
    """The chunks still to run (trials whose slot is empty), made one at a time as the
    engine asks for them: a sweep of 10⁶ trials never holds a list of every chunk. A
    chunk of ``size`` trials runs ``width`` of them at a time; ``keep_rows`` False: with a
    store, its task returns only the store's records, not the rows too; ``reserve`` gives
    each chunk the id of its store batch (:meth:`~steplab.run.store.ResultStore.reserve_batch`)."""
    for part, size, width, part_rows in zip(parts, sizes, widths, slots, strict=True):
        empty = map(operator.not_, part_rows)  # None or 0: to run; no Python per trial
        todo = itertools.compress(itertools.count(), empty)
        while trials := list(itertools.islice(todo, size)):
            batch_id = reserve() if reserve is not None else None
            yield _Chunk(part, trials, signer, width, keep_rows, batch_id)


def _place(part_rows, trials: list[int], rows: list | None, keep: bool) -> None:
    """Put a chunk's rows in their part's slots (one slice when the trials are a run), or
    without a table (``keep`` False) mark its trials done."""
    if not trials:
        return
    if not keep:
        if trials[-1] - trials[0] == len(trials) - 1:
            part_rows[trials[0] : trials[-1] + 1] = b"\x01" * len(trials)
        else:
            for t in trials:
                part_rows[t] = 1
        return
    assert rows is not None
    if trials[-1] - trials[0] == len(trials) - 1:
        part_rows[trials[0] : trials[-1] + 1] = rows
    else:
        for t, row in zip(trials, rows, strict=True):
            part_rows[t] = row


def _in_order(part_rows: list, blocks: list) -> list:
    """A part's rows in trial order, as blocks: the finished runs of trials (``blocks``:
    ``(first trial, rows)``) and, between them, the rows placed one by one (from a store, or
    a chunk around them); trials not run (Ctrl+C) leave no row."""
    out, position = [], 0
    for start, rows in sorted(blocks, key=operator.itemgetter(0)):
        out += [list(filter(None, part_rows[position:start])), rows]
        position = start + len(rows)
    out.append(list(filter(None, part_rows[position:])))
    return out


def _count_done(part_rows) -> int:
    """Trials already done in a part's slots (rows, or 1 bytes without a table)."""
    if isinstance(part_rows, bytearray):
        return part_rows.count(1)
    return len(part_rows) - part_rows.count(None)


class _Chunk:
    """Trials of one part run together as one vectorized call: what a task ships (its own
    slice of the plan, not the whole plan)."""

    def __init__(
        self, part: _Part, trials: list[int], signer=None, width=None, keep_rows=True, batch_id=None
    ):
        self.entry, self.base, self.names = part.entry, part.base, part.names
        self.compiled, self.trials, self.keep_rows = part.compiled, trials, keep_rows
        self.width = width or len(trials)  # trials run at once (a (K, d) problem's K)
        self.signer = signer  # a store's RowSigner: the task prepares its records itself
        self.batch_id = batch_id  # the id its first store batch gets
        self.configs, self.values, self.seeds = part.plan.take(trials)


def _run_chunk(problem, chunk: _Chunk, options: dict) -> tuple[list[dict] | None, list, bool]:
    """The rows of one chunk's trials, in order (None when the sweep keeps no table and
    every trial is stored); with a store, their store records too, prepared here, in the
    task, not by the driver (:class:`steplab.run.store.Batch`); and whether Ctrl+C cut a
    run short. The work of one task on any engine."""
    rows: list[dict] = []
    curves: list = []
    for start in range(0, len(chunk.trials), chunk.width):  # width trials at a time
        piece = slice(start, start + chunk.width)
        arrays = {n: v[piece] for n, v in zip(chunk.names, chunk.values, strict=True)}
        optimizer = chunk.base.replace(**arrays) if arrays else chunk.base
        piece_seeds = chunk.seeds[piece]
        if chunk.compiled:
            piece_rows, piece_curves = _fast_rows(
                problem, optimizer, piece_seeds, options, curves=chunk.signer is not None
            )
            rows += piece_rows
            curves += piece_curves
            continue
        runs = minimize(problem, optimizer, seed=piece_seeds, **options)
        rows += [run.summary() for run in runs]
        if chunk.signer is not None:  # a store keeps each run's curves
            from steplab.run.store import run_curves

            curves += [run_curves(run) for run in runs]
        else:
            curves += [None] * len(runs)
    for c, row in zip(chunk.configs, rows, strict=True):
        row["config"] = c
    stopped = any(row["status"] == "interrupted" for row in rows)
    if chunk.signer is None:
        return rows, [], stopped
    done = zip(chunk.trials, rows, curves, strict=True)  # a run cut short by Ctrl+C is not
    batches = chunk.signer.records(  # done: it is not stored, and a resumed sweep reruns it
        ((chunk.entry, t, row, c) for t, row, c in done if row["status"] != "interrupted"),
        chunk.batch_id,
    )
    return (rows if chunk.keep_rows or stopped else None), batches, stopped


def _run_chunk_columns(problem, chunk: _Chunk, options: dict) -> tuple:
    """:func:`_run_chunk` as a Ray task runs it: the same, with the rows shipped as
    :class:`~steplab.run.records.Columns` (smaller than pickled dicts, and kept as columns
    by the driver's table until a row is asked for)."""
    rows, batches, stopped = _run_chunk(problem, chunk, options)
    return (Columns.pack(rows) if rows else rows), batches, stopped


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


def _fast_rows(problem, optimizer, seeds, options, *, curves=False) -> tuple[list, list]:
    """The rows :func:`minimize` would give, from the compiled kernels' loss histories, and
    (``curves``) each run's loss curve at the steps :func:`minimize` records (every
    ``record_every`` steps and the last; no per-step ``time``: the kernels do not time
    steps), else None for each.

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
    rows: list[dict] = []
    histories: list[dict | None] = []
    every = options.get("record_every") or 1
    configurations = _run_hyperparameters(optimizer, K)
    for k in range(K):
        hits = np.flatnonzero(stop[:, k])
        t = int(hits[0]) if hits.size else steps
        kept = losses[: t + 1 if finite[t, k] else t, k]
        if curves:
            recorded = np.arange(t + 1)
            recorded = recorded[(recorded % every == 0) | (recorded == t)]
            histories.append({"step": recorded, "loss": losses[recorded, k]})
        else:
            histories.append(None)
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
    return rows, histories
