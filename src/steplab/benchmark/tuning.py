"""The tuning protocols of AlgoPerf: external tuning (N trials quasi-randomly drawn from a
declared search space, the same N for every optimizer, M independent studies) and
self-tuning (the optimizer's defaults, once per study).

The search space is derived, for every optimizer alike, from the core's declared default
step size: α log-uniform on [default/10, default·100] (all other hyperparameters at their
defaults). Points are a Halton sequence (bases 2, 3, 5, …) scrambled per study by Owen's
random digit permutations (Owen 2017, "A randomized Halton algorithm in R"; point for point
``scipy.stats.qmc.Halton(scramble=True, seed=s)``): each study's N points cover the space
evenly, and the studies' draws are independent, as AlgoPerf's studies are. Independent draws
can still land close by chance: 3 points in one dimension always fill 3 of the 4 quarters of
the range, so two studies share at least two quarters.
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


def digit_permutations(base: int, rng: np.random.Generator) -> np.ndarray:
    """One random permutation of the digits 0 … base−1 for each digit position that a
    double can resolve (base^-k > 2^-54), drawn in order from ``rng``."""
    count = math.ceil(54 / math.log2(base)) - 1
    permutations = np.repeat(np.arange(base)[None], count, axis=0)
    for row in permutations:
        rng.shuffle(row)
    return permutations


def scrambled_radical_inverse(i: int, base: int, permutations: np.ndarray) -> float:
    """:func:`radical_inverse` with the k-th digit (leading zeros included) replaced by
    ``permutations[k][digit]``."""
    result, scale = 0.0, 1.0 / base
    for row in permutations:
        i, digit = divmod(i, base)
        result += int(row[digit]) * scale
        scale /= base
    return result


def halton(n: int, dims: int, *, seed: int | None = None) -> np.ndarray:
    """``(n, dims)`` Halton points. Unscrambled (``seed`` None): from index 1 (index 0 is
    the origin). Scrambled: digit permutations drawn from ``numpy.random.default_rng(seed)``,
    dimension after dimension, points from index 0."""
    if dims > len(PRIMES):
        raise ValueError(f"at most {len(PRIMES)} dimensions, got {dims}")
    if seed is None:
        rows = [[radical_inverse(i, PRIMES[d]) for d in range(dims)] for i in range(1, n + 1)]
        return np.array(rows).reshape(n, dims)
    rng = np.random.default_rng(seed)
    permutations = [digit_permutations(PRIMES[d], rng) for d in range(dims)]
    rows = [
        [scrambled_radical_inverse(i, PRIMES[d], permutations[d]) for d in range(dims)]
        for i in range(n)
    ]
    return np.array(rows).reshape(n, dims)


def study_seed(seed: int, study: int) -> int:
    """The scrambling seed of one study of a benchmark seeded ``seed``."""
    return seed * 10007 + study


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
    """Study ``study``'s N trials: hyperparameter dicts from its scrambled Halton points."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"trials per study must be a positive integer, got {n!r}")
    points = halton(n, len(space), seed=study_seed(seed, study))
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
        f"external tuning: {n} quasi-random (scrambled Halton) trials per study × {studies} "
        "studies, "
        f"the same for every optimizer; search spaces — {spaces}"
    )
