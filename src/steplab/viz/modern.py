"""Figures for Schedule-Free training, weight averaging and the cautious mask, drawn from
the data of :mod:`steplab.experiments.modern` (object-oriented matplotlib, no pyplot)."""

from __future__ import annotations

from typing import Any

import numpy as np

from steplab.viz.base import styled, subplots

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]


@styled
def schedule_free_figure(curves: Any) -> Any:
    """Excess loss against steps, mean ± one standard deviation over seeds (log scale)."""
    fig, axes = subplots(1, 1, width=7.5, height=4.6, layout="constrained")
    ax = axes[0, 0]
    for color, (name, losses) in zip(COLORS, curves.losses.items(), strict=False):
        mean, std = losses.mean(0), losses.std(0)
        final = f"{mean[-1]:.4f} ± {std[-1]:.4f}"
        ax.plot(curves.steps, mean, color=color, label=f"{name}: {final}")
        ax.fill_between(curves.steps, np.maximum(mean - std, 1e-6), mean + std, color=color,
                        alpha=0.2, linewidth=0)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("excess loss (mean ± std over seeds)")
    seeds = next(iter(curves.losses.values())).shape[0]
    ax.set_title(f"Noisy least squares, {seeds} seeds: no schedule, no horizon needed")
    ax.legend(loc="upper right", title="final value")
    return fig


@styled
def ema_figure(cloud: Any) -> Any:
    """The iterates of constant-step SGD on a noisy quadratic and their EMA."""
    fig, axes = subplots(1, 2, width=5.6, height=4.8, layout="constrained")
    ax = axes[0, 0]
    x = np.linspace(-3, 3, 121)
    xx, yy = np.meshgrid(x, x)
    ax.contour(xx, yy, 0.5 * (cloud.curvature[0] * xx**2 + cloud.curvature[1] * yy**2),
               levels=12, colors="0.8", linewidths=0.8)  # fmt: skip
    ax.plot(*cloud.iterates.T, ".", color=COLORS[0], ms=3, alpha=0.6, label="SGD iterates")
    ax.plot(*cloud.averages.T, "-", color=COLORS[1], lw=2, label=f"EMA, ρ = {cloud.decay:g}")
    ax.plot(0, 0, "k*", ms=12, label="minimum")
    ax.set_aspect("equal")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.set_title("Constant step: a cloud around the minimum")
    ax.legend(loc="lower left", fontsize=9)
    ax = axes[0, 1]
    steps = np.arange(1, len(cloud.iterates) + 1)
    for data, color, name in [(cloud.iterates, COLORS[0], "SGD iterate"),
                              (cloud.averages, COLORS[1], "EMA")]:  # fmt: skip
        ax.plot(steps, np.linalg.norm(data, axis=1), color=color, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("distance to the minimum")
    ax.set_title("The average is closer, at no extra gradient")
    ax.legend()
    return fig


@styled
def cautious_figure(race: Any) -> Any:
    """Paths on the saddle x² − y² (left) and |y| against steps (right)."""
    fig, axes = subplots(1, 2, width=5.6, height=4.8, layout="constrained")
    ax = axes[0, 0]
    x = np.linspace(-1.2, 1.2, 121)
    xx, yy = np.meshgrid(x, np.linspace(-1.5, 1.5, 121))
    ax.contour(xx, yy, xx**2 - yy**2, levels=15, colors="0.8", linewidths=0.8)
    styles = ["-", "--", "-", "--"]
    colors = [COLORS[0], COLORS[0], COLORS[3], COLORS[3]]
    for (name, path), style, color in zip(race.paths.items(), styles, colors, strict=False):
        ax.plot(*path.T, style, color=color, lw=1.8, label=name)
    ax.plot(1, 1e-3, "ko", ms=6)
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.5, 1.5)
    ax.set_title("Paths from (1, 10⁻³) on x² − y²")
    ax.legend(loc="lower left", fontsize=9)
    ax = axes[0, 1]
    for (name, path), style, color in zip(race.paths.items(), styles, colors, strict=False):
        step = race.escape_step[name]
        label = f"{name}: leaves at step {step}" if step is not None else f"{name}: stays"
        ax.plot(np.abs(path[:, 1]), style, color=color, lw=1.8, label=label)
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 10)
    ax.set_xlabel("step")
    ax.set_ylabel("|y| (escape at 1)")
    ax.set_title("Escaping the saddle")
    ax.legend(loc="lower right", fontsize=9)
    return fig


__all__ = ["cautious_figure", "ema_figure", "schedule_free_figure"]
