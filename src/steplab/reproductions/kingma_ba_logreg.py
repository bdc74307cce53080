"""Kingma & Ba (2015), section 6.1: L2-regularized logistic regression, α/√t.

The paper trains multi-class logistic regression with L2 weight decay on MNIST (784
pixels) in minibatches of 128, with the step size decayed as α_t = α/√t, and plots the
training cost against epochs for Adam, SGD with Nesterov momentum and AdaGrad (Figure 1,
left), each with its best hyperparameters from a dense grid. Its finding (§6.1): "Adam
yields similar convergence as SGD with momentum and both converge faster than Adagrad".

We run the same comparison on MNIST-1D (10 classes, 40 features, 4000 training signals):
every optimizer gets the same log-spaced grid of α and every seed, the α with the lowest
mean final training cost wins, and we compare the cost after 1, 2, 5 and 20 epochs: the
speed the paper speaks of, not only where the runs end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steplab.reproductions._common import Result, eval_curve, fmt, pm, save_figure, seeds_list
from steplab.reproductions.registry import reproduction

SOURCE = (
    "D. P. Kingma, J. Ba, 'Adam: A Method for Stochastic Optimization', ICLR 2015, "
    "section 6.1 and Figure 1 (left: logistic regression on MNIST)"
)
L2, BATCH = 1e-4, 128
OPTIMIZER_NAMES = ("adam", "nesterov", "adagrad")  # Figure 1 (left) has these three
DECAYED = ("adam", "nesterov")  # α_t = α/√t; AdaGrad's own 1/√(Σg²) already decays
CHECKPOINTS = (1, 2, 5, 20)  # epochs at which the costs are compared
# "Similar convergence": Adam's mean cost within SIMILAR[epoch] of SGD-Nesterov's, which is
# 3 × the pooled sample std over seeds 0-2 of the two rows at that epoch, measured with
# `steplab reproduce kingma_ba_logreg` (Adam 0.0180, 0.0054, 0.0034, 0.0043; Nesterov
# 0.0126, 0.0095, 0.0022, 0.0023). Plain SGD with α/√t in Adam's place is 0.043, 0.026 and
# 0.011 away at epochs 2, 5 and 20, outside these (the tests run it).
SIMILAR = {1: 0.047, 2: 0.023, 5: 0.0086, 20: 0.0104}
# The paper's finding at epoch 1 is refuted here (Nesterov is ahead of both; Adam is
# still above AdaGrad): pinned verdicts, so a change in either direction is noticed.
EXPECTED = {
    "epoch 1: Adam within 0.047 of SGD-Nesterov": False,
    "epoch 1: Adam below AdaGrad": False,
}


def check(cost: dict, *, quick: bool = False) -> dict[str, bool]:
    """The paper's finding at each epoch measured, from ``cost[optimizer][epoch]`` (mean
    training cost over the seeds at the tuned α)."""
    epochs = sorted(cost["adam"])
    if quick:  # two epochs: only "Adam keeps up with the best" is checked
        best = min(c[epochs[-1]] for c in cost.values())
        return {
            "Adam ends within 5 % of the best optimizer's training cost": cost["adam"][epochs[-1]]
            <= 1.05 * best
        }
    claims = {}  # one line per epoch, so the table says where the paper's finding holds
    for e in epochs:
        a, n, g = cost["adam"][e], cost["nesterov"][e], cost["adagrad"][e]
        claims[f"epoch {e}: Adam within {SIMILAR[e]:g} of SGD-Nesterov"] = abs(a - n) <= SIMILAR[e]
        claims[f"epoch {e}: Adam below AdaGrad"] = a < g
        claims[f"epoch {e}: SGD-Nesterov below AdaGrad"] = n < g
    return claims


def _optimizer(name, lr):
    """Seed defaults otherwise: Adam ρ₁ = 0.9, ρ₂ = 0.999; Nesterov ρ = 0.9."""
    import steplab as sl

    if name in DECAYED:
        lr = sl.schedules.inverse_sqrt_schedule(lr)
    return sl.make(name, lr=lr)


def compute(
    *,
    quick: bool = False,
    seeds=(0, 1, 2),
    progress: bool = False,
    names=OPTIMIZER_NAMES,
    optimizer=None,
) -> dict:
    """Every optimizer × step size × seed; the tuned step size per optimizer and its runs.

    The setup is a parameter so that a test can break it: ``names`` picks the optimizers,
    ``optimizer(name, lr)`` builds one (default: the paper's, α/√t for Adam and Nesterov).
    """
    import steplab as sl
    from steplab import problems
    from steplab.problems import datasets

    data = datasets.load("mnist1d", val_fraction=0.0)
    problem = problems.softmax_regression(data, l2=L2)
    grid = np.logspace(-2, 0, 3) if quick else np.logspace(-3, 1, 9)
    epochs = 2 if quick else 20
    seeds = list(seeds)
    make = _optimizer if optimizer is None else optimizer
    out: dict[str, Any] = {"grid": grid, "epochs": epochs, "optimizers": {}}
    for name in names:
        per_lr = []
        for lr in grid:  # a schedule is one value for all rows, so one call per α
            runs = sl.minimize(
                problem,
                make(name, float(lr)),
                epochs=epochs,
                batch_size=BATCH,
                seed=seeds,
                record_every=8,
                progress=progress,
            )
            per_lr.append(runs)
        final = np.array(
            [
                [r.metrics["train_loss"] if r.status != "diverged" else np.nan for r in runs]
                for runs in per_lr
            ],
            dtype=float,
        )
        mean = np.nanmean(np.where(np.isfinite(final), final, np.nan), axis=1)
        best = int(np.nanargmin(mean))
        chosen = per_lr[best]
        out["optimizers"][name] = {
            "final_by_lr": mean,
            "best_lr": float(grid[best]),
            "runs": chosen,
            "train_loss": [r.metrics["train_loss"] for r in chosen],
            "test_accuracy": [r.metrics["test_accuracy"] for r in chosen],
            "at_epoch": {
                e: [float(np.interp(e, *eval_curve(r, "train_loss"))) for r in chosen]
                for e in CHECKPOINTS
                if e <= epochs
            },
        }
    return out


def figure(measured: dict, out):
    """Training cost vs epochs at the tuned step sizes, and the tuning curves."""
    from matplotlib.ticker import ScalarFormatter

    from steplab.viz import color, pretty, subplots

    fig, axes = subplots(1, 2, width=5.4, height=4.0)
    curves_ax, tune_ax = axes[0]
    for name, entry in measured["optimizers"].items():
        c = color(name)
        curves = [eval_curve(run, "train_loss") for run in entry["runs"]]
        epochs = curves[0][0]
        values = np.array([v for _, v in curves])
        decay = "/√t" if name in DECAYED else " (own decay)"
        curves_ax.plot(
            epochs,
            values.mean(axis=0),
            color=c,
            label=f"{pretty(name)}, α={entry['best_lr']:.3g}{decay}",
        )
        tune_ax.plot(
            measured["grid"], entry["final_by_lr"], "o-", ms=4, color=c, label=pretty(name)
        )
    curves_ax.set_yscale("log")
    curves_ax.yaxis.set_major_formatter(ScalarFormatter())
    curves_ax.yaxis.set_minor_formatter(ScalarFormatter())
    curves_ax.set_xlabel("epoch")
    curves_ax.set_ylabel("training cost (with L2 term)")
    curves_ax.set_title("tuned α, mean over seeds")
    tune_ax.set_xscale("log")
    tune_ax.set_yscale("log")
    tune_ax.yaxis.set_major_formatter(ScalarFormatter())
    tune_ax.yaxis.set_minor_formatter(ScalarFormatter())
    tune_ax.set_xlabel("step size α")
    tune_ax.set_ylabel(f"final training cost after {measured['epochs']} epochs")
    tune_ax.set_title("tuning grid (mean over seeds)")
    for ax in axes[0]:
        ax.legend()
    fig.suptitle("Kingma & Ba (2015) §6.1 on MNIST-1D: L2 logistic regression, batches of 128")
    fig.tight_layout()
    return save_figure(fig, out, "repro-kingma-ba-logreg")


@reproduction(
    "kingma_ba_logreg",
    "Kingma & Ba (2015) §6.1: logistic regression, α/√t, three optimizers",
    SOURCE,
)
def run(out, *, quick: bool = False, seeds: int | None = None, progress: bool = False) -> Result:
    from steplab.viz import pretty

    seed_list = seeds_list(seeds, 1 if quick else 3)
    measured = compute(quick=quick, seeds=seed_list, progress=progress)
    rows = []
    cost = {}  # optimizer -> epoch -> mean training cost
    for name, entry in measured["optimizers"].items():
        cost[name] = {e: float(np.mean(v)) for e, v in entry["at_epoch"].items()}
        row = {
            "optimizer": pretty(name),
            "step size": f"{entry['best_lr']:.3g}/√t"
            if name in DECAYED
            else fmt(entry["best_lr"], 3),
        }
        for e, values in entry["at_epoch"].items():
            row[f"cost, epoch {e}"] = pm(values, 4)
        row["test accuracy [%]"] = pm(entry["test_accuracy"], 1, 100)
        rows.append(row)

    claims = check(cost, quick=quick)
    grid = measured["grid"]
    return Result(
        name="kingma_ba_logreg",
        title="Kingma & Ba (2015) §6.1: L2 logistic regression",
        source=SOURCE,
        setup=(
            "Data: MNIST-1D (mnist1d's make_dataset defaults; 4000 training signals, "
            f"standardized). Model: softmax regression 40→10 with L2 = {L2} on the weights, "
            f"zero start for every optimizer. Minibatches of {BATCH} (reshuffled each epoch), "
            f"{measured['epochs']} epochs. Adam (ρ₁ = 0.9, ρ₂ = 0.999) and SGD with Nesterov "
            "momentum (ρ = 0.9) with α_t = α/√t (steplab.schedules.inverse_sqrt_schedule, t = "
            "step); AdaGrad with constant α. α tuned on "
            f"{len(grid)} log-spaced values {grid[0]:.0e}…{grid[-1]:.0e} by the mean final "
            f"training cost over {len(seed_list)} seeds (all seeds run every α). Training "
            "cost: full-data loss with the L2 term, once per epoch."
        ),
        differences=(
            "MNIST-1D (40 features, 4000 examples) instead of MNIST (784 pixels, 60000 "
            "images); 20 epochs instead of the figure's 45. The paper's L2 weight, its "
            f"grids and its Nesterov momentum are not stated: ours are {L2}, the α grid above "
            "and ρ = 0.9 fixed. The paper says the step size is decayed as α/√t without "
            "saying whether AdaGrad got this extra decay; we do not give it (AdaGrad's "
            "α/√(Σg²) already is (α/√t)/√(mean g²))."
        ),
        tables={"Training cost at the tuned step size (mean ± std over seeds)": rows},
        claims=claims,
        expected={c: v for c, v in EXPECTED.items() if c in claims},
        numbers={"cost": cost},
        quick=quick,
        figures=[figure(measured, out)],
    )
