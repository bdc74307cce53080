"""Lesson: near a saddle point, adaptive methods escape much sooner than plain SGD.

The lecture's animation (Dettmers 2015, after Radford) races SGD, Momentum, Nesterov,
AdaGrad, AdaDelta and RMSProp on a saddle; Adam is missing there and added here. The
surface is ``x² − y²`` with the start ``(1, 10⁻³)`` just off the ridge: the gradient
along y is ``−2y ≈ −0.002``, so SGD's y-steps are tiny and grow only geometrically
(``y ← (1 + 2α)·y``), while AdaGrad, RMSProp and Adam divide by the root of the squared
gradient and take full-size steps at once.

A run *leaves the saddle* at the first step with ``|y| ≥ 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import steplab as sl
from steplab.experiments._common import (
    SLIDE_FORMATS,
    first,
    save_entry,
    trace_row,
    write_traces,
)
from steplab.experiments._trace import Trace, trace
from steplab.experiments.registry import Report, register
from steplab.problems import saddle as saddle_problem
from steplab.viz import (
    AnimatedPanel,
    CurvePanel,
    Panel,
    animate,
    contour_figure,
    curves_figure,
)

NAME = "saddle"
SECTION = "1. Near a saddle point"
LR = 0.05  # one global step size for all, as in the lecture's race (AdaDelta has none: 1.0)
STEPS = 150
ESCAPE = 1.0  # |y| beyond which a run has left the saddle
EARLY = 30  # steps shown in the "after start" panel

OPTIMIZERS = {
    "sgd": sl.SGD(lr=LR),
    "momentum": sl.Momentum(lr=LR),
    "nesterov": sl.Nesterov(lr=LR),
    "adagrad": sl.AdaGrad(lr=LR),
    "adadelta": sl.AdaDelta(),
    "rmsprop": sl.RMSProp(lr=LR),
    "adam": sl.Adam(lr=LR),
}

LECTURE_LR = 0.5  # the shared α at which steplab's race ranks as the lecture's does
AFTER_START = ((-0.4, 1.2), (-0.4, 1.2))
LATER = ((-1.5, 1.5), (-1.5, 1.5))


@dataclass
class SaddleData:
    traces: dict[str, Trace]
    escape_step: dict[str, int | None]  # first step with |y| >= ESCAPE
    escape_at_lecture_lr: dict[str, int | None]  # the same race with α = LECTURE_LR


def _race(optimizers: dict) -> dict[str, Trace]:
    problem = saddle_problem()
    return {
        name: trace(name, opt, problem, problem.x0, STEPS, stop=lambda x, f: np.abs(x).max() > 10)
        for name, opt in optimizers.items()
    }


def escape_steps(traces: dict[str, Trace]) -> dict[str, int | None]:
    """Each run's first step with ``|y| ≥ 1`` (None: never)."""
    return {name: first(np.abs(tr.params[:, 1]) >= ESCAPE) for name, tr in traces.items()}


def compute(quick: bool = False) -> SaddleData:
    """Run every optimizer from the start ``(1, 1e-3)``; stop a run once ``|θ| > 10``.
    The race is also run with the larger shared α = LECTURE_LR (AdaDelta has no α)."""
    traces = _race(OPTIMIZERS)
    larger = {
        name: opt if name == "adadelta" else sl.make(name, lr=LECTURE_LR)
        for name, opt in OPTIMIZERS.items()
    }
    return SaddleData(traces, escape_steps(traces), escape_steps(_race(larger)))


def ranking(escape: dict[str, int | None]) -> str:
    """``"RMSProp 8, Adam 20, …"``: fastest escape first."""
    order = sorted(escape, key=lambda n: escape[n] or 10**9)
    return ", ".join(f"{sl.OPTIMIZERS[n].__name__} {escape[n]}" for n in order)


def _f(xy):
    return saddle_problem().value(np.atleast_2d(xy))


def stills_figure(data: SaddleData):
    """Two panels like the lecture's: "after start" (zoomed, first steps), "later"."""
    paths = {n: tr.params for n, tr in data.traces.items()}
    panels = [
        Panel(
            f"After start (steps 0–{EARLY})",
            AFTER_START,
            upto=EARLY,
            points=[(0, 0)],
            points_label="saddle point",
        ),
        Panel(f"Later (steps 0–{STEPS})", LATER, points=[(0, 0)], points_label="saddle point"),
    ]
    return contour_figure(_f, paths, panels, title=r"Near a saddle point: $f(x, y) = x^2 - y^2$")


def escape_figure(data: SaddleData):
    """|y| (distance from the ridge) against the step, log scale: the escape race."""
    series = {
        n: (np.arange(len(tr.params)), np.abs(tr.params[:, 1])) for n, tr in data.traces.items()
    }
    panel = CurvePanel(
        "Escaping the saddle: distance |y| from the ridge",
        "step",
        r"$|y|$ (log scale)",
        series,
        logy=True,
        hlines={"left the saddle (|y| = 1)": ESCAPE},
    )
    return curves_figure([panel])


def ranking_figure(data: SaddleData):
    """The escape race as a ranking, at the small shared α and at the lecture's α = 0.5:
    one bar per optimizer (steps until |y| ≥ 1, fastest on top; never: no bar)."""
    from steplab.viz import color, subplots

    fig, axes = subplots(1, 2, width=4.6, height=3.6, layout="constrained")
    for ax, (alpha, escape) in zip(
        axes[0], ((LR, data.escape_step), (LECTURE_LR, data.escape_at_lecture_lr)), strict=True
    ):
        order = sorted(escape, key=lambda n: escape[n] or 10**9)
        steps: list[int] = [escape[n] or 0 for n in order]  # never: no bar
        names = [sl.OPTIMIZERS[n].__name__ for n in order]
        ax.barh(names, steps, color=[color(n) for n in order])
        for y, (n, value) in enumerate(zip(order, steps, strict=True)):
            text = f" {value}" if escape[n] is not None else " never"
            ax.text(value, y, text, va="center", fontsize=9)
        ax.invert_yaxis()  # the winner on top
        ax.set_xlabel(f"steps until |y| ≥ {ESCAPE:g}")
        where = "AdaDelta: its own step" if "adadelta" in escape else ""
        ax.set_title(f"shared α = {alpha:g}" + (f" ({where})" if where else ""), fontsize=11)
        ax.set_xlim(0, max(steps) * 1.18 + 1)
        ax.grid(False)
    fig.suptitle("The escape race, ranked (the lecture ranks RMSProp first, then AdaGrad)")
    return fig


def run(out: Path, quick: bool = False) -> Report:
    data = compute(quick)
    write_traces(out, "saddle_histories", data.traces)
    formats = ("png",) if quick else SLIDE_FORMATS
    figures = [
        save_entry(
            stills_figure(data),
            out,
            "saddle_stills",
            section=SECTION,
            title="Near a saddle point: after start and later",
            caption=f"x² − y² from (1, 0.001), α = {LR} for all (AdaDelta: its own "
            f"unit-free step). Steps until |y| ≥ 1: {ranking(data.escape_step)}. All methods "
            "beat vanilla SGD; the adaptive ones divide the tiny y-gradient by its own size. "
            "The lecture's animation ranks RMSProp first, then AdaGrad; here AdaGrad is "
            "slower because with a small shared α its sum of every past squared gradient "
            "keeps growing as |y| grows, so its steps along y stay near α and shrink "
            "like 1/√t, while RMSProp's average over the recent past starts at "
            "α/√(1 − ρ) ≈ 3.2·α. With a larger shared α, AdaGrad escapes in a few steps, "
            f"before its decay bites: at α = {LECTURE_LR} the race ranks as the lecture's — "
            f"{ranking(data.escape_at_lecture_lr)}.",
            formats=formats,
        ),
        save_entry(
            ranking_figure(data),
            out,
            "saddle_ranking",
            section=SECTION,
            title="The escape race, ranked",
            caption=f"Steps until |y| ≥ {ESCAPE:g}, fastest on top. With the small shared "
            f"α = {LR}: {ranking(data.escape_step)}. With the lecture's α = {LECTURE_LR}: "
            f"{ranking(data.escape_at_lecture_lr)} — RMSProp first, then AdaGrad, as the "
            "lecture ranks them.",
            formats=formats,
        ),
        save_entry(
            escape_figure(data),
            out,
            "saddle_escape",
            section=SECTION,
            title="The escape race",
            caption="|y| per step on a log scale: SGD's distance grows by the factor "
            "1 + 2α per step, a straight line; the adaptive methods jump.",
            formats=formats,
        ),
    ]
    movie = animate(
        _f,
        {n: tr.params for n, tr in data.traces.items()},
        [
            AnimatedPanel("After start", AFTER_START, steps_per_frame=EARLY / 60, points=[(0, 0)]),
            AnimatedPanel("Later", LATER, steps_per_frame=STEPS / 60, points=[(0, 0)]),
        ],
        Path(out) / "saddle_animation",
        n_frames=12 if quick else 61,
        title="SGD and friends near a saddle point",
        mp4=False if quick else None,
    )
    names = [p.name for p in movie.paths]
    figures.append(save_entry_for_movie(names[::-1], movie.n_frames))  # the MP4 plays first
    rows = []
    for name, tr in data.traces.items():
        step = data.escape_step[name]
        status = f"left saddle at step {step}" if step is not None else "still at saddle"
        rows.append(trace_row(NAME, tr, step, status))
    sgd = data.escape_step["sgd"]
    claims = {}
    for n in OPTIMIZERS:
        mine = data.escape_step[n]
        if n != "sgd":
            claims[f"{sl.OPTIMIZERS[n].__name__} leaves the saddle before SGD"] = (
                mine is not None and (sgd is None or mine < sgd)
            )
    fast = sorted(data.escape_at_lecture_lr, key=lambda n: data.escape_at_lecture_lr[n] or 10**9)
    claims[f"at α = {LECTURE_LR} the lecture's ranking holds: RMSProp first, then AdaGrad"] = fast[
        :2
    ] == ["rmsprop", "adagrad"]
    return Report(NAME, figures, rows, claims, data)


def save_entry_for_movie(names: list[str], n_frames: int):
    from steplab.viz.report import FigureEntry

    return FigureEntry(
        path=names[0],
        section=SECTION,
        also=names[1:],
        title="Animation: SGD and friends near a saddle point",
        caption=f"{n_frames} frames (the video can be paused and scrubbed). Left: after "
        f"start, steps 0–{EARLY}. Right: later, steps 0–{STEPS}. Adam, missing from the "
        "lecture's animation, is in vermillion with an ✕ marker.",
    )


register(
    NAME,
    "the lecture's saddle-point race (x² − y²), with Adam added; MP4/GIF + stills",
    lesson=True,
)(run)


def _escapes_first(step: int | None, sgd_step: int | None) -> bool:
    """Whether a method left the saddle (``step``) and did so before SGD (if SGD did at all)."""
    return step is not None and (sgd_step is None or step < sgd_step)
