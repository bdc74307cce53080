"""Running optimizers on problems: the loop, its records, and sweeps.

``minimize(problem, optimizer, steps=..., epochs=..., batch_size=..., seed=...)`` runs the
seed's loop and returns a :class:`Run`; K configurations or seeds at once give a
:class:`RunSet`; ``sweep`` runs grids and returns a :class:`Table`.
"""

from steplab.run import store
from steplab.run.loop import MinibatchSampler, minimize
from steplab.run.records import STATUSES, History, Run, RunSet, Table, versions
from steplab.run.sweep import DEEPOBS_LR_GRID, sweep

__all__ = [
    "DEEPOBS_LR_GRID",
    "STATUSES",
    "History",
    "MinibatchSampler",
    "Run",
    "RunSet",
    "Table",
    "minimize",
    "store",
    "sweep",
    "versions",
]
