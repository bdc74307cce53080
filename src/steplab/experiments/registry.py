"""The experiments registry: name → callable + one-line description.

An experiment is a named, reproducible study. Its callable takes the output folder and
``quick`` (a reduced version for tests) and returns a :class:`Report`: the figures it
wrote, with captions, and rows for the summary table. ``steplab list`` shows the
registry, ``steplab demo`` runs the lecture's lessons from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steplab.viz.report import FigureEntry


@dataclass
class Report:
    """What an experiment produced: figures (paths relative to the output folder),
    summary rows (dicts with the keys of :data:`SUMMARY_COLUMNS`), its numerical claims
    (``{"AdaGrad leaves the saddle before SGD": True, ...}``) and its raw data."""

    name: str
    figures: list[FigureEntry] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    claims: dict[str, bool] = field(default_factory=dict)
    data: Any = None


#: Columns of the summary table, in order.
SUMMARY_COLUMNS = (
    "experiment",
    "optimizer",
    "steps to tol",
    "final loss",
    "final acc",
    "status",
    "time [s]",
)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: ``run(out: Path, quick: bool) -> Report``."""

    name: str
    run: Callable[..., Report]
    description: str
    lesson: bool = False  # part of the lecture's set that ``steplab demo`` reproduces


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, description: str, *, lesson: bool = False):
    """Decorator: add ``run(out, quick=False) -> Report`` to the registry under ``name``."""

    def decorate(run: Callable[..., Report]) -> Callable[..., Report]:
        if name in EXPERIMENTS:
            raise ValueError(f"an experiment named {name!r} is already registered")
        EXPERIMENTS[name] = Experiment(name, run, description, lesson)
        return run

    return decorate


def get(name: str) -> Experiment:
    """The experiment ``name``; a ValueError lists the known names otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def run(name: str, out, *, quick: bool = False) -> Report:
    """Run experiment ``name`` writing into ``out`` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return get(name).run(out, quick=quick)
