"""Matplotlib set-up shared by every figure: a slide-friendly style, new figures, saving.

Figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``),
never through ``pyplot``: drawing a steplab figure neither switches the user's backend
nor registers a window, so a notebook keeps its own backend and its own figures. A
notebook shows a returned figure inline (it is the cell's value); a script saves it with
:func:`save`. The style is applied with ``matplotlib.rc_context`` while a figure is drawn
and restored afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from steplab._extras import requires

with requires("viz", "steplab's figures"):
    import matplotlib
    from matplotlib.figure import Figure

import numpy as np

from steplab._io import atomic_write

#: Sized for a projector: a 1600-px-wide two-panel figure reads from the back of a room.
STYLE: Any = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 2.0,
}

F = TypeVar("F", bound=Callable[..., Any])


def styled(draw: F) -> F:
    """Run ``draw`` (a function that builds a figure) under steplab's style."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def subplots(
    nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.2, **kw: Any
) -> tuple[Figure, np.ndarray]:
    """A new figure with ``nrows × ncols`` panels of ``width × height`` inches each; the
    axes come back as a 2-D array. No pyplot: the figure belongs to the caller alone."""
    dpi = kw.pop("dpi", None)
    layout = kw.pop("layout", None)  # "constrained": legends and colorbars laid out for us
    with matplotlib.rc_context(STYLE):
        fig = Figure(
            figsize=(width * ncols, height * nrows), dpi=dpi or STYLE["figure.dpi"], layout=layout
        )
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save(fig: Figure, path: str | Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write ``fig`` as ``path.<fmt>`` for each format (``"png"``, ``"svg"``, ``"pdf"``);
    return the written paths, PNG first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(STYLE):
        for fmt in formats:
            target = path.with_suffix(f".{fmt}")
            # Atomically: an interrupted save never leaves a truncated figure under its name.
            with atomic_write(target) as stream:
                fig.savefig(stream, format=fmt, bbox_inches="tight")
            written.append(target)
    return written
