"""Named, reproducible studies: the lecture's lessons as data plus figures.

>>> from steplab import experiments
>>> sorted(experiments.EXPERIMENTS)[:2]
['adagrad_decay', 'adaptive_step_sizes']
>>> report = experiments.run("saddle", "out/", quick=True)   # doctest: +SKIP

One module per lesson; each has ``compute(quick)`` (the numbers), figure functions that
draw them, and a registered ``run(out, quick)`` that does both. Add your own with
:func:`register`.
"""

# Importing the modules registers their experiments, in the lecture's order.
from steplab.experiments import (
    bias_correction,  # noqa: E402
    quadratic,  # noqa: E402
    saddle,  # noqa: E402, I001
    sensitivity,  # noqa: E402
    step_sizes,  # noqa: E402
)
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
LESSONS = ("saddle", "quadratic", "adaptive_step_sizes", "adagrad_decay", "bias_correction",
           "sensitivity")

__all__ = [
    "LESSONS",
    "EXPERIMENTS",
    "SUMMARY_COLUMNS",
    "Experiment",
    "Report",
    "bias_correction",
    "get",
    "quadratic",
    "register",
    "run",
    "saddle",
    "sensitivity",
    "step_sizes",
]
