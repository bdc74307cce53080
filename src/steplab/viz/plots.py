"""Still figures drawn from arrays: contours with trajectories, a 3-D surface, curves, heatmaps.

Everything here is pure drawing. The inputs are what a run's history holds — iterates
``(T, 2)``, losses ``(T,)``, step sizes ``(T, d)`` — or a function to evaluate on a grid
for the contour lines (evaluating an objective is not running an optimizer).
Each ``*_figure`` function returns the matplotlib figure; :func:`steplab.viz.save` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from steplab.viz.base import styled, subplots
from steplab.viz.palette import marker, styles, variants

Function2D = Callable[[np.ndarray], np.ndarray]  # rows (N, 2) -> values (N,)


# --------------------------------------------------------------------------------------
# Contours and trajectories
# --------------------------------------------------------------------------------------


def grid_values(f: Function2D, bounds, n: int = 200):
    """``f`` on an ``n × n`` grid over ``bounds = ((x0, x1), (y0, y1))``: X, Y, Z."""
    (x0, x1), (y0, y1) = bounds
    X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    Z = np.asarray(f(np.column_stack([X.ravel(), Y.ravel()]))).reshape(X.shape)
    return X, Y, Z


def draw_contours(ax, f: Function2D, bounds, *, levels: int = 25, log: bool = False):
    """Filled contours of ``f`` with thin level lines; ``log`` spaces levels geometrically
    (right for functions with a minimum near 0 and steep walls, like Rosenbrock).

    The fill is a light gray ramp (darker = lower): every optimizer's color stands out on
    it, blue ones included."""
    X, Y, Z = grid_values(f, bounds)
    if log:
        positive = Z - Z.min() + 1e-3 * (np.ptp(Z) or 1.0)
        lv = np.geomspace(positive.min(), positive.max(), levels)
        Z, kind = positive, {"levels": lv, "norm": _log_norm(lv)}
    else:
        kind = {"levels": levels}
    ax.contourf(X, Y, Z, cmap="Greys_r", alpha=0.32, **kind)
    ax.contour(X, Y, Z, colors="k", linewidths=0.4, alpha=0.3, **kind)
    ax.set_xlim(*bounds[0])
    ax.set_ylim(*bounds[1])
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")


def _log_norm(levels):
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=levels[0], vmax=levels[-1])


def _path_length(xy: np.ndarray) -> float:
    finite = xy[np.all(np.isfinite(xy), axis=1)]
    return float(np.sum(np.hypot(*np.diff(finite, axis=0).T))) if len(finite) > 1 else 0.0


def draw_paths(ax, paths: Mapping[str, np.ndarray], *, upto: int | None = None, markers=True):
    """One line per optimizer through its iterates (``(T, 2)``), the start marked with a
    star and the last drawn iterate with the optimizer's own marker; returns
    ``{label: Line2D}``.

    Every run stays visible where paths overlap (SGD under Momentum along a saddle's
    ridge, AdaGrad stalled under RMSProp): shorter paths are drawn on top of longer ones,
    each line has a thin white casing that separates it from the line beneath, and each
    family ends in its own marker shape."""
    from matplotlib import patheffects

    cased = [patheffects.Stroke(linewidth=3.6, foreground="white"), patheffects.Normal()]
    cut = {
        label: np.asarray(xy)[: None if upto is None else upto + 1] for label, xy in paths.items()
    }
    order = sorted(cut, key=lambda label: -_path_length(cut[label]))  # longest first
    rank = {label: i for i, label in enumerate(order)}
    lines = {}
    variant = variants(list(paths))
    for label, style in styles(list(paths)).items():
        xy = cut[label]
        z = 3 + rank[label] * 0.1
        legend_label = style.pop("label")
        (line,) = ax.plot(
            xy[:, 0],
            xy[:, 1],
            **style,
            label=f"_{legend_label}",  # hidden: the proxy below shows line and marker
            zorder=z,
            path_effects=cased,
        )
        if markers:  # one small dot per iterate: the step lengths, uncased
            ax.plot(xy[:, 0], xy[:, 1], ".", color=style["color"], ms=3.5, zorder=z + 0.05)
        ax.plot(
            *xy[-1],
            marker(label, variant[label]),
            color=style["color"],
            ms=9,
            mec="white",
            mew=1.0,
            zorder=z + 2,
        )
        ax.plot(
            [],
            [],
            **style,
            marker=marker(label, variant[label]),
            ms=8,
            mec="white",
            label=legend_label,
        )
        lines[label] = line
    first = np.asarray(next(iter(paths.values())))[0]
    ax.plot(*first, marker="*", color="black", ms=13, ls="none", label="start", zorder=20)
    return lines


def mark_points(ax, points, *, marker="x", label=None):
    """Mark known minima or saddle points."""
    for i, p in enumerate(points):
        ax.plot(
            p[0],
            p[1],
            marker,
            color="black",
            ms=10,
            mew=2.5,
            label=label if i == 0 else None,
            zorder=21,
        )


@dataclass
class Panel:
    """One contour panel: its title, the view (bounds) and how many steps it shows."""

    title: str
    bounds: Sequence[Sequence[float]]
    upto: int | None = None  # last step drawn; None = all
    points: Sequence = field(default_factory=tuple)  # minima / saddle points to mark
    points_label: str | None = None


@styled
def contour_figure(
    f: Function2D,
    paths: Mapping[str, np.ndarray],
    panels: Sequence[Panel],
    *,
    title: str = "",
    log_levels: bool = False,
):
    """Contours of ``f`` with every optimizer's trajectory, one or more panels side by side
    (e.g. "after start" zoomed in and "later" zoomed out); one shared legend."""
    fig, axes = subplots(1, len(panels), width=5.6, height=5.0, layout="constrained")
    for ax, panel in zip(axes[0], panels, strict=True):
        draw_contours(ax, f, panel.bounds, log=log_levels)
        draw_paths(ax, paths, upto=panel.upto)
        if panel.points:
            mark_points(ax, panel.points, label=panel.points_label)
        ax.set_title(panel.title)
        ax.grid(False)
    shared_legend(fig, axes[0][0])
    if title:
        fig.suptitle(title, fontsize=14)
    return fig


def shared_legend(fig, ax) -> None:
    """One legend for the whole figure, on one line below the panels: never wrapped,
    never over a path. With a single panel it goes on the right instead, one entry per
    line, so that it adds no blank band. (The figure needs ``layout="constrained"``.)"""
    handles, labels = ax.get_legend_handles_labels()
    panels = sum(a.get_visible() for a in fig.axes)
    if panels == 1:
        fig.legend(handles, labels, loc="outside right center", frameon=False)
    else:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncol=len(labels),
            frameon=False,
            handlelength=1.6,
            columnspacing=1.0,
            handletextpad=0.4,
        )


def _shared_legend(fig, ax, ncol: int | None = None):  # kept for callers outside viz
    shared_legend(fig, ax)


@styled
def surface_figure(
    f: Function2D,
    paths: Mapping[str, np.ndarray],
    bounds,
    *,
    title: str = "",
    zlim: tuple[float, float] | None = None,
    view: tuple[float, float] = (30, -60),
):
    """A 3-D view of the surface with each trajectory lifted onto it. A path ends where it
    leaves the box (or the z range), so no line floats above or below the drawn surface;
    the legend sits outside, to the right, where it covers nothing."""
    fig, axes = subplots(
        1, 1, width=8.0, height=6.0, subplot_kw={"projection": "3d"}, layout="constrained"
    )
    ax = axes[0][0]
    X, Y, Z = grid_values(f, bounds, n=50)
    low, high = zlim if zlim else (float(Z.min()), float(Z.max()))
    ax.plot_surface(X, Y, np.clip(Z, low, high), cmap="Greys_r", alpha=0.35, linewidth=0)
    (x0, x1), (y0, y1) = bounds
    for label, style in styles(list(paths)).items():
        xy = np.asarray(paths[label])
        z = np.asarray(f(xy))
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        if zlim:  # a path leaving the asked z range ends there too
            inside &= (z >= low) & (z <= high)
        end = len(xy) if inside.all() else int(np.argmin(inside))  # stop at the first exit
        ax.plot(xy[:end, 0], xy[:end, 1], z[:end], **style, lw=2.4, zorder=5)
        if end:
            ax.plot(*xy[end - 1], z[end - 1], marker(label), color=style["color"], ms=8)
    start = np.asarray(next(iter(paths.values())))[0]
    ax.plot(*start, float(f(start[None])[0]), "*", color="black", ms=13, label="start")
    ax.set_xlabel(r"$\theta_1$", labelpad=8)
    ax.set_ylabel(r"$\theta_2$", labelpad=8)
    ax.set_zlabel("loss", labelpad=8)
    if zlim:
        ax.set_zlim(low, high)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(_max_ticks(5))
    ax.view_init(elev=view[0], azim=view[1])
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", frameon=False)
    if title:
        fig.suptitle(title, fontsize=14)
    return fig


def _max_ticks(n: int):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(n)


# --------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------


@dataclass
class CurvePanel:
    """One panel of curves: ``series`` maps a label to ``(x, y)``; ``style_key`` maps a
    label to the optimizer whose color it borrows (default: the label itself)."""

    title: str
    xlabel: str
    ylabel: str
    series: Mapping[str, tuple[np.ndarray, np.ndarray]]
    logy: bool = False
    logx: bool = False
    hlines: Mapping[str, float] = field(default_factory=dict)  # label -> y (references)
    linestyles: Mapping[str, str] = field(default_factory=dict)  # label -> override
    colors: Mapping[str, str] = field(default_factory=dict)  # label -> override


@styled
def curves_figure(panels: Sequence[CurvePanel], *, title: str = "", ncols: int | None = None):
    """Line plots, one panel each, colors from the palette, a legend in every panel."""
    ncols = ncols or len(panels)
    nrows = -(-len(panels) // ncols)
    fig, axes = subplots(nrows, ncols, width=5.0, height=3.8, layout="constrained")
    flat = axes.ravel()
    for ax, panel in zip(flat, panels, strict=False):
        for label, style in styles(list(panel.series)).items():
            x, y = (np.asarray(a, dtype=float) for a in panel.series[label])
            style = dict(style)
            if label in panel.linestyles:
                style["linestyle"] = panel.linestyles[label]
            if label in panel.colors:
                style["color"] = panel.colors[label]
            if not _looks_like_optimizer(label):
                style["label"] = label
            if panel.logy:
                y = np.where(y > 0, y, np.nan)  # a log axis can't show 0 or negatives
            ax.plot(x, y, **style)
        for label, level in panel.hlines.items():
            ax.axhline(level, color="black", lw=1.0, ls=(0, (4, 3)), label=label)
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.logy:
            ax.set_yscale("log")
        if panel.logx:
            ax.set_xscale("log")
        ax.legend()
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=14)
    return fig


def _looks_like_optimizer(label: str) -> bool:
    from steplab.viz.palette import COLORS, base_name

    return base_name(label) in COLORS


# --------------------------------------------------------------------------------------
# Heatmaps
# --------------------------------------------------------------------------------------


def tick_label(value: float) -> str:
    """One format for every grid tick: plain for 0.01 ≤ |v| < 1000, else ``2.2e-4``."""
    v = float(value)
    if v == 0 or 1e-2 <= abs(v) < 1e3:
        short = f"{v:.3g}"
        # a decay rate such as 0.9999 would round to "1": keep the digits it needs
        return short if float(short) == round(v, 6) else f"{v:.6g}"
    mantissa, exponent = f"{v:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def log_norm_for(*grids: np.ndarray):
    """One logarithmic color scale for several grids of losses (NaN/inf: diverged, left
    out), so that two heatmaps compared side by side mean the same thing by the same
    color. None when no grid holds a positive finite value."""
    from matplotlib.colors import LogNorm

    values = np.concatenate([np.asarray(g, dtype=float).ravel() for g in grids])
    positive = values[np.isfinite(values) & (values > 0)]
    if not positive.size:
        return None
    return LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 10))


@styled
def heatmap_figure(
    values: np.ndarray,
    xvalues: Sequence[float] | np.ndarray,
    yvalues: Sequence[float] | np.ndarray,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    colorbar: str = "final loss",
    log_color: bool = True,
    norm=None,
):
    """``values[i, j]`` at ``(xvalues[j], yvalues[i])``; diverged cells (NaN/inf) are drawn
    gray and the best cell is outlined. A best cell on the grid's edge is flagged in the
    panel: the optimum may lie outside the grid.

    ``norm`` (e.g. :func:`log_norm_for` of several grids) puts several heatmaps on one
    color scale; by default the scale spans this grid (log for ``log_color``)."""
    from steplab.run.records import EDGE_NOTE, best_at_edge

    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    fig, axes = subplots(1, 1, width=6.2, height=4.8, layout="constrained")
    ax = axes[0][0]
    shown = np.where(finite, values, np.nan)
    if norm is None and log_color:
        norm = log_norm_for(values)
    if norm is not None and log_color:
        # Zeros can't sit on a log scale: lift them to the scale's bottom; NaN stays gray.
        shown = np.where(np.isnan(shown) | (shown > 0), shown, norm.vmin)
    image = ax.imshow(shown, origin="lower", aspect="auto", cmap=_cmap_with_gray(), norm=norm)
    fig.colorbar(image, ax=ax, label=colorbar + " (gray: diverged)")
    every = max(1, -(-len(xvalues) // 8))  # at most ~8 tick labels, or they collide
    ticks = range(0, len(xvalues), every)
    ax.set_xticks(ticks, [tick_label(xvalues[i]) for i in ticks], rotation=45)
    every = max(1, -(-len(yvalues) // 10))
    ticks = range(0, len(yvalues), every)
    ax.set_yticks(ticks, [tick_label(yvalues[i]) for i in ticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(False)
    if finite.any():
        i, j = np.unravel_index(np.nanargmin(np.where(finite, values, np.nan)), values.shape)
        ax.add_patch(_outline(j, i))
        edges = best_at_edge(values, (ylabel, xlabel))
        if edges:
            ax.text(
                0.5,
                1.0,
                f"best {EDGE_NOTE} ({', '.join(edges)})",
                transform=ax.transAxes,
                ha="center",
                va="bottom",
                color="#b00000",
                fontsize=10,
            )
            ax.set_title(title, pad=18)
    return fig


def _cmap_with_gray():
    import matplotlib

    return matplotlib.colormaps["viridis"].with_extremes(bad="#bbbbbb")


def _outline(x, y):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="red", lw=2.5, label="best")


# --------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------


@styled
def sweep_figure(
    results: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    xlabel: str = "step size α",
    ylabel: str = "final loss",
    title: str = "",
    logy: bool = True,
    maximize: bool = False,
):
    """Final loss against one hyperparameter (log x axis), one line per optimizer.

    ``results`` maps a label to ``(values, final_loss, diverged)``; diverged settings
    break the line and are marked with a cross at the top of the panel.
    A best value at either end of the grid is flagged in the legend ("at the grid's
    edge: widen it"): the optimum may lie outside. With ``maximize`` the best value is the
    largest (accuracies), else the smallest.
    """
    from steplab.run.records import EDGE_NOTE, best_at_edge

    fig, axes = subplots(1, 1, width=7.2, height=4.8, layout="constrained")
    ax = axes[0][0]
    top = []
    variant = variants(list(results))
    for label, style in styles(list(results)).items():
        x, y, diverged = (np.asarray(a) for a in results[label])
        y = np.where(diverged | ~np.isfinite(y), np.nan, y.astype(float))
        if best_at_edge(y, maximize=maximize):  # higher is better for accuracies
            style["label"] += f" — best {EDGE_NOTE}"
        ax.plot(x, y, **style, marker=marker(label, variant[label]), ms=6, mec="white")
        top.append((x[diverged.astype(bool)], style["color"]))
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ylow, ymax = ax.get_ylim()
    # One row of crosses per diverging optimizer, stacked down from the top edge, so
    # optimizers that diverge at the same α don't hide each other.
    rows = [(xs, c) for xs, c in top if xs.size]
    for i, (xs, c) in enumerate(rows):
        y = ymax / 1.5**i if logy else ymax - i * 0.04 * (ymax - ylow)
        ax.plot(
            xs,
            np.full(xs.shape, y),
            "x",
            color=c,
            ms=7,
            mew=2,
            clip_on=False,
            label="diverged" if i == 0 else None,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    # beside the panel, never over a curve: a best point may lie in any corner
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", frameon=False)
    return fig


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------


@styled
def run_figure(runs: Mapping, *, ax=None, y: str = "loss", x: str = "step"):
    """``y`` against ``x`` from each run's history (label → :class:`~steplab.run.Run`), one
    line each in the optimizer's color; log scale when every value is positive. Draws
    into ``ax`` when given; returns the figure."""
    from steplab.viz.palette import readable

    if ax is None:
        fig, axes = subplots(1, 1, width=6.4, height=4.2, layout="constrained")
        ax = axes[0][0]
    else:
        fig = ax.figure
    positive = True
    for label, style in styles(list(runs)).items():
        h = runs[label].history
        xs, ys = np.asarray(h[x], dtype=float), np.asarray(h[y], dtype=float)
        keep = np.isfinite(ys)  # validation metrics are NaN between evaluations
        positive &= bool(np.all(ys[keep] > 0))
        ax.plot(xs[keep], ys[keep], **style)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel(readable(x))
    ax.set_ylabel(readable(y))
    # beside the axes, not over the curves (the figure's constrained layout makes room)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig
