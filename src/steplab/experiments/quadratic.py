"""Lesson: SGD vs SGD with momentum vs Adam on an ill-conditioned quadratic form.

``f(θ) = ½ θᵀAθ`` with ``A = diag(1/κ, 1)``, κ = 50: steep across, flat along θ₁. The
lecture's picture, made visible by the step sizes:

- SGD with α = 1.8 (just under 2/λ_max, where it would diverge) zig-zags across the
  steep valley: θ₂ is multiplied by 1 − α = −0.8 per step, a sign flip each time, while
  θ₁ shrinks by only 1 − α/κ = 0.964 per step.
- Momentum (α = 0.5, ρ = 0.9) gathers speed along the flat direction, overshoots the
  minimum and swings back, damped by ρ.
- Adam (α = 0.3) rescales each coordinate by its own gradient size, so it moves as fast
  across the valley as along it: an S-curve that swings across the valley's axis and
  overshoots the minimum (the caption measures it), not a straight line.

A caveat the lecture's picture hides: from a start on the diagonal Adam's first steps
are ``−α·sign(g)`` in every coordinate (ŝ/√r̂ = g/|g| at t = 1), so it moves straight
down the diagonal whatever the conditioning; the second panel shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import steplab as sl
from steplab.experiments._common import (
    SLIDE_FORMATS,
    save_entry,
    settles,
    trace_row,
    write_traces,
)
from steplab.experiments._trace import Trace, trace
from steplab.experiments.registry import Report, register
from steplab.problems import quadratic as quadratic_form
from steplab.viz import CurvePanel, curves_figure, shared_legend, styled, subplots
from steplab.viz.plots import draw_contours, draw_paths, mark_points

NAME = "quadratic"
SECTION = "2. On a quadratic form"
KAPPA = 50.0
STEPS = 250
SHOWN = 80  # steps drawn in the contour panels
TOL = 1e-4  # reached once the loss stays at most TOL × its value at the start
STARTS = {"off-diagonal": (-9.0, 1.5), "diagonal": (-1.5, 1.5)}
TITLES = {"off-diagonal": "The lecture's picture", "diagonal": "Start on the diagonal"}

SGD_LR = 1.8  # just under 2/λ_max = 2: θ₂ flips sign every step (the zig-zag)
OPTIMIZERS = {
    "sgd": sl.SGD(lr=SGD_LR),
    "momentum": sl.Momentum(lr=0.5, rho=0.9),  # underdamped along θ₁: overshoots, swings back
    "adam": sl.Adam(lr=0.3),
}
SETTINGS = "SGD: α = 1.8\nMomentum: α = 0.5, ρ = 0.9\nAdam: α = 0.3, ρ₁ = 0.9, ρ₂ = 0.999"
# Wide and flat like the valley itself (κ = 50: the contours' axes differ by √50 ≈ 7).
BOUNDS = {"off-diagonal": ((-10.0, 3.0), (-2.0, 2.0)), "diagonal": ((-2.2, 1.5), (-1.7, 1.7))}


def problem():
    return quadratic_form([1.0 / KAPPA, 1.0])


@dataclass
class QuadraticData:
    traces: dict[str, dict[str, Trace]]  # start name -> optimizer -> trace
    steps_to_tol: dict[str, dict[str, int | None]]


def compute(quick: bool = False) -> QuadraticData:
    """Run SGD, Momentum and Adam from both starts."""
    q = problem()
    traces, reached = {}, {}
    for start, x0 in STARTS.items():
        f0 = q.value(np.array(x0))
        traces[start] = {n: trace(n, o, q, x0, STEPS) for n, o in OPTIMIZERS.items()}
        reached[start] = {n: settles(tr.loss, TOL * f0) for n, tr in traces[start].items()}
    return QuadraticData(traces, reached)


@styled
def contours_figure(data: QuadraticData):
    """Two panels, each with its own start; every step size and decay rate in the panel."""
    q = problem()
    fig, axes = subplots(1, 2, width=6.4, height=4.4, layout="constrained")
    for ax, start in zip(axes[0], STARTS, strict=True):
        draw_contours(ax, lambda xy: q.value(np.atleast_2d(xy)), BOUNDS[start], levels=20)
        draw_paths(ax, {n: tr.params for n, tr in data.traces[start].items()}, upto=SHOWN)
        mark_points(ax, [(0, 0)], label="minimum")
        x0 = STARTS[start]
        ax.set_title(f"{TITLES[start]}: start ({x0[0]:g}, {x0[1]:g}), {SHOWN} steps")
        ax.grid(False)
    shared_legend(fig, axes[0][0])
    # the settings above the panels, not in a box over the paths' first zig-zags
    fig.suptitle(
        rf"SGD vs Momentum vs Adam on $\frac{{1}}{{2}}\theta^T A\theta$, "
        rf"$A = \mathrm{{diag}}(1/{KAPPA:g}, 1)$" + "\n" + SETTINGS.replace("\n", "  ·  "),
        fontsize=13,
    )
    return fig


def adam_path(data: QuadraticData, start: str = "off-diagonal") -> dict:
    """What Adam's drawn path (the first SHOWN steps) does, measured for the caption: its
    lowest θ₂ and when, how often it crosses the valley's axis θ₂ = 0, and its largest θ₁
    (past the minimum at 0: an overshoot) and when."""
    path = data.traces[start]["adam"].params[: SHOWN + 1]
    signs = np.sign(path[:, 1])
    return {
        "dip": float(path[:, 1].min()),
        "dip_step": int(path[:, 1].argmin()),
        "crossings": int(np.sum(signs[1:] * signs[:-1] < 0)),
        "overshoot": float(path[:, 0].max()),
        "overshoot_step": int(path[:, 0].argmax()),
    }


def loss_figure(data: QuadraticData):
    panels = []
    for start in STARTS:
        series = {n: (np.arange(len(tr.loss)), tr.loss) for n, tr in data.traces[start].items()}
        f0 = data.traces[start]["sgd"].loss[0]
        panels.append(
            CurvePanel(
                f"Loss, {start} start",
                "step",
                "loss (log scale)",
                series,
                logy=True,
                hlines={f"tolerance ({TOL:g} × start)": TOL * f0},
            )
        )
    return curves_figure(panels, title="Loss per step")


def run(out: Path, quick: bool = False) -> Report:
    data = compute(quick)
    for start, traces in data.traces.items():
        write_traces(out, f"quadratic_histories_{start}", traces)
    formats = ("png",) if quick else SLIDE_FORMATS
    adam = adam_path(data)

    def reached(start):
        return ", ".join(
            f"{sl.OPTIMIZERS[n].__name__} {s if s is not None else '—'}"
            for n, s in data.steps_to_tol[start].items()
        )

    figures = [
        save_entry(
            contours_figure(data),
            out,
            "quadratic_contours",
            section=SECTION,
            title="SGD vs Momentum vs Adam on an ill-conditioned quadratic",
            caption=f"Condition number κ = {KAPPA:g}. Left, the lecture's picture: SGD with "
            f"α = {SGD_LR:g} (just under 2/λ_max) zig-zags across the steep valley — θ₂ is "
            f"multiplied by 1 − α = {1 - SGD_LR:g} each step — and crawls along the flat one; "
            "Momentum (α = 0.5, ρ = 0.9) gathers speed, overshoots the minimum and swings "
            "back; Adam (α = 0.3) rescales each coordinate, so it moves as fast across the "
            "valley as along it: not straight in but an S-curve that dips to "
            f"θ₂ = {adam['dip']:.2f} (step {adam['dip_step']}), crosses the valley's axis "
            f"{adam['crossings']} times in {SHOWN} steps and overshoots the minimum to "
            f"θ₁ = {adam['overshoot']:.2f} (step {adam['overshoot_step']}). "
            "Right: from a start on the diagonal Adam moves straight along it — at t = 1 "
            "its update is −α·sign(g) in every coordinate, whatever the gradient's scale — "
            "and past the minimum.",
            formats=formats,
        ),
        save_entry(
            loss_figure(data),
            out,
            "quadratic_loss",
            section=SECTION,
            title="Loss per step on the quadratic",
            caption=f"Steps until the loss stays below {TOL:g} × its start value — diagonal start: "
            f"{reached('diagonal')}; off-diagonal: {reached('off-diagonal')}.",
            formats=formats,
        ),
    ]
    rows = []
    for start in STARTS:
        for n, tr in data.traces[start].items():
            s = data.steps_to_tol[start][n]
            rows.append(
                trace_row(
                    f"{NAME} ({start})", tr, s, "reached tol" if s is not None else "not reached"
                )
            )
    claims = {}
    sgd = data.steps_to_tol["off-diagonal"]["sgd"]
    for n in ("momentum", "adam"):
        mine = data.steps_to_tol["off-diagonal"][n]
        claims[
            f"{sl.OPTIMIZERS[n].__name__} reaches the tolerance before SGD (the lecture's start)"
        ] = mine is not None and (sgd is None or mine < sgd)
    diagonal = data.traces["diagonal"]["adam"].params
    moves = np.diff(diagonal[:6], axis=0)
    claims["from the diagonal start Adam's first steps move equally in θ₁ and θ₂"] = bool(
        np.allclose(np.abs(moves[:, 0]), np.abs(moves[:, 1]), rtol=1e-5)
    )
    return Report(NAME, figures, rows, claims, data)


register(NAME, "SGD vs Momentum vs Adam on an ill-conditioned quadratic, two starts", lesson=True)(
    run
)
