"""AlgoPerf-style scoring (Dahl et al., "Benchmarking Neural Network Training Algorithms",
2023): the time a training run needs to reach a validation target, the best trial of a
study, the median over studies, performance profiles up to τ = 4 and their integrated score.

A time is in steps or in wall seconds of training (evaluation time excluded). A run that
never reaches the target — or fails or diverges first — has time ``inf``: it is reported as
"not reached", never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

TAU_MAX = 4.0  # AlgoPerf integrates the profile from τ = 1 to 4


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


def ratios(times) -> np.ndarray:
    """r[w, s] = t[w, s] / min_s t[w, s] for times ``(workloads, submissions)``; a workload
    that no submission finished gives ``inf`` for all. Ties share ratio 1."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 2 or 0 in t.shape:
        raise ValueError(f"times must be a non-empty (workloads, submissions) array: {t.shape}")
    t = np.where(np.isnan(t), np.inf, t)
    if np.any(t <= 0):
        raise ValueError("times to target must be > 0")
    best = t.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(best), t / best, np.inf)


def performance_profile(times, taus) -> np.ndarray:
    """ρ_s(τ) = fraction of workloads with r[w, s] ≤ τ, as ``(submissions, len(taus))``."""
    r = ratios(times)
    taus = np.asarray(taus, dtype=np.float64)
    return (r[:, :, None] <= taus[None, None, :]).mean(axis=0)


def integrated_score(times, tau_max: float = TAU_MAX) -> np.ndarray:
    """AlgoPerf's benchmark score per submission: ∫₁^τmax ρ_s(τ) dτ / (τmax − 1), in [0, 1]
    (1: fastest on every workload; 0: never within τmax of the fastest). ρ is a step
    function, so the integral is exact: each workload adds (τmax − r)/(τmax − 1) when its
    ratio r ≤ τmax."""
    r = ratios(times)
    inside = np.where(r <= tau_max, (tau_max - r) / (tau_max - 1.0), 0.0)
    return inside.mean(axis=0)
