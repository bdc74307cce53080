"""DeepOBS' protocol (Schneider, Balles & Hennig, ICLR 2019) on a suite of problems.

For each problem and optimizer: (1) tune the step size α on a log grid with one seed
(DeepOBS: 36 values 1e-5…1e2, seed 42), choosing the α whose *final* performance is best
— validation accuracy where there is one, else the validation or test loss, else the
final loss — then (2) rerun that α with several seeds (DeepOBS: 10, seeds 42…51) and
report the final test metrics as mean ± std. Every sweep writes its trials to a results
store under ``out/stores``, so a benchmark killed half way, started again with the same
``out``, resumes where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steplab.benchmark.suites import TUNING_SEED, BenchmarkProblem, Suite
from steplab.run.records import Table

ENGINES = {"local": "auto", "ray": "ray"}  # benchmark engine → sweep engine


@dataclass(frozen=True)
class Metric:
    """How a problem is judged: ``select`` picks α (``maximize`` or not), ``loss`` and
    ``accuracy`` are reported (mean ± std over the rerun seeds)."""

    select: str
    maximize: bool
    loss: str
    accuracy: str | None

    @classmethod
    def for_row(cls, row: dict) -> Metric:
        if "val_accuracy" in row:
            return cls("val_accuracy", True, "test_loss", "test_accuracy")
        if "val_loss" in row:
            return cls("val_loss", False, "test_loss", None)
        if "test_loss" in row:
            return cls("test_loss", False, "test_loss", None)
        return cls("final_loss", False, "final_loss", None)

    def score(self, row: dict) -> float:
        """The row's selection value, worst possible for a diverged or NaN run."""
        value = row.get(self.select)
        if row.get("status") == "diverged" or value is None or not math.isfinite(value):
            return -math.inf if self.maximize else math.inf
        return float(value)


@dataclass
class ProblemResult:
    """One problem's outcome: the tuning sweep, the chosen α per optimizer, the reruns."""

    spec: BenchmarkProblem
    info: dict
    metric: Metric
    optimizers: list[str]
    lr_grid: np.ndarray
    tuning: Table  # optimizer-major, one row per α (one seed)
    best_lr: dict[str, float]
    reruns: Table  # optimizer-major, one row per seed
    seconds: float

    def rows_of(self, table: Table, optimizer: str) -> Table:
        size = len(table) // len(self.optimizers)
        i = self.optimizers.index(optimizer)
        return Table(table[i * size : (i + 1) * size])

    def cost(self, optimizer: str) -> float:
        """The Dolan–Moré cost (> 0, smaller is better, inf on any divergence): test error
        1 − accuracy, else the loss above the problem's known minimum (or the loss)."""
        rows = self.rows_of(self.reruns, optimizer)
        if any(r.get("status") == "diverged" for r in rows):
            return math.inf
        if self.metric.accuracy is not None:
            values = [1.0 - r[self.metric.accuracy] for r in rows]
            floor = 1e-6
        else:
            f_min = self.info.get("f_min")
            values = [r[self.metric.loss] - (f_min or 0.0) for r in rows]
            floor = 1e-12 * max(1.0, abs(f_min or 0.0))
        mean = float(np.mean(values))
        return max(mean, floor) if math.isfinite(mean) else math.inf


def run(
    suite: Suite,
    out: str | Path,
    *,
    optimizers: Sequence[str],
    problems: Sequence[str] | None = None,
    engine: str = "local",
    address: str | None = None,
    seeds: int | None = None,
    lr_grid: np.ndarray | None = None,
    log: Callable[[str], None] = print,
) -> list[ProblemResult]:
    """Run the protocol for every problem of ``suite`` (or those ``problems`` names)."""
    import time

    from steplab import optim, sweep

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("--address is for --engine ray")
    optimizers = list(optimizers)
    if not optimizers or len(set(optimizers)) < len(optimizers):
        raise ValueError("give each optimizer once, at least one")
    for name in optimizers:
        optim.make(name)  # an unknown name is an error that lists the known ones
    labels = [p.label for p in suite.problems]
    chosen = list(problems) if problems else labels
    for label in chosen:
        if label not in labels:
            raise ValueError(
                f"suite {suite.name!r} has no problem {label!r}; it has {', '.join(labels)}"
            )
    seeds = suite.seeds if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    grid = np.asarray(suite.lr_grid if lr_grid is None else lr_grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError("the step-size grid needs at least 2 positive, finite values")
    stores = Path(out) / "stores"
    sweep_engine = ENGINES[engine]
    extra: dict[str, Any] = {"address": address} if engine == "ray" else {}
    results = []
    for spec in suite.problems:
        if spec.label not in chosen:
            continue
        start = time.perf_counter()
        problem = spec.make()
        log(f"{spec.label}: tuning α over {grid.size} values × {len(optimizers)} optimizers")
        tuning = sweep(
            problem,
            {name: {"lr": grid} for name in optimizers},
            seeds=[TUNING_SEED],
            engine=sweep_engine,
            store=stores / f"{spec.label}-tune.sqlite",
            **extra,
            **spec.options,
        )
        metric = Metric.for_row(tuning[0])
        best = {}
        for i, name in enumerate(optimizers):
            scores = [metric.score(r) for r in tuning[i * grid.size : (i + 1) * grid.size]]
            pick = int(np.argmax(scores) if metric.maximize else np.argmin(scores))
            best[name] = float(grid[pick])
        log(f"{spec.label}: rerunning the best α with {seeds} seeds")
        reruns = sweep(
            problem,
            {name: {"lr": [best[name]]} for name in optimizers},
            seeds=range(TUNING_SEED, TUNING_SEED + seeds),
            engine=sweep_engine,
            store=stores / f"{spec.label}-rerun.sqlite",
            **extra,
            **spec.options,
        )
        results.append(
            ProblemResult(
                spec=spec,
                info=problem.info(),
                metric=metric,
                optimizers=optimizers,
                lr_grid=grid,
                tuning=tuning,
                best_lr=best,
                reruns=reruns,
                seconds=time.perf_counter() - start,
            )
        )
    return results
