"""Optimizer benchmarks with DeepOBS' protocol: tune α on a log grid, rerun the best over
seeds, report mean ± std, sensitivity plots and a Dolan–Moré performance profile.

>>> from steplab import benchmark
>>> results = benchmark.run(benchmark.SMALL, "out/bench", optimizers=["sgd", "adam"])
>>> print(benchmark.report.write(results, "out/bench", {}))  # doctest: +SKIP

``steplab benchmark`` runs it from the command line (``--engine ray`` on a Ray cluster).
"""

from steplab.benchmark import profile, report
from steplab.benchmark.protocol import ENGINES, Metric, ProblemResult, run
from steplab.benchmark.suites import (
    DEFAULT_OPTIMIZERS,
    FULL,
    SMALL,
    SUITES,
    BenchmarkProblem,
    Suite,
    get,
)

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "ENGINES",
    "FULL",
    "SMALL",
    "SUITES",
    "BenchmarkProblem",
    "Metric",
    "ProblemResult",
    "Suite",
    "get",
    "profile",
    "report",
    "run",
]
