"""Named, reproducible studies: the lecture's lessons as data plus figures.

>>> from steplab import experiments
>>> experiments.LESSONS[:2]
('saddle', 'quadratic')
>>> report = experiments.run("saddle", "out/", quick=True)   # doctest: +SKIP
>>> report.claims                                             # doctest: +SKIP
{'Momentum leaves the saddle before SGD': True, ...}

One module per lesson; each has ``compute(quick)`` (the numbers), figure functions that
draw them, and a registered ``run(out, quick)`` that does both. Add your own with
:func:`register` (name → callable + one-line description).
"""

# Importing the lesson modules registers their experiments.
import steplab.experiments.schedule_free_mnist1d  # a study beside the lessons
from steplab.experiments import bias_correction, quadratic, saddle, sensitivity, step_sizes
from steplab.experiments.registry import (
    EXPERIMENTS,
    SUMMARY_COLUMNS,
    Experiment,
    Report,
    get,
    register,
    run,
)

#: The lecture's lessons in teaching order: the order of ``steplab demo`` and its page.
LESSONS = (
    "saddle",
    "quadratic",
    "adaptive_step_sizes",
    "adagrad_decay",
    "bias_correction",
    "sensitivity",
)


def names() -> list[str]:
    """Every registered experiment: the lessons in teaching order, then the others."""
    return [n for n in LESSONS if n in EXPERIMENTS] + [n for n in EXPERIMENTS if n not in LESSONS]


__all__ = [
    "EXPERIMENTS",
    "LESSONS",
    "SUMMARY_COLUMNS",
    "Experiment",
    "Report",
    "bias_correction",
    "get",
    "names",
    "quadratic",
    "register",
    "run",
    "saddle",
    "sensitivity",
    "step_sizes",
]

# The published results rerun in steplab.reproductions register as "repro_NAME".
from steplab import reproductions as _reproductions  # noqa: E402, F401
