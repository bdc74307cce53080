"""Lesson: the step size is the most important control parameter.

Sweep α on a log grid for six optimizers on Rosenbrock and plot the final loss: every
optimizer's result spans orders of magnitude across α, SGD-type methods diverge above a
threshold, and the good range differs per method. Two heatmaps (Adam: α × ρ₁, RMSProp:
α × ρ) show that moving along α changes the outcome far more than the decay rates do.
All runs of one optimizer go through ``steplab.sweep`` as one vectorized ``(K, d)`` run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import steplab as sl
from steplab._io import atomic_write
from steplab.experiments._common import FORMATS, save_entry
from steplab.experiments.registry import Report, register
from steplab.problems import rosenbrock
from steplab.run.records import EDGE_NOTE, best_at_edge
from steplab.viz import heatmap_figure, log_norm_for, sweep_figure

NAME = "sensitivity"
SECTION = "6. Step size: the most important control parameter"
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
DECAYS = {"adam": "rho1", "rmsprop": "rho"}
# Wide enough that no best setting lies at an edge (the demo's own "at the grid's edge:
# widen it" would flag it; a claim checks it): RMSProp's best ρ is 0.999, Adam's best α 1.
DECAY_VALUES = (0.0, 0.5, 0.9, 0.99, 0.999, 0.9999)
LR_RANGE = (-5, 1)  # log₁₀ of the smallest and largest step size of the grid
LR_POINTS = {False: 19, True: 13}  # a third of a decade apart (--quick: half a decade)


@dataclass
class SensitivityData:
    lrs: np.ndarray
    final: dict[str, np.ndarray]  # optimizer -> final loss per lr (inf where diverged)
    heat: dict[str, np.ndarray]  # optimizer -> (decay values, lrs) grid of final losses
    steps: int


def _final_losses(table, n_lrs: int, n_other: int = 1) -> np.ndarray:
    """Final losses in grid order; a diverged run counts as +inf."""
    values = [np.inf if row["status"] == "diverged" else row["final_loss"] for row in table]
    return np.array(values, dtype=float).reshape(n_lrs, n_other)


def _sweep(problem, grid: dict, steps: int):
    """``sl.sweep`` that passes Ctrl+C on: a sweep keeps its rows so far and returns them
    marked ``interrupted``; this lesson needs every row, so it stops there (the command
    line exits 130) and writes nothing from a part of the grid."""
    table = sl.sweep(problem, grid, seeds=[0], steps=steps)
    if table.interrupted:
        raise KeyboardInterrupt
    return table


def compute(quick: bool = False) -> SensitivityData:
    problem = rosenbrock()
    steps = 300 if quick else 500
    lrs = np.logspace(*LR_RANGE, LR_POINTS[quick])
    final = {}
    for name in OPTIMIZERS:
        table = _sweep(problem, {name: {"lr": lrs}}, steps)
        final[name] = _final_losses(table, len(lrs))[:, 0]
    heat = {}
    for name, decay in DECAYS.items():
        table = _sweep(problem, {name: {"lr": lrs, decay: DECAY_VALUES}}, steps)
        heat[name] = _final_losses(table, len(lrs), len(DECAY_VALUES)).T  # rows: decay value
    return SensitivityData(lrs, final, heat, steps)


def lr_figure(data: SensitivityData):
    results = {n: (data.lrs, v, ~np.isfinite(v)) for n, v in data.final.items()}
    return sweep_figure(results, title=f"Final loss after {data.steps} steps on Rosenbrock")


def heat_figure(data: SensitivityData, name: str):
    decay = DECAYS[name]
    symbol = {"rho1": "ρ₁", "rho": "ρ"}[decay]
    return heatmap_figure(
        data.heat[name],
        data.lrs,
        DECAY_VALUES,
        xlabel="step size α",
        ylabel=symbol,
        title=f"{sl.OPTIMIZERS[name].__name__}: final loss over α × {symbol}",
        colorbar=f"final loss after {data.steps} steps",
        norm=log_norm_for(*data.heat.values()),  # one color scale for every heatmap
    )


def _spread(values: np.ndarray) -> float:
    """Orders of magnitude between the best and the worst finite result."""
    finite = values[np.isfinite(values) & (values > 0)]
    return float(np.log10(finite.max() / finite.min())) if finite.size > 1 else 0.0


def run(out: Path, quick: bool = False) -> Report:
    data = compute(quick)
    columns = ["lr", *data.final] + [f"{n}_{DECAYS[n]}={v:g}" for n in DECAYS for v in DECAY_VALUES]
    table = np.column_stack(
        [data.lrs, *data.final.values(), *(row for n in DECAYS for row in data.heat[n])]
    )
    with atomic_write(Path(out) / "sensitivity_final_losses.csv", "w") as stream:
        np.savetxt(stream, table, delimiter=",", header=",".join(columns), comments="", fmt="%.17g")
    formats = ("png",) if quick else FORMATS
    best = {n: data.lrs[int(np.argmin(v))] for n, v in data.final.items()}
    best_text = ", ".join(f"{sl.OPTIMIZERS[n].__name__} {a:.2g}" for n, a in best.items())
    figures = [
        save_entry(
            lr_figure(data),
            out,
            "sensitivity_lr",
            section=SECTION,
            title="Final loss against the step size",
            caption=f"Rosenbrock from (−1.2, 1), {data.steps} steps, {len(data.lrs)} log-spaced α "
            f"per optimizer (crosses: diverged). Best α: {best_text}. Each curve spans orders "
            "of magnitude: no other hyperparameter matters as much."
            + (
                f" Best {EDGE_NOTE} for: {', '.join(edge_names)}."
                if (
                    edge_names := [
                        sl.OPTIMIZERS[n].__name__ for n, v in data.final.items() if best_at_edge(v)
                    ]
                )
                else ""
            ),
            formats=formats,
        )
    ]
    for name in DECAYS:
        along_lr = [_spread(row) for row in data.heat[name]]  # one per decay value
        along_decay = [_spread(col) for col in data.heat[name].T]  # one per α
        widest = int(np.argmax(along_decay))
        figures.append(
            save_entry(
                heat_figure(data, name),
                out,
                f"sensitivity_heatmap_{name}",
                section=SECTION,
                title=f"{sl.OPTIMIZERS[name].__name__}: step size against decay rate",
                caption=f"Gray cells diverged; red box: best. Both heatmaps share one color "
                "scale. Spread of the final loss (orders of magnitude between the best and "
                f"worst finite cell): along α, median {np.median(along_lr):.1f} and at most "
                f"{max(along_lr):.1f}; along the decay rate, median "
                f"{np.median(along_decay):.1f} (at small α no setting moves far) and at most "
                f"{along_decay[widest]:.1f}, at α = {data.lrs[widest]:.2g}."
                + (
                    f" The best cell lies at the grid's edge ({', '.join(edges)}): a wider "
                    "grid may find a better setting."
                    if (edges := best_at_edge(data.heat[name], ("decay rate", "α")))
                    else ""
                ),
                formats=formats,
            )
        )
    rows = []
    for name, values in data.final.items():
        i = int(np.argmin(values))
        edge = f", {EDGE_NOTE}" if best_at_edge(values) else ""
        rows.append(
            {
                "experiment": f"{NAME} (best α = {data.lrs[i]:.2g}{edge})",
                "optimizer": sl.OPTIMIZERS[name].__name__,
                "steps to tol": "—",
                "final loss": float(values[i]),
                "final acc": "—",
                "status": f"{int(np.sum(~np.isfinite(values)))} of {len(values)} α diverged",
                "time [s]": float("nan"),
            }
        )
    claims = {
        f"{sl.OPTIMIZERS[n].__name__}: final loss spans > 1 order of magnitude over α": _spread(v)
        > 1
        for n, v in data.final.items()
    }
    claims["every best α and every heatmap's best cell lies inside the grid"] = not any(
        [best_at_edge(v) for v in data.final.values()]
        + [best_at_edge(data.heat[n], ("decay rate", "α")) for n in DECAYS]
    )
    for name in DECAYS:
        claims[f"{sl.OPTIMIZERS[name].__name__}: α matters more than the decay rate"] = bool(
            np.median([_spread(r) for r in data.heat[name]])
            > np.median([_spread(c) for c in data.heat[name].T])
        )
    return Report(NAME, figures, rows, claims, data)


register(NAME, "final loss vs step size for six optimizers; heatmaps α × decay rate", lesson=True)(
    run
)
