"""When a run stops: the stopping rules as one small type, and the one divergence rule.

:func:`steplab.run.minimize` checks :class:`StoppingRules` at every row; the sweeps that
skip the loop (``steplab.run.sweep``'s compiled path) apply the same :func:`diverged`
rule to their loss histories, so both call a run "diverged" at the same row.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: A loss above this many times max(1, |initial loss|) counts as divergence by default.
DIVERGENCE_FACTOR = 1e8


def divergence_limits(first_loss: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Each run's divergence limit: ``threshold`` if given, else
    ``1e8·max(1, |initial loss|)`` (from the loss of the first row)."""
    first_loss = np.asarray(first_loss, dtype=np.float64)
    if threshold is not None:
        return np.full(first_loss.shape, float(threshold))
    return DIVERGENCE_FACTOR * np.maximum(1.0, np.abs(first_loss))


def diverged(loss: np.ndarray, limits: np.ndarray, finite: np.ndarray | None = None) -> np.ndarray:
    """Whether each run has diverged at this row: something is NaN/inf (``finite`` False,
    by default the loss itself) or the loss exceeds its limit."""
    if finite is None:
        finite = np.isfinite(loss)
    return ~finite | (finite & (loss > limits))


@dataclasses.dataclass(frozen=True)
class StoppingRules:
    """The rules a run stops by (first match wins, checked in this order): divergence →
    ``"diverged"``; loss ≤ ``target_loss`` → ``"target_reached"``; gradient norm ≤ ``gtol``
    or |loss change over ``window`` steps| ≤ ``ftol`` → ``"converged"``; ``time_budget``
    seconds → ``"time_budget"``; ``max_steps`` rows → ``"max_steps"``. ``None``: the rule is
    off."""

    max_steps: int
    target_loss: float | None = None
    gtol: float | None = None
    ftol: float | None = None
    window: int = 10
    time_budget: float | None = None
    divergence_threshold: float | None = None

    def reasons(self, *, t: int, loss: np.ndarray, grad_norm: np.ndarray, finite: np.ndarray,
                limits: np.ndarray, recent: np.ndarray, elapsed: float) -> np.ndarray:  # fmt: skip
        """Each run's reason to stop at row ``t`` (``""`` for none). ``finite``: whether the
        row's loss, gradient and point are finite; ``limits``: :func:`divergence_limits`;
        ``recent``: the ring buffer of the last ``window + 1`` losses (row t at t mod
        (window + 1))."""
        rules = [("diverged", diverged(loss, limits, finite))]
        if self.target_loss is not None:
            rules.append(("target_reached", loss <= self.target_loss))
        if self.gtol is not None:
            rules.append(("converged", grad_norm <= self.gtol))
        if self.ftol is not None and t >= self.window:
            # recent holds the last window+1 losses; the oldest sits right after the newest
            oldest = recent[(t + 1) % (self.window + 1)]
            rules.append(("converged", np.abs(loss - oldest) <= self.ftol))
        if self.time_budget is not None and elapsed >= self.time_budget:
            rules.append(("time_budget", np.ones_like(finite)))
        if t >= self.max_steps:
            rules.append(("max_steps", np.ones_like(finite)))
        reasons = np.full(finite.shape, "", dtype=object)
        for reason, applies in reversed(rules):  # earlier rules overwrite later ones
            reasons[applies] = reason
        return reasons
