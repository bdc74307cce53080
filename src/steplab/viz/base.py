"""Matplotlib set-up shared by every figure: the Agg backend, a slide-friendly style, saving.

Agg is chosen here, when a figure is first drawn, not when ``steplab`` is imported: a
notebook user who imports steplab keeps their own backend for their own plots.
"""

from __future__ import annotations

from pathlib import Path

from steplab._extras import requires

with requires("viz", "steplab's figures"):
    import matplotlib

from steplab._io import atomic_write

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), with steplab's style."""
    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.2, **kw):
    """A new figure with ``nrows × ncols`` panels of ``width × height`` inches each."""
    plt = pyplot()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def save(fig, path, formats=("png",)) -> list[Path]:
    """Write ``fig`` as ``path.<fmt>`` for each format (``"png"``, ``"svg"``, ``"pdf"``) and
    close it; return the written paths, PNG first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        # Atomically: an interrupted save never leaves a truncated figure under its name.
        with atomic_write(target) as stream:
            fig.savefig(stream, format=fmt, bbox_inches="tight")
        written.append(target)
    pyplot().close(fig)
    return written
