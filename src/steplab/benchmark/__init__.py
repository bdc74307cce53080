"""Optimizer benchmarks, two protocols.

DeepOBS' on NumPy problems (suites ``quick``, ``full``): tune α on a log grid, rerun the best
over seeds, report means with bootstrap intervals, sensitivity plots and a Dolan–Moré
performance profile.

>>> from steplab import benchmark
>>> results = benchmark.run(benchmark.QUICK, "out/bench", optimizers=["sgd", "adam"])
>>> print(benchmark.report.write(results, "out/bench", {}))  # doctest: +SKIP

AlgoPerf's on PyTorch workloads (suites ``small``, ``gpu``; :mod:`steplab.benchmark.algoperf`):
time to a validation target, external tuning or self-tuning, median over studies,
performance profiles up to τ = 4. ``steplab benchmark --suite NAME`` runs either
(docs/benchmark.md).
"""

from steplab.benchmark import profile, report, scoring, stats, tuning
from steplab.benchmark.protocol import ENGINES, Metric, ProblemResult, run
from steplab.benchmark.suites import (
    DEFAULT_OPTIMIZERS,
    FULL,
    QUICK,
    SUITES,
    TORCH_OPTIMIZERS,
    TORCH_SUITES,
    BenchmarkProblem,
    Suite,
    TorchSuite,
    get,
)

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "ENGINES",
    "FULL",
    "QUICK",
    "SUITES",
    "TORCH_OPTIMIZERS",
    "TORCH_SUITES",
    "BenchmarkProblem",
    "Metric",
    "ProblemResult",
    "Suite",
    "TorchSuite",
    "get",
    "profile",
    "report",
    "run",
    "scoring",
    "stats",
    "tuning",
]
