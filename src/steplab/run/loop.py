"""The training loop of the seed, for one run or K runs at once.

    while stopping criterion not met:
        sample a minibatch of m examples             (MinibatchSampler, one per run)
        ĝ ← (1/m) ∇θ Σ_i L(y_i, f(x_i | θ))          (problem.value_and_grad)
        θ ← optimizer.step(θ, ĝ, state)

K runs (an optimizer with hyperparameter arrays of length K and/or K seeds) are one
``(K, d)`` parameter array: every operation is row-wise, each run has its own minibatch
stream and noise stream from its own seed, and a run that stops is frozen while the others
go on. So each run's history equals the same run made alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import time

import numpy as np

from steplab._extras import requires
from steplab.problems.base import Problem
from steplab.run.records import History, Run, RunSet, versions
from steplab.run.stopping import StoppingRules, divergence_limits

SAMPLING = ("shuffle", "replacement")


class MinibatchSampler:
    """Indices of successive minibatches of size ``m`` from ``n`` examples, seeded.

    ``"shuffle"``: a fresh permutation each epoch, cut into ``ceil(n/m)`` batches (the last
    one smaller if m does not divide n); ``"replacement"``: m indices drawn uniformly with
    replacement each step (an "epoch" is then ``ceil(n/m)`` steps).
    """

    def __init__(self, n: int, m: int, rng: np.random.Generator, sampling: str = "shuffle"):
        self.n, self.m, self.rng, self.sampling = n, m, rng, sampling
        self.steps_per_epoch = math.ceil(n / m)
        self._order: np.ndarray | None = None
        self._position = 0

    def next(self) -> np.ndarray:
        if self.sampling == "replacement":
            return self.rng.integers(0, self.n, size=self.m)
        if self._order is None or self._position >= self.n:
            self._order = self.rng.permutation(self.n)
            self._position = 0
        batch = self._order[self._position : self._position + self.m]
        self._position += self.m
        return batch


# --------------------------------------------------------------------------------------
# Checking and expanding the arguments
# --------------------------------------------------------------------------------------


def _resolve(problem, optimizer):
    from steplab import optim, problems

    if isinstance(problem, str):
        problem = problems.get(problem)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a steplab Problem or a catalogue name, got {problem!r}")
    if isinstance(optimizer, str):
        optimizer = optim.make(optimizer)
    from steplab.optim.matrix import Routed, routed_on

    kind = getattr(optimizer, "KIND", None)
    if kind is not None and kind not in optim.base.KINDS:  # a whole-array modifier
        raise ValueError(
            f"{optimizer.name}: its rule is {kind} (a reduction over all of θ), and the loop "
            "steps its runs as one array; use its init/step on one array"
        )
    if isinstance(optimizer, optim.averaging.Averaging):  # EMA, SWA, Lookahead around one
        if kind != "elementwise" or _array_hyperparameters(optimizer):
            raise ValueError(
                f"{optimizer.name}: the loop runs a wrapper around one element-wise optimizer "
                "without hyperparameter arrays (give K seeds, or one run per setting)"
            )
        return problem, optimizer
    if kind == "per_tensor":  # Muon, …: on the problem's matrices
        optimizer = routed_on(optimizer, problem)
    if not isinstance(optimizer, (optim.Optimizer, Routed)):
        raise TypeError(f"optimizer must be a steplab Optimizer or a name, got {optimizer!r}")
    return problem, optimizer


def _array_hyperparameters(optimizer) -> dict[str, np.ndarray]:
    return {
        name: getattr(optimizer, name)
        for name in optimizer.hyperparameters()
        if isinstance(getattr(optimizer, name), np.ndarray)
    }


def _count_runs(optimizer, seed) -> tuple[int, list[int], bool]:
    """K, one seed per run, and whether the caller asked for a single run."""
    arrays = _array_hyperparameters(optimizer)
    sizes = {name: value.size for name, value in arrays.items()}
    for name, value in arrays.items():
        if value.ndim > 2 or (value.ndim == 2 and value.shape[1] != 1):
            raise ValueError(
                f"hyperparameter {name} must be a scalar or have shape (K,) or (K, 1) "
                f"for K runs, got shape {value.shape}"
            )
    seeds = np.atleast_1d(np.asarray(seed))
    if seeds.ndim != 1 or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError(f"seed must be an integer or a sequence of integers, got {seed!r}")
    counts = set(sizes.values()) | {seeds.size}
    counts.discard(1)
    if len(counts) > 1:
        raise ValueError(
            f"hyperparameter arrays and seeds must have one common length K (or length 1); "
            f"got {dict(sizes, seed=seeds.size)}"
        )
    K = counts.pop() if counts else 1
    single = not arrays and np.ndim(seed) == 0
    return K, [int(s) for s in np.broadcast_to(seeds, (K,))], single


def _row_optimizer(optimizer, K):
    """Hyperparameter arrays reshaped to (K, 1), and NaNs left in their own row."""
    changes = {"nonfinite": "propagate"}
    for name, value in _array_hyperparameters(optimizer).items():
        changes[name] = np.broadcast_to(value.reshape(-1), (K,)).reshape(K, 1)
    return optimizer.replace(**changes)


def _run_hyperparameters(optimizer, K: int) -> list[dict]:
    """Each of the K runs' optimizer configuration, array hyperparameters reduced to its value."""
    arrays = {
        n: np.broadcast_to(v.reshape(-1), (K,))
        for n, v in _array_hyperparameters(optimizer).items()
    }
    shared = {n: v for n, v in optimizer.config().items() if n not in arrays}
    return [{**shared, **{n: float(v[k]) for n, v in arrays.items()}} for k in range(K)]


def _positive_int(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}"
        )
    return int(value)


def _positive_number(name, value):
    if value is None:
        return None
    if not (
        isinstance(value, (int, float, np.number)) and value >= 0 and not isinstance(value, bool)
    ):
        raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------


def minimize(
    problem,
    optimizer,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed=0,
    *,
    x0=None,
    sampling: str = "shuffle",
    gtol: float | None = None,
    ftol: float | None = None,
    window: int = 10,
    target_loss: float | None = None,
    time_budget: float | None = None,
    divergence_threshold: float | None = None,
    record_every: int = 1,
    eval_every: int | None = None,
    record_dim: int = 10,
    dtype=np.float64,
    progress: bool | None = None,
):
    """Minimize ``problem`` with ``optimizer``; return a :class:`Run` (or a :class:`RunSet`).

    Budget: ``steps`` optimizer steps and/or ``epochs`` passes over the training data
    (whichever ends first; default 1000 steps, or no limit if ``time_budget`` is set).
    ``batch_size`` m: minibatches of m examples for data problems (default: the full
    training set), drawn by ``sampling`` (``"shuffle"`` each epoch or ``"replacement"``)
    from a stream seeded by ``seed``.

    Stopping rules (all optional, combined; first match wins, checked in this order):
    divergence (NaN/inf, or loss above ``divergence_threshold``, default
    ``1e8·max(1, |initial loss|)``) → ``"diverged"``; loss ≤ ``target_loss`` →
    ``"target_reached"``; gradient norm ≤ ``gtol`` or |loss change over ``window`` steps| ≤
    ``ftol`` → ``"converged"``; ``time_budget`` seconds → ``"time_budget"``; the budget →
    ``"max_steps"``. A diverged run is not an error: its history stops at the last finite
    row and ``run.x`` is the last finite point. For minibatch problems these rules look at
    the minibatch loss and gradient.

    Several runs at once: give the optimizer hyperparameter arrays of length K (e.g.
    ``Adam(lr=np.logspace(-4, -1, 8))``) and/or ``seed`` as a sequence of K seeds; the result
    is a :class:`RunSet` of K runs, each equal to the same run made alone. Each seed also
    picks that run's initial point for problems with random initialization (MLPs).

    Recording: a row every ``record_every`` steps (and always the last one); ``x`` and the
    per-coordinate ``step_size`` when ``dim <= record_dim`` (else step-size min/median/max);
    full-data metrics every ``eval_every`` steps (default once per epoch) for data problems.
    ``progress``: a tqdm bar (default: only when stderr is a terminal and the run is long).

    An optimizer with an evaluation point (``eval_params``: Schedule-Free's x, the average
    of ``EMA``/``SWA``, ``Lookahead``'s slow weights) is judged there: the recorded loss
    (on the same minibatch), the metrics, the stopping rules and ``run.x`` are at that
    point; the gradient (and ``grad_norm``) stay at the point it trains at.
    """
    problem, optimizer = _resolve(problem, optimizer)
    settings = _check_settings(
        problem, steps=steps, epochs=epochs, batch_size=batch_size, sampling=sampling,
        gtol=gtol, ftol=ftol, window=window, target_loss=target_loss,
        time_budget=time_budget, divergence_threshold=divergence_threshold,
        record_every=record_every, eval_every=eval_every, dtype=dtype,
    )  # fmt: skip
    K, seeds, single = _count_runs(optimizer, seed)
    opt = _row_optimizer(optimizer, K)
    data = _DataStreams(problem, seeds, settings)
    X = _start_points(problem, x0, seeds, settings.dtype)
    state = opt.init(X)
    if progress is None:
        progress = _long_enough_for_a_bar(settings.max_steps * K * problem.dim)
    bar = _progress_bar(settings.max_steps, progress)
    runs = _RunProgress(X, settings.window)
    recorder = _Recorder(K, problem.dim <= record_dim)
    wall_time = _train(problem, opt, state, X, data, settings, runs, recorder, bar)
    if bar is not None:
        bar.close()
    return _collect(problem, optimizer, seeds, single, settings, runs, recorder, wall_time,
                    config=settings.config(x0, impl=getattr(state, "impl", None)))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Settings:
    """The loop's checked arguments and the step budget they give."""

    steps: int | None
    epochs: int | None
    batch_size: int | None
    sampling: str
    rules: StoppingRules
    record_every: int
    eval_every: int  # rows between full-data metrics (data problems)
    dtype: np.dtype
    m: int | None  # the minibatch size (None: the full training set)
    steps_per_epoch: int
    has_data: bool

    @property
    def max_steps(self) -> int:
        return self.rules.max_steps

    @property
    def window(self) -> int:
        return self.rules.window

    def config(self, x0, impl) -> dict:
        """The run record's ``config``."""
        rules = self.rules
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "sampling": self.sampling,
            "gtol": rules.gtol,
            "ftol": rules.ftol,
            "window": rules.window,
            "target_loss": rules.target_loss,
            "time_budget": rules.time_budget,
            "divergence_threshold": rules.divergence_threshold,
            "record_every": self.record_every,
            "eval_every": self.eval_every if self.has_data else None,
            "dtype": self.dtype.name,
            "x0": None if x0 is None else np.asarray(x0).tolist(),
            "max_steps": rules.max_steps,
            "impl": impl,  # how the steps ran: "numpy" or "fused"
        }


def _check_settings(problem, *, steps, epochs, batch_size, sampling, gtol, ftol, window,
                    target_loss, time_budget, divergence_threshold, record_every, eval_every,
                    dtype) -> _Settings:  # fmt: skip
    """Every argument checked (ValueError naming it and what is allowed), and the budget."""
    steps = _positive_int("steps", steps)
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    record_every = _positive_int("record_every", record_every, allow_none=False)
    eval_every = _positive_int("eval_every", eval_every)
    window = _positive_int("window", window, allow_none=False)
    gtol, ftol = _positive_number("gtol", gtol), _positive_number("ftol", ftol)
    time_budget = _positive_number("time_budget", time_budget)
    target_loss = _target_loss(target_loss)
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING)}, got {sampling!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    has_data = problem.n_train is not None
    if batch_size is not None and not has_data:
        raise ValueError(
            f"batch_size needs a problem with training data; {problem.name} has none "
            "(for noisy gradients use problems.with_gradient_noise)"
        )
    if epochs is not None and not has_data:
        raise ValueError(f"epochs need a problem with training data; use steps for {problem.name}")
    m = min(batch_size, problem.n_train) if batch_size is not None else None
    steps_per_epoch = math.ceil(problem.n_train / m) if m is not None else 1
    budget = [b for b in (steps, epochs and epochs * steps_per_epoch) if b]
    # Without a step or epoch budget: 1000 steps, or unlimited when a time budget is set.
    max_steps = min(budget) if budget else (sys.maxsize if time_budget is not None else 1000)
    rules = StoppingRules(max_steps, target_loss, gtol, ftol, window, time_budget,
                          divergence_threshold)  # fmt: skip
    eval_every = eval_every or steps_per_epoch
    return _Settings(steps, epochs, batch_size, sampling, rules, record_every, eval_every,
                     dtype, m, steps_per_epoch, has_data)  # fmt: skip


def _target_loss(target_loss):
    if target_loss is None:
        return None
    if isinstance(target_loss, bool) or not isinstance(target_loss, (int, float, np.number)):
        raise ValueError(f"target_loss must be a number or None, got {target_loss!r}")
    if math.isnan(target_loss):
        raise ValueError("target_loss must be a number or None, got nan")
    return float(target_loss)


class _DataStreams:
    """Each run's two independent streams from its seed: minibatch indices and noise."""

    def __init__(self, problem: Problem, seeds: list[int], settings: _Settings) -> None:
        streams = [np.random.SeedSequence(s).spawn(2) for s in seeds]
        self.samplers: list[MinibatchSampler] | None = None
        n, m = problem.n_train, settings.m
        if n is not None and m is not None:
            rngs = [np.random.default_rng(a) for a, _ in streams]
            self.samplers = [MinibatchSampler(n, m, rng, settings.sampling) for rng in rngs]
        self.noise = [np.random.default_rng(b) for _, b in streams] if problem.stochastic else None

    def next_batch(self) -> np.ndarray | None:
        return np.stack([s.next() for s in self.samplers]) if self.samplers else None


def _start_points(problem: Problem, x0, seeds: list[int], dtype: np.dtype) -> np.ndarray:
    """The (K, d) start: each seed's initial point, or ``x0`` (one row or K)."""
    K = len(seeds)
    if x0 is None:
        X = np.stack([problem.initial_point(s) for s in seeds])
    else:
        start_points = np.asarray(x0, dtype=np.float64)
        if start_points.shape not in ((problem.dim,), (K, problem.dim)):
            raise ValueError(
                f"x0 must have shape ({problem.dim},) or ({K}, {problem.dim}), "
                f"got {start_points.shape}"
            )
        X = np.array(np.broadcast_to(start_points, (K, problem.dim)))
    return X.astype(dtype)


def _long_enough_for_a_bar(work: float) -> bool:
    return sys.stderr.isatty() and work >= 1e6 and _has_tqdm()


class _RunProgress:
    """What the loop knows of each of the K runs as it goes: whether it is still going, why
    and where it stopped, its best and last loss, and its last (finite) point."""

    def __init__(self, X: np.ndarray, window: int) -> None:
        K = X.shape[0]
        self.active = np.ones(K, dtype=bool)
        self.status = [""] * K
        self.stop_step = np.zeros(K, dtype=int)
        self.final_X = X.copy()
        self.last_finite_X = X.copy()
        self.best = np.full(K, np.inf)
        self.final_loss = np.full(K, np.nan)
        self.recent = np.full((window + 1, K), np.nan)  # ring buffer of losses for ftol
        self.seen = np.zeros(K, dtype=int)  # the last step whose loss each run took in

    def stop(self, t: int, reasons: np.ndarray) -> np.ndarray:
        """Stop the active runs with a reason at row t; which ones did."""
        stops = self.active & (reasons != "")
        for row in np.flatnonzero(stops):
            self.status[row], self.stop_step[row] = str(reasons[row]), t
        return stops

    def take_in(self, t, loss, X, kept, stops, finite) -> None:
        """Row t's loss and point for the runs that keep it; a run that stops on a
        non-finite row ends at its last finite point."""
        self.best = np.where(kept, np.fmin(self.best, loss), self.best)
        self.final_loss = np.where(kept, loss, self.final_loss)
        self.seen[kept] = t
        self.final_X[kept] = X[kept]
        diverged_now = stops & ~finite
        self.final_X[diverged_now] = self.last_finite_X[diverged_now]
        self.active &= ~stops

    def interrupted(self) -> None:
        """Ctrl+C: every run still going ends "interrupted" at the last row it completed
        (x, loss and history agree on that row)."""
        for k in (int(i) for i in np.flatnonzero(self.active)):
            self.status[k], self.stop_step[k] = "interrupted", self.seen[k]


def _train(problem, opt, state, X, data, settings, runs, recorder, bar) -> float:
    """Rows and steps until every run has stopped (or Ctrl+C); the wall time."""
    rules, K = settings.rules, X.shape[0]
    step_size = np.full((K, problem.dim), np.nan)
    limits = None  # each run's divergence limit, from its first loss
    start = time.perf_counter()
    t = 0
    with np.errstate(all="ignore"), _CatchInterrupt() as interrupt:
        while True:
            batch = data.next_batch()
            loss, G = problem.value_and_grad(X, batch, data.noise)
            grad_norm = _row_norms(G)
            X_eval, loss = _judged_at(problem, opt, state, X, batch, loss)
            elapsed = time.perf_counter() - start
            if limits is None:
                limits = divergence_limits(loss, rules.divergence_threshold)

            # -- which runs stop at this row, and why ---------------------------------
            finite = (np.isfinite(loss) & np.isfinite(grad_norm) & _finite_rows(X)
                      & _finite_rows(X_eval))  # fmt: skip
            runs.recent[t % (settings.window + 1)] = loss
            kept = runs.active & finite  # a non-finite row is never recorded
            reasons = rules.reasons(
                t=t, loss=loss, grad_norm=grad_norm, finite=finite, limits=limits,
                recent=runs.recent, elapsed=elapsed,
            )  # fmt: skip
            stops = runs.stop(t, reasons)
            _record_row(problem, settings, recorder, t, elapsed, loss, grad_norm, X_eval,
                        step_size, kept, stops)  # fmt: skip
            runs.take_in(t, loss, X_eval, kept, stops, finite)
            _advance_bar(bar, t, runs.best)
            if not runs.active.any():
                break

            # -- one step of the optimizer for every run (stopped rows are ignored) ----
            runs.last_finite_X[finite] = X_eval[finite]
            if getattr(opt, "NEEDS_GRAD_NORM", False):  # a chain clipping by global norm
                opt.step(X, G, state, grad_norm=_own_norms(G))  # each run by its own
            else:
                opt.step(X, G, state)
            step_size = _step_sizes(opt, state, problem.dim)
            t += 1
    if interrupt.caught:  # keep what was computed
        runs.interrupted()
    return time.perf_counter() - start


def _row_norms(G: np.ndarray) -> np.ndarray:
    """√(g·g) row by row: the very float np.linalg.norm(g) gives for one run's g."""
    G64 = G.astype(np.float64)
    return np.sqrt(np.vecdot(G64, G64))


def _own_norms(G: np.ndarray) -> np.ndarray:
    """Each run's ‖ĝ‖ as (K, 1), summed as the step sums it alone (products, then their
    sum: no fused multiply-add, which np.vecdot may use)."""
    G64 = G.astype(np.float64)
    return np.sqrt(np.sum(G64 * G64, axis=1, keepdims=True))


def _finite_rows(X: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(X), axis=1)


def _judged_at(problem, opt, state, X, batch, loss) -> tuple[np.ndarray, np.ndarray]:
    """The point each run is judged at and its loss there: the optimizer's evaluation
    point (``eval_params``) with its loss on the same minibatch; else X and its loss."""
    loss = np.asarray(loss, dtype=np.float64).reshape(X.shape[0])
    eval_params = getattr(opt, "eval_params", None)
    if eval_params is None:
        return X, loss
    X_eval = eval_params(X, state)
    return X_eval, np.asarray(problem.value(X_eval, batch), dtype=np.float64).reshape(loss.shape)


def _record_row(problem, settings, recorder, t, elapsed, loss, grad_norm, X, step_size, kept,
                stops) -> None:  # fmt: skip
    """History row t for the runs that keep it, every ``record_every`` rows and at a stop,
    with full-data metrics every ``eval_every`` rows and at a stop."""
    recorded = kept & ((t % settings.record_every == 0) | stops)
    if not recorded.any():
        return
    metrics = {}
    if settings.has_data and (t % settings.eval_every == 0 or stops.any()):
        metrics = _evaluate_rows(problem, X, kept & ((t % settings.eval_every == 0) | stops))
    epoch = t / settings.steps_per_epoch if settings.has_data else None
    recorder.add(t, epoch, elapsed, loss, grad_norm, X, step_size, metrics, recorded)


def _advance_bar(bar, t: int, best: np.ndarray) -> None:
    if bar is not None:
        bar.update(1)
        if t % 50 == 0:
            bar.set_postfix(best_loss=f"{np.min(best):.4g}")


def _collect(problem, optimizer, seeds, single, settings, runs, recorder, wall_time, config):
    """The K runs' records: a :class:`Run`, or a :class:`RunSet` of them."""
    collected = RunSet()
    info = problem.info()
    the_versions = versions()
    hyperparameters = _run_hyperparameters(optimizer, len(seeds))
    per_epoch = settings.steps_per_epoch
    for k in range(len(seeds)):
        metrics = _final_metrics(problem, runs.final_X[k]) if settings.has_data else {}
        collected.append(
            Run(
                x=runs.final_X[k].copy(),
                status=runs.status[k],
                history=recorder.history(k),
                steps=int(runs.stop_step[k]),
                epochs=float(runs.stop_step[k] / per_epoch) if settings.has_data else None,
                wall_time=wall_time,
                seed=seeds[k],
                final_loss=float(runs.final_loss[k]),
                best_loss=float(runs.best[k]),
                metrics=metrics,
                optimizer=hyperparameters[k],
                problem=info,
                config=config,
                versions=the_versions,
            )
        )
    return collected[0] if single else collected


class _CatchInterrupt:
    """Ends a ``with`` block on Ctrl+C instead of unwinding past it; ``caught`` says if it did."""

    caught = False

    def __enter__(self) -> _CatchInterrupt:
        return self

    def __exit__(self, kind, value, traceback) -> bool:
        self.caught = kind is not None and issubclass(kind, KeyboardInterrupt)
        return self.caught


def _step_sizes(opt, state, dim) -> np.ndarray:
    try:
        return np.asarray(opt.step_size(state), dtype=np.float64)
    except NotImplementedError:
        return np.full(state.shape, np.nan)


def _evaluate_rows(problem, X, rows) -> dict:
    """Full-data metrics for the selected rows (NaN elsewhere)."""
    out: dict[str, np.ndarray] = {}
    index = np.flatnonzero(rows)
    if index.size == 0:
        return out
    values = problem.evaluate(X[index])
    for name, value in values.items():
        if name == "loss":
            name = "train_loss"
        column = np.full(X.shape[0], np.nan)
        column[index] = value
        out[name] = column
    return out


def _final_metrics(problem, x) -> dict:
    with np.errstate(all="ignore"):
        values = problem.evaluate(x)
    return {name: float(v) for name, v in values.items()}


class _Recorder:
    """Collects rows for K runs at once; ``history(k)`` cuts out run k's rows."""

    def __init__(self, K: int, record_x: bool):
        self.K, self.record_x = K, record_x
        self.rows: list[dict] = []
        self.owners: list[np.ndarray] = []
        self.metric_names: dict[str, None] = {}

    def add(self, t, epoch, elapsed, loss, grad_norm, X, step_size, metrics, owners):
        row = {"step": t, "loss": loss.copy(), "grad_norm": grad_norm.copy(), "time": elapsed}
        if epoch is not None:
            row["epoch"] = epoch
        if self.record_x:
            row["x"] = X.astype(np.float64)
            row["step_size"] = step_size.copy()
        else:
            row["step_size_min"] = np.min(step_size, axis=1)
            row["step_size_median"] = np.median(step_size, axis=1)
            row["step_size_max"] = np.max(step_size, axis=1)
        row.update(metrics)
        self.metric_names.update(dict.fromkeys(metrics))
        self.rows.append(row)
        self.owners.append(owners.copy())

    def history(self, k: int) -> History:
        rows = [r for r, owner in zip(self.rows, self.owners, strict=True) if owner[k]]
        columns: dict[str, np.ndarray] = {}
        if not rows:
            return History({"step": np.zeros(0, dtype=int), "loss": np.zeros(0)})
        names = [n for n in rows[0] if n not in self.metric_names] + list(self.metric_names)
        for name in names:
            values = []
            for r in rows:
                v = r.get(name, np.nan)
                values.append(v[k] if isinstance(v, np.ndarray) else v)
            columns[name] = np.asarray(values)
        return History(columns)


def _has_tqdm() -> bool:
    """Whether tqdm is installed: the automatic bar is a nicety the core does without."""
    return importlib.util.find_spec("tqdm") is not None


def _progress_bar(total, enabled):
    if not enabled:
        return None
    with requires("viz", "progress bars"):
        from tqdm.auto import tqdm

    total = None if total == sys.maxsize else total + 1
    return tqdm(total=total, desc="steplab", unit="step", leave=False, file=sys.stderr)
