"""AlgoPerf-style scoring (Dahl et al., "Benchmarking Neural Network Training Algorithms",
2023): the time a training run needs to reach a validation target, the best trial of a
study, the median over studies. Their performance profiles up to τ = 4 and the integrated
score are :mod:`steplab.benchmark.profile`'s (the same Dolan–Moré profiles as DeepOBS').

A time is in steps or in wall seconds of training (evaluation time excluded). A run that
never reaches the target — or fails or diverges first — has time ``inf``: it is reported as
"not reached", never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def reached(value: float, target: float, maximize: bool) -> bool:
    """Whether one evaluation meets the target (≥ for accuracies, ≤ for losses)."""
    return math.isfinite(value) and (value >= target if maximize else value <= target)


def time_to_target(
    times: Sequence[float], values: Sequence[float], target: float, *, maximize: bool
) -> float:
    """When the validation metric first meets ``target``, linearly interpolated between
    the evaluation before (which had not met it) and the first one that did.

    ``times[i]`` is when evaluation ``i`` happened (steps or seconds, increasing),
    ``values[i]`` what it measured. An evaluation that met the target at the first
    evaluation counts at that time. A NaN/inf value (divergence) ends the run: later values
    don't count. Never reached: ``inf``.
    """
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"times and values must be 1-D of equal length: {t.shape}, {v.shape}")
    for i in range(t.size):
        if not math.isfinite(v[i]):
            return math.inf  # diverged before reaching the target
        if reached(float(v[i]), target, maximize):
            if i == 0 or v[i] == v[i - 1]:
                return float(t[i])
            fraction = (target - v[i - 1]) / (v[i] - v[i - 1])
            return float(t[i - 1] + fraction * (t[i] - t[i - 1]))
    return math.inf


def study_time(trial_times: Sequence[float] | np.ndarray) -> float:
    """A study's time: its fastest trial (external tuning picks the best of N); ``inf``
    when no trial reached the target."""
    a = np.asarray(trial_times, dtype=np.float64)
    if a.size == 0:
        raise ValueError("a study needs at least one trial")
    a = np.where(np.isnan(a), np.inf, a)
    return float(a.min())


def median_over_studies(study_times: Any) -> float:
    """The score: the median of the studies' times. More than half the studies never
    reaching the target makes it ``inf``; with an even count the two middle times are
    averaged (``inf`` if either is)."""
    a = np.asarray(study_times, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no studies to take the median of")
    a = np.sort(np.where(np.isnan(a), np.inf, a))
    mid = a.size // 2
    if a.size % 2:
        return float(a[mid])
    low, high = a[mid - 1], a[mid]
    return math.inf if math.isinf(high) else float((low + high) / 2)
