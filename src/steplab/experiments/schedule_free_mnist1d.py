"""Does Schedule-Free training need no schedule? Measured on MNIST-1D.

An MLP (40 → 32 → 10, ReLU) on MNIST-1D's 3600 training signals, minibatches of 32, a
fixed budget of T steps, several seeds. Three ways to set AdamW's step size:

- a constant α;
- a cosine decay of α to 0 at T: it must know the horizon before it starts;
- Schedule-Free AdamW (Defazio et al., 2024) with a constant γ and a 5 % linear warm-up:
  no horizon. The loop judges it at its evaluation point x by itself (``eval_params``).

Each method runs at every step size of a grid and is shown at the one with the lowest mean
final training loss (the objective all three minimize); the loss and the test accuracy
are on the full data sets, every ``EVAL_EVERY`` steps. The claims (:func:`run`) compare
the final training losses: Schedule-Free below the constant step, and level with the
cosine schedule or below it (within two standard deviations over seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

import steplab as sl
from steplab.experiments._common import FORMATS, save_entry
from steplab.experiments.registry import Report, register
from steplab.optim import AdamW, ScheduleFreeAdamW
from steplab.optim.schedules import CosineDecay
from steplab.viz import CurvePanel, curves_figure

NAME = "schedule_free_mnist1d"
SECTION = "Schedule-Free training"
HIDDEN, BATCH, EVAL_EVERY, WARMUP = (32,), 32, 100, 0.05


METHODS = ("AdamW, constant α", "AdamW, cosine α (knows T)", "Schedule-Free AdamW")
#: The step sizes each method runs at, three factors of ~3 around its best (Schedule-Free's
#: γ is larger: the authors tune it 1-10× AdamW's α).
GRIDS = dict(zip(METHODS, [(0.003, 0.01, 0.03), (0.01, 0.03, 0.1), (0.03, 0.1, 0.3)],
                 strict=True))  # fmt: skip


class Size(NamedTuple):
    steps: int
    seeds: int


FULL = Size(steps=2000, seeds=5)  # the figure's run
QUICK = Size(steps=600, seeds=3)  # the test's


def optimizer(method: str, lr: float, steps: int):
    """The method's optimizer at step size ``lr`` for a budget of ``steps``."""
    if method == METHODS[0]:
        return AdamW.like("torch", lr=lr)
    if method == METHODS[1]:
        return AdamW.like("torch", lr=CosineDecay(lr, steps))
    return ScheduleFreeAdamW(lr=lr, warmup_steps=WARMUP * steps)


@dataclass
class Comparison:
    steps: np.ndarray  # the evaluated steps 0, EVAL_EVERY, …, T
    train_loss: dict[str, np.ndarray]  # method -> (seeds, evaluations), at its chosen α
    test_accuracy: dict[str, np.ndarray]
    lr: dict[str, float]  # the chosen α (γ for Schedule-Free)
    final_by_lr: dict[str, dict[float, float]]  # method -> α -> mean final training loss


def compare(steps: int, seeds: int) -> Comparison:
    """Every method at every step size of its grid, ``seeds`` seeds at once each."""
    problem = sl.problems.mlp("mnist1d", hidden=HIDDEN, init="torch")
    histories: dict[str, dict[float, list]] = {m: {} for m in METHODS}  # method -> α -> runs
    for method in METHODS:
        for lr in GRIDS[method]:
            runs = sl.minimize(problem, optimizer(method, lr, steps), steps=steps,
                               batch_size=BATCH, seed=list(range(seeds)),
                               eval_every=EVAL_EVERY, record_every=EVAL_EVERY)  # fmt: skip
            histories[method][lr] = list(runs)
    final_by_lr = {
        m: {lr: _mean_final(hs) for lr, hs in by_lr.items()} for m, by_lr in histories.items()
    }
    chosen = {m: min(by_lr, key=by_lr.__getitem__) for m, by_lr in final_by_lr.items()}

    def column(name: str) -> dict[str, np.ndarray]:
        return {m: np.array([r.history[name] for r in histories[m][chosen[m]]]) for m in METHODS}

    first = histories[METHODS[0]][chosen[METHODS[0]]][0].history
    return Comparison(np.asarray(first["step"]), column("train_loss"), column("test_accuracy"),
                      chosen, final_by_lr)  # fmt: skip


def _mean_final(runs: list) -> float:
    """The mean final training loss over seeds; inf when a seed diverged."""
    if any(run.status != "max_steps" for run in runs):
        return math.inf
    return float(np.mean([run.history["train_loss"][-1] for run in runs]))


def compute(quick: bool = False) -> Comparison:
    return compare(*(QUICK if quick else FULL))


def summary(data: Comparison) -> dict[str, str]:
    """Each method's final training loss and test accuracy, mean ± std over seeds."""
    out = {}
    for m in METHODS:
        loss, accuracy = data.train_loss[m][:, -1], data.test_accuracy[m][:, -1]
        out[m] = (f"α = {data.lr[m]:g}: loss {loss.mean():.3f} ± {loss.std():.3f}, "
                  f"test acc {accuracy.mean():.1%} ± {accuracy.std():.1%}")  # fmt: skip
    return out


def claims(data: Comparison) -> dict[str, bool]:
    final = {m: data.train_loss[m][:, -1] for m in METHODS}
    constant, cosine, free = (final[m] for m in METHODS)
    spread = 2 * max(cosine.std(), free.std())
    return {
        "Schedule-Free AdamW ends below AdamW at a constant step (final training loss)": bool(
            free.mean() < constant.mean() - spread
        ),
        "Schedule-Free AdamW ends no higher than the cosine schedule that knows T (within 2 "
        "std over seeds)": bool(free.mean() <= cosine.mean() + spread),
        "no chosen step size lies at its grid's edge": all(
            GRIDS[m][0] < data.lr[m] < GRIDS[m][-1] for m in METHODS
        ),
    }


SHORT = dict(zip(METHODS, ("constant", "cosine, knows T", "Schedule-Free"), strict=True))


def figure(data: Comparison):
    seeds = next(iter(data.train_loss.values())).shape[0]

    def final(values: dict[str, np.ndarray], fmt: str) -> dict[str, tuple]:
        """Mean curves, labelled with the method, its α and the final mean ± std."""
        return {
            f"{SHORT[m]}, α={data.lr[m]:g}: {fmt.format(v[:, -1].mean())} ± "
            f"{fmt.format(v[:, -1].std())}": (data.steps, v.mean(0))
            for m, v in values.items()
        }

    return curves_figure(
        [
            CurvePanel(
                "Training loss (all 3600 signals)",
                "step",
                "cross-entropy, mean of seeds",
                final(data.train_loss, "{:.3f}"),
                logy=True,
            ),  # fmt: skip
            CurvePanel(
                "Test accuracy",
                "step",
                "accuracy, mean of seeds",
                final(data.test_accuracy, "{:.1%}"),
            ),  # fmt: skip
        ],
        title=f"MNIST-1D, MLP {list(HIDDEN)}, batches of {BATCH}, {seeds} seeds: AdamW at "
        "each one's best α of three",
    )


def run(out: Path, quick: bool = False) -> Report:
    data = compute(quick)
    entry = save_entry(
        figure(data),
        out,
        "schedule_free_mnist1d",
        section=SECTION,
        title="Schedule-Free AdamW against a cosine schedule on MNIST-1D",
        caption="Step sizes tried: "
        + "; ".join(f"{m} {', '.join(map(str, GRIDS[m]))}" for m in METHODS)
        + ". Final values, mean ± std over seeds: "
        + "; ".join(f"{m} ({s})" for m, s in summary(data).items())
        + ". Schedule-Free is judged at its evaluation point x (the loop does this itself).",
        formats=("png",) if quick else FORMATS,
    )
    return Report(NAME, [entry], [], claims(data), data)


register(
    NAME,
    "Schedule-Free AdamW vs AdamW with a cosine schedule and a constant step, MLP on "
    "MNIST-1D, over seeds",
)(run)
