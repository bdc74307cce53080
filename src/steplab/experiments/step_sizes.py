"""Lessons: adaptive step sizes per coordinate, and AdaGrad's premature decay.

1. *Adaptive step sizes.* On the badly scaled quadratic ``½(θ₁² + 100·θ₂²)`` the
   derivative along θ₂ is 100 times larger. AdaGrad, RMSProp and Adam divide α by the root
   of (a sum or an average of) squared derivatives, so θ₂ gets the *smaller* step size
   and θ₁ the larger one: "inputs with large derivatives get smaller step sizes".
2. *AdaGrad's premature decay.* AdaGrad's sum of squared gradients only grows, so its
   step sizes only shrink; on Rosenbrock's valley the steep early gradients leave it with
   steps too small to walk the valley floor. RMSProp's moving average forgets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import steplab as sl
from steplab.experiments._common import FORMATS, save_entry, trace_row, write_traces
from steplab.experiments._trace import Trace, trace
from steplab.experiments.registry import Report, register
from steplab.problems import quadratic as quadratic_form
from steplab.problems import rosenbrock
from steplab.viz import CurvePanel, Panel, color, contour_figure, curves_figure

SECTION_ADAPTIVE = "3. Adaptive step sizes"
SECTION_DECAY = "4. AdaGrad's premature decay vs RMSProp's moving average"

SCALES = (1.0, 100.0)  # curvatures: θ₂'s derivatives are 100× θ₁'s
ADAPTIVE = {"adagrad": sl.AdaGrad(lr=0.1), "rmsprop": sl.RMSProp(lr=0.01), "adam": sl.Adam(lr=0.01)}
ADAPTIVE_STEPS = 300

DECAY_LR = 0.01
DECAY = {"adagrad": sl.AdaGrad(lr=DECAY_LR), "rmsprop": sl.RMSProp(lr=DECAY_LR)}


@dataclass
class StepSizeData:
    traces: dict[str, Trace]


def compute_adaptive(quick: bool = False) -> StepSizeData:
    """AdaGrad, RMSProp and Adam on ``½(θ₁² + 100θ₂²)`` from (1, 1)."""
    q = quadratic_form(list(SCALES), x0=[1.0, 1.0])
    return StepSizeData({n: trace(n, o, q, q.x0, ADAPTIVE_STEPS) for n, o in ADAPTIVE.items()})


def compute_decay(quick: bool = False) -> StepSizeData:
    """AdaGrad and RMSProp with the same α on Rosenbrock from (−1.2, 1)."""
    r = rosenbrock()
    steps = 400 if quick else 2000
    return StepSizeData({n: trace(n, o, r, r.x0, steps) for n, o in DECAY.items()})


def adaptive_figure(data: StepSizeData):
    """One panel per optimizer: each coordinate's effective step size per step; a last
    panel with the derivatives' sizes."""
    panels = []
    for name, tr in data.traces.items():
        t = np.arange(len(tr.loss))
        label1, label2 = "θ₁: small derivatives", "θ₂: large derivatives (100×)"
        panels.append(
            CurvePanel(
                sl.OPTIMIZERS[name].__name__,
                "step",
                "effective step size",
                logy=True,
                series={label1: (t[1:], tr.step_size[1:, 0]), label2: (t[1:], tr.step_size[1:, 1])},
                colors={label1: color(name), label2: color(name)},
                linestyles={label1: "-", label2: "--"},
            )
        )
    along = "adam" if "adam" in data.traces else next(iter(data.traces))  # a subset is fine
    grads = np.abs(data.traces[along].params * np.array(SCALES))  # ∂f/∂θ_i = λ_i θ_i
    t = np.arange(len(grads))
    panels.append(
        CurvePanel(
            f"Derivative sizes along {sl.OPTIMIZERS[along].__name__}'s path",
            "step",
            "|∂f/∂θᵢ|",
            logy=True,
            series={"|∂f/∂θ₁|": (t, grads[:, 0]), "|∂f/∂θ₂|": (t, grads[:, 1])},
            colors={"|∂f/∂θ₁|": "#4d4d4d", "|∂f/∂θ₂|": "#4d4d4d"},
            linestyles={"|∂f/∂θ₁|": "-", "|∂f/∂θ₂|": "--"},
        )
    )
    return curves_figure(
        panels,
        ncols=2,
        title=r"Per-coordinate step sizes on $\frac{1}{2}(\theta_1^2 + 100\,\theta_2^2)$",
    )


def decay_figure(data: StepSizeData):
    """Effective step size (geometric mean over coordinates) and loss, both log scale."""
    sizes, losses = {}, {}
    for name, tr in data.traces.items():
        t = np.arange(len(tr.loss))
        sizes[name] = (t[1:], np.exp(np.mean(np.log(tr.step_size[1:]), axis=1)))
        losses[name] = (t, tr.loss)
    return curves_figure(
        [
            CurvePanel(
                "Effective step size", "step", "step size (geometric mean)", sizes, logy=True
            ),
            CurvePanel("Loss", "step", "loss", losses, logy=True),
        ],
        title=f"AdaGrad vs RMSProp on Rosenbrock, same α = {DECAY_LR}",
    )


def decay_paths_figure(data: StepSizeData):
    r = rosenbrock()
    paths = {n: tr.params for n, tr in data.traces.items()}
    panel = Panel(
        "Paths on Rosenbrock", ((-1.6, 1.4), (-0.6, 1.6)), points=r.minima, points_label="minimum"
    )
    return contour_figure(lambda xy: r.value(np.atleast_2d(xy)), paths, [panel], log_levels=True)


@register(
    "adaptive_step_sizes",
    "each coordinate's effective step size for AdaGrad, RMSProp, Adam on a badly scaled quadratic",
    lesson=True,
)
def run_adaptive(out: Path, quick: bool = False) -> Report:
    data = compute_adaptive(quick)
    write_traces(out, "adaptive_step_sizes_histories", data.traces)
    formats = ("png",) if quick else FORMATS
    last = {n: tr.step_size[ADAPTIVE_STEPS // 10] for n, tr in data.traces.items()}
    ratios = ", ".join(f"{sl.OPTIMIZERS[n].__name__} {v[0] / v[1]:.0f}×" for n, v in last.items())
    figures = [
        save_entry(
            adaptive_figure(data),
            out,
            "adaptive_step_sizes",
            section=SECTION_ADAPTIVE,
            title="Large derivatives get small steps, small derivatives large ones",
            caption="Effective step size α/(β + √r) per coordinate (for Adam α/√(r̂ + β), the "
            "factor in front of ŝ). At step "
            f"{ADAPTIVE_STEPS // 10}, θ₁'s step size is larger than θ₂'s by: {ratios}. "
            "RMSProp's and Adam's step sizes grow again as the gradients shrink near the "
            "minimum; AdaGrad's never do.",
            formats=formats,
        )
    ]
    rows = [trace_row("adaptive step sizes", tr, None, "ran") for tr in data.traces.values()]
    claims = {
        f"{sl.OPTIMIZERS[n].__name__}: θ₁ (small derivatives) gets the larger step size": bool(
            v[0] > v[1]
        )
        for n, v in last.items()
    }
    return Report("adaptive_step_sizes", figures, rows, claims, data)


@register(
    "adagrad_decay",
    "AdaGrad's ever-shrinking step sizes vs RMSProp's moving average on Rosenbrock",
    lesson=True,
)
def run_decay(out: Path, quick: bool = False) -> Report:
    data = compute_decay(quick)
    write_traces(out, "adagrad_decay_histories", data.traces)
    formats = ("png",) if quick else FORMATS
    ada, rms = data.traces["adagrad"], data.traces["rmsprop"]
    figures = [
        save_entry(
            decay_figure(data),
            out,
            "adagrad_decay",
            section=SECTION_DECAY,
            title="AdaGrad's premature decay",
            caption=f"Same α = {DECAY_LR}. AdaGrad's accumulated squared gradients "
            "only grow, so its step size only falls "
            f"(to {np.exp(np.mean(np.log(ada.step_size[-1]))):.1e} at the end); "
            "RMSProp's moving average forgets the steep start and keeps steps of "
            f"{np.exp(np.mean(np.log(rms.step_size[-1]))):.1e}. Final loss: AdaGrad "
            f"{ada.loss[-1]:.3g}, RMSProp {rms.loss[-1]:.3g}.",
            formats=formats,
        ),
        save_entry(
            decay_paths_figure(data),
            out,
            "adagrad_decay_paths",
            section=SECTION_DECAY,
            title="AdaGrad stalls in the valley",
            caption="The same runs on Rosenbrock's contours (log-spaced levels).",
            formats=formats,
        ),
    ]
    rows = [trace_row("adagrad decay", tr, None, "ran") for tr in data.traces.values()]
    claims = {
        "AdaGrad's step size never grows": bool(np.all(np.diff(ada.step_size[1:], axis=0) <= 0)),
        "RMSProp ends with larger steps than AdaGrad": bool(
            np.all(rms.step_size[-1] > ada.step_size[-1])
        ),
        "RMSProp ends with a lower loss than AdaGrad": bool(rms.loss[-1] < ada.loss[-1]),
    }
    return Report("adagrad_decay", figures, rows, claims, data)
