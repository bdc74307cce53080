"""Performance profiles (Dolan & Moré, 2002): which optimizer is close to the best, how often.

For problems p and solvers s with a cost t[p, s] > 0 (smaller is better; ``inf`` for a
failure), the ratio r[p, s] = t[p, s] / min_s t[p, s] says how far s is from the best solver
on p, and the profile ρ_s(τ) = |{p : r[p, s] ≤ τ}| / |P| is the fraction of problems on
which s is within a factor τ of the best. ρ_s(1) is how often s wins; ρ_s(τ → ∞) how often
it does not fail. (E. D. Dolan, J. J. Moré, "Benchmarking optimization software with
performance profiles", Math. Programming 91, 2002.)

Both protocols use them: DeepOBS' suites with the final test error as the cost, AlgoPerf's
with the time to target, summed up by :func:`integrated_score` (∫₁⁴ ρ dτ / 3).
"""

from __future__ import annotations

import numpy as np

TAU_MAX = 4.0  # AlgoPerf integrates the profile from τ = 1 to 4


def ratios(costs) -> np.ndarray:
    """Performance ratios ``r[p, s]`` for costs ``(problems, solvers)``; a problem that
    every solver failed (all ``inf``/NaN) gives ``inf`` everywhere. Ties share ratio 1."""
    t = np.asarray(costs, dtype=np.float64)
    if t.ndim != 2 or 0 in t.shape:
        raise ValueError(f"costs must be a non-empty (problems, solvers) array, got {t.shape}")
    t = np.where(np.isnan(t), np.inf, t)
    if np.any(t <= 0):
        raise ValueError(
            "performance-profile costs must be > 0 (an error, a gap or a time to target)"
        )
    best = t.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(best), t / best, np.inf)


def profile(costs, taus) -> np.ndarray:
    """ρ_s(τ): array ``(solvers, len(taus))`` of the fraction of problems with r ≤ τ."""
    r = ratios(costs)
    taus = np.asarray(taus, dtype=np.float64)
    return (r[:, :, None] <= taus[None, None, :]).mean(axis=0)


def tau_range(costs, points: int = 200) -> np.ndarray:
    """Log-spaced τ from 1 to a bit past the largest finite ratio (at least 10)."""
    r = ratios(costs)
    finite = r[np.isfinite(r)]
    top = max(10.0, 1.5 * float(finite.max())) if finite.size else 10.0
    return np.geomspace(1.0, top, points)


def integrated_score(costs, tau_max: float = TAU_MAX) -> np.ndarray:
    """AlgoPerf's benchmark score per solver: ∫₁^τmax ρ_s(τ) dτ / (τmax − 1), in [0, 1]
    (1: best on every problem; 0: never within τmax of the best). ρ is a step function, so
    the integral is exact: each problem adds (τmax − r)/(τmax − 1) when its ratio r ≤ τmax."""
    r = ratios(costs)
    inside = np.where(r <= tau_max, (tau_max - r) / (tau_max - 1.0), 0.0)
    return inside.mean(axis=0)
