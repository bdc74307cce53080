"""AlgoPerf's protocol on the PyTorch workloads: per workload and optimizer, M studies;
each study runs N trials (external tuning: quasi-random draws from the optimizer's declared
search space; self-tuning: the defaults once) with the study's seed, and its time is the
fastest trial's time to the validation target. The score is the median over studies, in
steps and in wall seconds; the profile compares the scores across workloads.

Each trial is saved as it finishes, atomically, as one JSON file under
``OUT/trials/<workload>/<optimizer>/``; started again with the same ``OUT`` the benchmark
reuses them, so an interrupted run resumes and ends with the same curves as an
uninterrupted one (wall seconds aside). The trials run here or as Ray tasks
(:mod:`steplab.benchmark.dispatch`), with the same curves. Study m uses seed ``seed + m``
for every optimizer, so studies are paired across optimizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab.benchmark import dispatch, profile, scoring, stats, tuning

BASELINE = "adamw"


@dataclass(frozen=True)
class Settings:
    """The protocol's knobs: workload size, tuning mode, N trials per study, M studies, the
    first seed; ``steps`` overrides every workload's step budget (tests, smoke runs)."""

    size: str = "small"
    mode: str = "external"
    trials: int = 3
    studies: int = 3
    seed: int = 0
    steps: int | None = None

    def check(self) -> None:
        from steplab.benchmark import workloads

        if self.size not in workloads.SIZES:
            raise ValueError(f"size must be one of {', '.join(workloads.SIZES)}: {self.size!r}")
        if self.mode not in tuning.MODES:
            raise ValueError(f"tuning must be one of {', '.join(tuning.MODES)}: {self.mode!r}")
        for name in ("trials", "studies"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")

    @property
    def per_study(self) -> int:
        return 1 if self.mode == "self" else self.trials


@dataclass
class WorkloadResult:
    """One workload's trials, ``trials[optimizer][study]`` = list of trial records (each
    with ``hyperparameters`` and the curve), and its target."""

    name: str
    description: str
    metric: str
    maximize: bool
    target: float
    steps: int
    optimizers: list[str]
    trials: dict[str, list[list[dict]]] = field(default_factory=dict)

    def time(self, record: dict, unit: str) -> float:
        """One trial's time to target in ``unit`` ("steps" or "seconds")."""
        return scoring.time_to_target(
            record[unit], record["values"], self.target, maximize=self.maximize
        )

    def study_times(self, optimizer: str, unit: str = "steps") -> np.ndarray:
        return np.array(
            [
                scoring.study_time([self.time(r, unit) for r in study])
                for study in self.trials[optimizer]
            ]
        )

    def score(self, optimizer: str, unit: str = "steps") -> float:
        return scoring.median_over_studies(self.study_times(optimizer, unit))

    def best_trial(self, optimizer: str, study: int) -> dict:
        """The study's chosen trial: the fastest to target, else the best final value."""
        runs = self.trials[optimizer][study]
        times = [self.time(r, "steps") for r in runs]
        if any(math.isfinite(t) for t in times):
            return runs[int(np.argmin(times))]
        finals = [_final(r, self.maximize) for r in runs]
        return runs[int(np.argmax(finals) if self.maximize else np.argmin(finals))]


def _final(record: dict, maximize: bool) -> float:
    v = record["values"][-1] if record["status"] == "ok" else math.nan
    return v if math.isfinite(v) else (-math.inf if maximize else math.inf)


def run(
    out: str | Path,
    *,
    optimizers: Sequence[str],
    workloads: Sequence[str] | None = None,
    settings: Settings = Settings(),  # noqa: B008 (frozen, never mutated)
    engine: str = "local",
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> list[WorkloadResult]:
    """Run the protocol on each workload (default: all) for each optimizer. The trials
    ``out`` lacks run here one after another (``engine="local"``) or as Ray tasks
    (``engine="ray"``; ``address`` a cluster's ``HOST:PORT``, None a local runtime), with
    the same curves: :mod:`steplab.benchmark.dispatch`."""
    import steplab.torch as st
    from steplab.benchmark import workloads as registry

    settings.check()
    dispatch.check_engine(engine, address)
    optimizers = list(optimizers)
    if not optimizers or len(set(optimizers)) < len(optimizers):
        raise ValueError("give each optimizer once, at least one")
    for name in optimizers:
        if name not in st.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(st.OPTIMIZERS)}")
    names = list(workloads) if workloads else list(registry.NAMES)
    for name in names:
        registry.get(name)  # an unknown name lists the known ones
    targets = {name: registry.target(name, settings.size) for name in names}
    results, keys = [], []
    for name in names:
        w = registry.get(name)
        steps = settings.steps or w.budget(settings.size).steps
        result = WorkloadResult(
            name, w.description, w.metric, w.maximize, targets[name], steps, optimizers
        )
        results.append(result)
        log(
            f"{name}: {len(optimizers)} optimizers × {settings.studies} studies × "
            f"{settings.per_study} trials, {steps} steps, target {w.metric} {targets[name]}"
        )
        keys += trial_keys(name, optimizers, settings, steps)
    records = dispatch.run_missing(Path(out), keys, engine=engine, address=address, log=log)
    by_name = {r.name: r for r in results}
    for i, key in enumerate(keys):  # keys come optimizer by optimizer, study by study
        studies = by_name[key["workload"]].trials.setdefault(key["optimizer"], [])
        if key["trial"] == 0:
            studies.append([])
        studies[-1].append({**records[i], "hyperparameters": key["hyperparameters"]})
    return results


def trial_keys(
    workload: str, optimizers: Sequence[str], settings: Settings, steps: int
) -> list[dict]:
    """The keys of one workload's trials, optimizer by optimizer, study by study. Study m
    trains with seed ``settings.seed + m`` for every optimizer (paired studies)."""
    keys = []
    for opt in optimizers:
        for study in range(settings.studies):
            draws = tuning.trials_for(
                opt, settings.mode, settings.trials, study=study, seed=settings.seed
            )
            keys += [
                {
                    "workload": workload,
                    "size": settings.size,
                    "optimizer": opt,
                    "study": study,
                    "trial": j,
                    "hyperparameters": hp,
                    "seed": settings.seed + study,
                    "steps": steps,
                }
                for j, hp in enumerate(draws)
            ]
    return keys


def table_rows(results: list[WorkloadResult], settings: Settings) -> list[dict]:
    """One row per workload and optimizer: the median time to target over studies (steps
    and seconds) with a 95 % bootstrap interval over studies, how many studies reached the
    target, and the paired comparison with AdamW over studies."""
    rows = []
    for r in results:
        base = r.study_times(BASELINE) if BASELINE in r.optimizers else None
        for opt in r.optimizers:
            steps = r.study_times(opt, "steps")
            secs = r.study_times(opt, "seconds")
            reached = int(np.isfinite(steps).sum())
            row = {
                "workload": r.name,
                "optimizer": opt,
                "metric": r.metric,
                "target": r.target,
                "studies": len(steps),
                "reached": reached,
                "steps_median": scoring.median_over_studies(steps),
                "steps_ci": _ci(steps),
                "seconds_median": scoring.median_over_studies(secs),
                "seconds_ci": _ci(secs),
                "vs_adamw": "—",
            }
            if base is not None and opt != BASELINE:
                row["vs_adamw"] = _versus(steps, base)
            rows.append(row)
    return rows


def _ci(times: np.ndarray) -> tuple[float, float]:
    return stats.bootstrap_ci(times, scoring.median_over_studies)


def _versus(times: np.ndarray, base: np.ndarray) -> str:
    """Paired over studies on log time (ratios); a study where either never reached the
    target has no time, so it is left out and the count says so."""
    both = np.isfinite(times) & np.isfinite(base)
    if not both.any():
        return "no study where both reached the target"
    test = stats.paired_test(np.log(times[both]), np.log(base[both]))
    ratio = math.exp(test.mean_difference)
    verdict = test.verdict("lower")
    dropped = int((~both).sum())
    note = f", {dropped} unpaired" if dropped else ""
    return f"×{ratio:.2f} time: {verdict}{note}"


def format_time(median: float, ci: tuple[float, float], digits: int = 3) -> str:
    if not math.isfinite(median):
        return "not reached"
    lo, hi = ci
    hi_text = "not reached" if not math.isfinite(hi) else f"{hi:.{digits}g}"
    return f"{median:.{digits}g} [{lo:.{digits}g}, {hi_text}]"


def format_table(rows: list[dict], budget: str) -> str:
    """The time-to-target table as aligned text, with the tuning budget under it."""
    columns = ("workload", "optimizer", "target", "steps", "seconds", "reached", "vs adamw")
    shown = [
        {
            "workload": r["workload"],
            "optimizer": r["optimizer"],
            "target": f"{r['metric']} {'≥' if 'accuracy' in r['metric'] else '≤'} {r['target']}",
            "steps": format_time(r["steps_median"], r["steps_ci"]),
            "seconds": format_time(r["seconds_median"], r["seconds_ci"], 2),
            "reached": f"{r['reached']}/{r['studies']}",
            "vs adamw": r["vs_adamw"],
        }
        for r in rows
    ]
    widths = {c: max(len(c), *(len(s[c]) for s in shown)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(s[c].ljust(widths[c]) for c in columns) for s in shown]
    lines += [
        "",
        "Time to target: median over studies [95 % bootstrap interval over studies]; "
        "'not reached' is no score.",
        "vs adamw: paired over studies (same seeds), exact sign-flip test on log time, 5 %.",
        f"Tuning budget: {budget}",
    ]
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(results: list[WorkloadResult], budget: str) -> str:
    """The README's table: one row per optimizer, one column per workload (median steps to
    target over studies [95 % bootstrap interval]), then the integrated profile score."""
    optimizers = results[0].optimizers
    times = np.array([[r.score(o) for o in optimizers] for r in results])
    integral = profile.integrated_score(times)
    head = ["optimizer", *(f"{r.name} ({_goal(r)})" for r in results), "score (τ ≤ 4)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, opt in enumerate(optimizers):
        cells = [
            format_time(r.score(opt), _ci(r.study_times(opt)), 3).replace("not reached", "—")
            for r in results
        ]
        lines.append(f"| {opt} | " + " | ".join(cells) + f" | {integral[i]:.2f} |")
    lines += [
        "",
        "Steps to the validation target: median over studies [95 % bootstrap interval over "
        "studies]; — : not reached in most studies (an interval's upper end may also be not "
        f"reached). Tuning budget: {budget}.",
    ]
    return "\n".join(lines)


def _goal(result: WorkloadResult) -> str:
    short = {"val_accuracy": "acc", "val_loss": "loss", "val_mse": "MSE"}
    sign = "≥" if result.maximize else "≤"
    return f"{short.get(result.metric, result.metric)} {sign} {result.target}"
