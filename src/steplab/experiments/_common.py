"""Small helpers the lesson modules share: saving a figure as a captioned entry, and
turning a trace into a row of the summary table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steplab._io import atomic_write
from steplab.experiments._trace import Trace
from steplab.viz import save
from steplab.viz.palette import pretty
from steplab.viz.report import FigureEntry

SLIDE_FORMATS = ("png", "svg", "pdf")  # stills meant for a slide: raster + two vector formats
FORMATS = ("png", "pdf")


def save_entry(
    fig, out: Path, stem: str, *, title: str, caption: str, section: str, formats=FORMATS
) -> FigureEntry:
    """Save ``fig`` under ``out/stem.<fmt>`` and describe it for the index page."""
    written = save(fig, Path(out) / stem, formats)
    names = [p.name for p in written]
    return FigureEntry(path=names[0], title=title, caption=caption, section=section, also=names[1:])


def trace_row(experiment: str, trace: Trace, steps_to: int | None, status: str) -> dict:
    """A summary-table row for one optimizer's run in an experiment."""
    return {
        "experiment": experiment,
        "optimizer": pretty(trace.label),
        "steps to tol": "—" if steps_to is None else steps_to,
        "final loss": float(trace.loss[-1]),
        "final acc": "—",
        "status": status,
        "time [s]": float(trace.time[-1]),
    }


def first(condition: np.ndarray) -> int | None:
    """Index of the first True in ``condition`` or None."""
    hits = np.flatnonzero(condition)
    return int(hits[0]) if hits.size else None


def settles(values: np.ndarray, tol: float) -> int | None:
    """The first step from which ``values`` stays at or below ``tol`` for good (a lucky
    dip of an oscillating loss doesn't count), or None."""
    above = np.flatnonzero(~(np.asarray(values) <= tol))
    if above.size == 0:
        return 0
    return int(above[-1]) + 1 if above[-1] + 1 < len(values) else None


def write_traces(out: Path, stem: str, traces: dict[str, Trace]) -> Path:
    """All traces of an experiment as one tidy CSV ``out/stem.csv``: one row per run and
    step with loss, gradient norm, each coordinate and each effective step size."""
    import csv

    path = Path(out) / f"{stem}.csv"
    d = next(iter(traces.values())).params.shape[1]
    header = ["run", "step", "time", "loss", "grad_norm"]
    header += [f"x_{i}" for i in range(d)] + [f"step_size_{i}" for i in range(d)]
    with atomic_write(path, "w", newline="") as handle:  # never a truncated CSV
        writer = csv.writer(handle)
        writer.writerow(header)
        for run, tr in traces.items():
            for t in range(len(tr.loss)):
                writer.writerow(
                    [
                        run,
                        t,
                        repr(float(tr.time[t])),
                        repr(float(tr.loss[t])),
                        repr(float(tr.grad_norm[t])),
                        *map(repr, tr.params[t].tolist()),
                        *map(repr, tr.step_size[t].tolist()),
                    ]
                )
    return path
