"""Grids of runs: every optimizer × hyperparameter combination × seed, vectorized.

The DeepOBS protocol tunes the step size on a grid of 36 log-spaced values from 1e-5 to
1e2 (``DEEPOBS_LR_GRID``) and repeats the best setting over 10 seeds; ``sweep`` runs such a
grid as one ``(K, d)`` problem per optimizer (in chunks if K is large) and returns a tidy
:class:`Table` with one row per configuration and seed.
"""

from __future__ import annotations

import itertools

import numpy as np

from steplab.run.loop import minimize
from steplab.run.records import Table

DEEPOBS_LR_GRID = np.logspace(-5, 2, 36)


def sweep(problem, grid: dict, seeds=range(10), *, chunk_size: int = 512, **options) -> Table:
    """Run every configuration in ``grid`` with every seed; one table row per run.

    ``grid`` maps an optimizer name (or an :class:`~steplab.optim.Optimizer` instance used as
    the base configuration, keyed by any label) to ``{hyperparameter: values}``, e.g.
    ``{"adam": {"lr": DEEPOBS_LR_GRID}, "sgd": {"lr": DEEPOBS_LR_GRID}}``. ``options`` go to
    :func:`~steplab.run.minimize` (``steps``, ``epochs``, ``batch_size``, stopping rules…).
    Rows hold ``optimizer``, the hyperparameters, ``seed``, ``config`` (index of the
    combination within its optimizer), ``status``, ``steps``, ``final_loss``, ``best_loss``,
    ``time`` and final metrics such as ``test_accuracy``.
    """
    from steplab import optim

    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict {optimizer: {hyperparameter: values}}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    if "seed" in options:
        raise ValueError("give seeds=..., not seed=..., to sweep")
    table = Table()
    for label, space in grid.items():
        base = label if isinstance(label, optim.Optimizer) else optim.make(label)
        space = dict(space or {})
        names = list(space)
        for name in names:
            if name not in base.hyperparameters():
                raise ValueError(
                    f"{base.name} has no hyperparameter {name!r}; "
                    f"choose from {', '.join(base.hyperparameters())}"
                )
        value_lists = [np.atleast_1d(np.asarray(space[n], dtype=np.float64)) for n in names]
        combos = list(itertools.product(*value_lists)) if names else [()]
        plan = [(c, combo, s) for c, combo in enumerate(combos) for s in seeds]
        for start in range(0, len(plan), chunk_size):
            chunk = plan[start : start + chunk_size]
            arrays = {n: np.array([combo[j] for _, combo, _ in chunk]) for j, n in enumerate(names)}
            optimizer = base.replace(**arrays) if arrays else base
            runs = minimize(problem, optimizer, seed=[s for *_, s in chunk], **options)
            for (c, _, _), run in zip(chunk, runs, strict=True):
                row = run.summary()
                row["config"] = c
                table.append(row)
    return table
