"""The benchmark's suites. DeepOBS' protocol on NumPy problems: ``quick`` (minutes) and
``full`` (hours). AlgoPerf's protocol on PyTorch workloads: ``small`` (the workloads' small
sizes, a 2-core CPU) and ``gpu`` (their full sizes).

Each :class:`BenchmarkProblem` names a catalogue problem, how it is built (dataset, widths)
and how long each run lasts (steps or epochs, batch size). The protocol settings of a suite
are the step-size grid, the number of rerun seeds and the tuning seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steplab.problems.base import Problem
from steplab.run.sweep import DEEPOBS_LR_GRID

# The optimizers of the lecture (plain and heavy-ball SGD, then the adaptive ones).
DEFAULT_OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
TUNING_SEED = 42  # DeepOBS' default seed; its reruns use seeds 42, 43, …


@dataclass(frozen=True)
class BenchmarkProblem:
    """One problem of a suite: ``label`` (unique in the suite), the catalogue ``problem``
    and its ``build`` options, and the run ``options`` given to :func:`steplab.sweep`."""

    label: str
    problem: str
    build: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Problem:
        from steplab import problems

        return problems.get(self.problem, **self.build)


@dataclass(frozen=True)
class Suite:
    """Problems plus the protocol's settings: step sizes tried, rerun seeds."""

    name: str
    problems: tuple[BenchmarkProblem, ...]
    lr_grid: np.ndarray
    seeds: int
    description: str


QUICK = Suite(
    "quick",
    (
        BenchmarkProblem("rosenbrock", "rosenbrock", options={"steps": 500}),
        BenchmarkProblem("two_d_beale", "two_d_beale", options={"steps": 500, "batch_size": 16}),
        BenchmarkProblem(
            "quadratic_deep", "quadratic_deep", options={"epochs": 10, "batch_size": 128}
        ),
        BenchmarkProblem(
            "logreg_breast_cancer",
            "logistic_regression",
            {"data": "breast_cancer"},
            {"epochs": 10, "batch_size": 32},
        ),
        BenchmarkProblem(
            "mlp_digits",
            "mlp",
            {"data": "digits", "hidden": (32,)},
            {"epochs": 5, "batch_size": 64},
        ),
        BenchmarkProblem(
            "mlp_mnist1d",
            "mlp",
            {"data": "mnist1d", "hidden": (64,)},
            {"epochs": 5, "batch_size": 64},
        ),
    ),
    lr_grid=np.logspace(-5, 0, 11),
    seeds=3,
    description="6 problems, 11 step sizes 1e-5…1, best rerun with 3 seeds, short runs",
)

FULL = Suite(
    "full",
    (
        BenchmarkProblem("rosenbrock", "rosenbrock", options={"steps": 2000}),
        BenchmarkProblem("beale", "beale", options={"steps": 2000}),
        BenchmarkProblem("himmelblau", "himmelblau", options={"steps": 2000}),
        BenchmarkProblem(
            "two_d_rosenbrock", "two_d_rosenbrock", options={"steps": 2000, "batch_size": 128}
        ),
        BenchmarkProblem("two_d_beale", "two_d_beale", options={"steps": 2000, "batch_size": 128}),
        BenchmarkProblem(
            "two_d_branin", "two_d_branin", options={"steps": 2000, "batch_size": 128}
        ),
        BenchmarkProblem(
            "quadratic_deep", "quadratic_deep", options={"epochs": 100, "batch_size": 128}
        ),
        BenchmarkProblem(
            "logreg_breast_cancer",
            "logistic_regression",
            {"data": "breast_cancer"},
            {"epochs": 50, "batch_size": 32},
        ),
        BenchmarkProblem(
            "logreg_mnist1d",
            "softmax_regression",
            {"data": "mnist1d"},
            {"epochs": 20, "batch_size": 64},
        ),
        BenchmarkProblem(
            "mlp_digits",
            "mlp",
            {"data": "digits", "hidden": (100,)},
            {"epochs": 20, "batch_size": 64},
        ),
        BenchmarkProblem(
            "mlp_mnist1d",
            "mlp",
            {"data": "mnist1d", "hidden": (100, 100)},
            {"epochs": 20, "batch_size": 64},
        ),
    ),
    lr_grid=DEEPOBS_LR_GRID,
    seeds=10,
    description="11 problems, DeepOBS' 36 step sizes 1e-5…1e2, best rerun with 10 seeds",
)

SUITES = {suite.name: suite for suite in (QUICK, FULL)}


@dataclass(frozen=True)
class TorchSuite:
    """AlgoPerf-style settings over the PyTorch workloads: their size, N trials per study
    (external tuning), M studies."""

    name: str
    size: str
    trials: int
    studies: int
    description: str


# The lecture's optimizers plus AdamW, the baseline every verdict is paired with.
TORCH_OPTIMIZERS = (*DEFAULT_OPTIMIZERS, "adamw")

TORCH_SUITES = {
    s.name: s
    for s in (
        TorchSuite(
            "small",
            "small",
            trials=3,
            studies=3,
            description="5 PyTorch workloads (small sizes, CPU), 3 trials × 3 studies, "
            "time to target",
        ),
        TorchSuite(
            "gpu",
            "full",
            trials=8,
            studies=5,
            description="the same workloads at full size (one GPU), 8 trials × 5 studies",
        ),
    )
}


def get(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    return SUITES[name]
