"""Honest statistics for benchmark tables: bootstrap confidence intervals over seeds (or
studies) and a paired comparison against a baseline that says when a difference is not
significant.

- :func:`bootstrap_ci` — the percentile bootstrap (Efron & Tibshirani, 1993, ch. 13): resample
  the n values with replacement, take the statistic each time, report its α/2 and 1 − α/2
  quantiles. With few seeds the interval is narrow and rough; it is printed with n beside it.
- :func:`paired_test` — the exact sign-flip (paired permutation) test on the differences
  ``a − b`` of runs that share a seed: under "no difference" each difference is as likely
  positive as negative, so the p-value is the fraction of the 2ⁿ sign patterns whose |mean|
  is at least the observed one. It never claims more than n allows: with 3 seeds the
  smallest possible two-sided p is 2/8 = 0.25, so nothing is significant at 5 %.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000


def bootstrap_ci(
    values,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` over ``values`` (1-D). One value gives
    the degenerate interval (v, v); non-finite values (a failed run) make the interval
    non-finite when a resample draws them, as the statistic itself would."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D sample, got shape {a.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if a.size == 1:
        return float(a[0]), float(a[0])
    rng = np.random.default_rng(seed)
    draws = a[rng.integers(0, a.size, size=(resamples, a.size))]
    with np.errstate(invalid="ignore"):
        stats = np.array([statistic(row) for row in draws], dtype=np.float64)
    tail = (1 - level) / 2
    # No interpolation between resampled values: an inf (a failure) stays inf, never NaN.
    lo, hi = np.quantile(stats, [tail, 1 - tail], method="nearest")
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedResult:
    """``a`` against ``b`` over n paired runs: the mean difference a − b, its bootstrap
    interval, the exact sign-flip p-value and whether it is below ``alpha``."""

    n: int
    mean_difference: float
    ci: tuple[float, float]
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def verdict(self, better: str = "lower") -> str:
        """``"better"``, ``"worse"`` or ``"not significant (p=…, n=…)"`` for ``a`` against
        ``b``, where ``better`` says which direction is good."""
        if not self.significant:
            return f"not significant (p={self.p_value:.2g}, n={self.n})"
        lower = self.mean_difference < 0
        return "better" if lower == (better == "lower") else "worse"


def paired_test(a, b, *, alpha: float = 0.05, seed: int = 0) -> PairedResult:
    """Compare paired samples (same seeds, same order). Pairs where either is non-finite
    are dropped (a failed run has no value to compare); exact over all 2ⁿ sign patterns
    up to n = 16, else 20 000 random ones."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-D of equal length, got {x.shape}, {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    n = int(d.size)
    if n == 0:
        return PairedResult(0, math.nan, (math.nan, math.nan), 1.0, alpha)
    observed = abs(float(d.mean()))
    if n <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(20000, n))
    flipped = np.abs((signs * d).mean(axis=1))
    p = float(np.mean(flipped >= observed - 1e-12 * max(1.0, observed)))
    return PairedResult(n, float(d.mean()), bootstrap_ci(d, seed=seed), p, alpha)


def format_ci(mean: float | None, ci: tuple[float, float] | None, digits: int = 4) -> str:
    """``mean [lo, hi]``; a missing value is ``—``."""
    if mean is None:
        return "—"
    if not math.isfinite(mean):
        return str(mean)
    if ci is None or ci[0] == ci[1] == mean:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} [{ci[0]:.3g}, {ci[1]:.3g}]"
