"""The tuning protocols of AlgoPerf: external tuning (N trials quasi-randomly drawn from a
declared search space, the same N for every optimizer, M independent studies) and
self-tuning (the optimizer's defaults, once per study).

The search space is derived, for every optimizer alike, from the core's declared default
step size: α log-uniform on [default/10, default·100] (all other hyperparameters at their
defaults). Points are a Halton sequence (bases 2, 3, 5, …) given a random Cranley–Patterson
shift per study, so each study's N points cover the space evenly and studies differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)
MODES = ("external", "self")


def radical_inverse(i: int, base: int) -> float:
    """The i-th Halton coordinate in ``base``: i's digits mirrored about the point
    (i = 6 = 110₂ → 0.011₂ = 0.375)."""
    result, scale = 0.0, 1.0 / base
    while i > 0:
        i, digit = divmod(i, base)
        result += digit * scale
        scale /= base
    return result


def halton(n: int, dims: int, *, shift_seed: int | None = None) -> np.ndarray:
    """``(n, dims)`` points of the Halton sequence from index 1 (index 0 is the origin),
    shifted mod 1 by one uniform vector drawn from ``shift_seed`` (none: unshifted)."""
    if dims > len(PRIMES):
        raise ValueError(f"at most {len(PRIMES)} dimensions, got {dims}")
    points = np.array(
        [[radical_inverse(i, PRIMES[d]) for d in range(dims)] for i in range(1, n + 1)]
    ).reshape(n, dims)
    if shift_seed is not None:
        points = (points + np.random.default_rng(shift_seed).random(dims)) % 1.0
    return points


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter: log-uniform on [low, high]."""

    name: str
    low: float
    high: float

    def at(self, u: float) -> float:
        return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))

    def describe(self) -> str:
        return f"{self.name} ~ logU[{self.low:.3g}, {self.high:.3g}]"


def search_space(optimizer: str) -> tuple[Dimension, ...]:
    """The declared search space: α log-uniform on [default/10, default·100]."""
    from steplab import optim

    default = float(optim.make(optimizer).config()["lr"])
    return (Dimension("lr", default / 10, default * 100),)


def draw(space: tuple[Dimension, ...], n: int, *, study: int, seed: int) -> list[dict]:
    """Study ``study``'s N trials: hyperparameter dicts from the shifted Halton points."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"trials per study must be a positive integer, got {n!r}")
    points = halton(n, len(space), shift_seed=seed * 10007 + study)
    return [{d.name: d.at(u) for d, u in zip(space, row, strict=True)} for row in points]


def trials_for(optimizer: str, mode: str, n: int, *, study: int, seed: int) -> list[dict]:
    """The hyperparameters of one study's trials: N drawn ones (external) or the
    defaults once (self-tuning)."""
    if mode not in MODES:
        raise ValueError(f"tuning mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "self":
        return [{}]
    return draw(search_space(optimizer), n, study=study, seed=seed)


def budget_text(mode: str, n: int, studies: int, optimizers: list[str]) -> str:
    """The tuning budget in words, printed with every verdict."""
    if mode == "self":
        return f"self-tuning: defaults only, 1 trial per study × {studies} studies"
    spaces = "; ".join(
        f"{name}: {', '.join(d.describe() for d in search_space(name))}" for name in optimizers
    )
    return (
        f"external tuning: {n} quasi-random (Halton) trials per study × {studies} studies, "
        f"the same for every optimizer; search spaces — {spaces}"
    )
