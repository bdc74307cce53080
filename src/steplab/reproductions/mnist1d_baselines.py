"""MNIST-1D baselines (Greydanus, 2020), trained with the repository's own recipe.

The mnist1d repository states test accuracies of 32 % (logistic regression) and 68 % (MLP)
in its README table; the notebook that benchmarks these models,
``notebooks/mnist1d-classification.ipynb``, prints 31.5 % and 65.1 % for one run (seed 42).
Its recipe (``notebooks/train.py``, ``notebooks/models.py``), which we follow:

- data: ``mnist1d.data.make_dataset`` with its default arguments (4000 training and 1000
  test signals, not standardized; identical to the repository's ``mnist1d_data.pkl`` to
  9e-16, which we checked once by hand);
- models: ``LinearBase`` (one ``nn.Linear`` 40→10) and ``MLPBase`` (40→100, ReLU; then
  ``h + relu(linear2(h))``, a residual layer 100→100; then 100→10), both with
  ``torch.nn.Linear``'s default initialization U(±1/√fan_in) for weights and biases;
- training: ``torch.optim.Adam`` (lr 1e-2, β = (0.9, 0.999), ε = 1e-8 outside the root, no
  weight decay), cross-entropy, batches of 100 taken in a fixed order (the batch at step
  ``s`` starts at ``(100·s) mod 4000``: no shuffling), steps ``s = 0 … 6000`` (6001
  updates), accuracy measured after the update of every 250th step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steplab.reproductions._common import Result, pm, save_figure, seeds_list
from steplab.reproductions.registry import reproduction

REPO = "github.com/greydanus/mnist1d @ 7878d96 (2024-10-09)"
SOURCE = (
    "S. Greydanus, 'Scaling down Deep Learning' (MNIST-1D), arXiv:2011.14439, 2020; "
    f"{REPO}: README.md line 78 (table), notebooks/models.py (LinearBase, MLPBase), "
    "notebooks/train.py (train_model), notebooks/mnist1d-classification.ipynb (printed runs)"
)
# Test accuracy [%] as published: the README's table (README.md line 78) and the last line
# each model's run prints in notebooks/mnist1d-classification.ipynb, cell 5 (file lines
# 104 and 112: "step 6000, ... test_acc 65.1" and "... test_acc 31.5"), seed 42.
README = {"logistic regression": 32.0, "MLP": 68.0}
NOTEBOOK = {"logistic regression": 31.5, "MLP": 65.1}
NOTEBOOK_TRAIN = {"logistic regression": 37.2, "MLP": 100.0}  # same lines, train_acc
# Points by which our mean may differ from a published single run: 2 × the sample std of
# one run over seeds 0-4 (logistic 0.04, MLP 0.94; `steplab reproduce mnist1d`), plus the
# published number's rounding (notebook 0.05, README table 0.5).
TOLERANCE = {"logistic regression": 0.15, "MLP": 2.0}
README_ROUNDING = 0.5
WIDE = 256  # hidden_size in train.py's get_model_args (the notebook's run used 100)
WIDE_SEEDS = 3

LR, BATCH, STEPS, EVAL_EVERY = 1e-2, 100, 6000, 250  # train.py defaults, notebook's steps


def models(data, width: int = 100) -> dict:
    """``LinearBase`` and ``MLPBase`` of notebooks/models.py, as steplab problems."""
    from steplab import problems

    return {
        "logistic regression": problems.mlp(data, hidden=(), init="torch"),
        "MLP": problems.mlp(data, hidden=(width, width), residual=True, init="torch"),
    }


def train(
    problem,
    seeds,
    *,
    steps: int,
    eval_every: int,
    shuffle: bool = False,
    progress=False,
    optimizer=None,
):
    """train.py's loop for every seed at once (one row per seed): torch's Adam, batches in
    fixed order (or reshuffled every epoch when ``shuffle``, for comparison), accuracies
    after the update of steps 0, ``eval_every``, …, ``steps``."""
    import steplab as sl
    from steplab.run.loop import _progress_bar

    n = problem.n_train
    theta = np.stack([problem.initial_point(seed) for seed in seeds])
    opt = sl.Adam.like("torch", lr=LR) if optimizer is None else optimizer
    state = opt.init(theta)
    order = np.arange(n)
    rng = np.random.default_rng(seeds[0])
    curve: dict[str, list[Any]] = {"step": [], "test_accuracy": [], "train_accuracy": []}
    bar = _progress_bar(steps + 1, progress)
    for step in range(steps + 1):
        start = (step * BATCH) % n
        if shuffle and start == 0:
            order = rng.permutation(n)
        _, grad = problem.value_and_grad(theta, batch=order[start : start + BATCH])
        opt.step(theta, grad, state)
        if step % eval_every == 0 or step == steps:
            curve["step"].append(step)
            curve["test_accuracy"].append(problem.metrics(theta, "test")["accuracy"] * 100)
            curve["train_accuracy"].append(problem.metrics(theta, "train")["accuracy"] * 100)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {k: np.asarray(v) for k, v in curve.items()}


def compute(
    *,
    quick: bool = False,
    seeds=(0, 1, 2, 3, 4),
    progress: bool = False,
    width: int = 100,
    optimizer=None,
) -> dict:
    """Both models with every seed (and, in full runs, the MLP with shuffled batches and
    the MLP of width 256 with the first three seeds). ``width`` and ``optimizer`` (default:
    torch's Adam, lr 0.01) are the setup a test breaks."""
    from steplab.problems import datasets

    data = datasets.load("mnist1d", val_fraction=0.0, standardize=False)
    steps = 600 if quick else STEPS
    eval_every = 100 if quick else EVAL_EVERY
    out: dict[str, Any] = {"steps": steps, "models": {}}
    for name, problem in models(data, width).items():
        out["models"][name] = train(
            problem,
            list(seeds),
            steps=steps,
            eval_every=eval_every,
            progress=progress,
            optimizer=optimizer,
        )
    if not quick:  # what the fixed batch order is worth: the same MLP, reshuffled batches
        out["shuffled"] = train(
            models(data)["MLP"],
            list(seeds),
            steps=steps,
            eval_every=eval_every,
            shuffle=True,
            progress=progress,
        )
        out["wide"] = train(  # the README's 68 %: train.py's default width?
            models(data, WIDE)["MLP"],
            list(seeds)[:WIDE_SEEDS],
            steps=steps,
            eval_every=eval_every,
            progress=progress,
        )
    return out


def figure(measured: dict, out):
    """Test accuracy vs step (mean over seeds, band min..max), with the published values."""
    from steplab.viz import subplots

    fig, axes = subplots(1, 1, width=6.8, height=4.3)
    ax = axes[0, 0]
    colors = {"logistic regression": "#d62728", "MLP": "#2ca02c"}  # as in the notebook
    for name, curve in measured["models"].items():
        acc = curve["test_accuracy"]
        ax.plot(curve["step"], acc.mean(axis=1), color=colors[name], label=f"{name}, steplab")
        ax.fill_between(
            curve["step"], acc.min(axis=1), acc.max(axis=1), color=colors[name], alpha=0.2
        )
        ax.axhline(
            README[name],
            color=colors[name],
            ls="--",
            lw=1.0,
            label=f"{name}, README table ({README[name]:.0f} %)",
        )
        ax.plot(
            [STEPS],
            [NOTEBOOK[name]],
            marker="*",
            ms=13,
            ls="none",
            color=colors[name],
            markeredgecolor="black",
            label=f"{name}, notebook run ({NOTEBOOK[name]} %)",
        )
    ax.set_xlabel("step (batches of 100, fixed order)")
    ax.set_ylabel("test accuracy [%]")
    ax.set_title("MNIST-1D with the repository's recipe: steplab vs Greydanus")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right", ncol=2, fontsize=7.5)  # below the linear model's 32 %
    return save_figure(fig, out, "repro-mnist1d")


README_CLAIM = (
    f"MLP (width 100, the notebook's) within {TOLERANCE['MLP'] + README_ROUNDING:g} points "
    "of the README's 68 %"
)
WIDE_CLAIM = (
    f"MLP of width {WIDE} within {TOLERANCE['MLP'] + README_ROUNDING:g} points of the README's 68 %"
)
# The README's 68 % is refuted for the notebook's width-100 MLP: a pinned verdict.
EXPECTED = {README_CLAIM: False}


def summarize(measured: dict) -> dict:
    """The final test and train accuracies [%] of every seed, per model (JSON-able)."""
    curves = dict(measured["models"])
    curves.update({k: measured[k] for k in ("shuffled", "wide") if k in measured})
    return {
        name: {
            "test": [float(v) for v in c["test_accuracy"][-1]],
            "train": [float(v) for v in c["train_accuracy"][-1]],
        }
        for name, c in curves.items()
    }


def check(numbers: dict, *, quick: bool = False) -> dict[str, bool]:
    """The claims on the final accuracies (:func:`summarize`)."""
    logistic = float(np.mean(numbers["logistic regression"]["test"]))
    mlp_acc = float(np.mean(numbers["MLP"]["test"]))
    if quick:  # 600 steps: the ordering and the linear model's level only
        return {
            "logistic regression's test accuracy lies in 25-40 %": bool(25 <= logistic <= 40),
            "the MLP beats logistic regression": bool(mlp_acc > logistic),
        }
    readme_tol = TOLERANCE["MLP"] + README_ROUNDING
    claims = {
        f"logistic regression within {TOLERANCE['logistic regression']} points of the "
        "notebook's 31.5 %": abs(logistic - NOTEBOOK["logistic regression"])
        <= TOLERANCE["logistic regression"],
        f"MLP within {TOLERANCE['MLP']:g} points of the notebook's 65.1 %": abs(
            mlp_acc - NOTEBOOK["MLP"]
        )
        <= TOLERANCE["MLP"],
        "the MLP fits its training set (100 % train accuracy, as the notebook prints)": bool(
            np.all(np.asarray(numbers["MLP"]["train"]) == 100.0)
        ),
        "the MLP beats logistic regression by more than 20 points": mlp_acc - logistic > 20,
        README_CLAIM: bool(abs(mlp_acc - README["MLP"]) <= readme_tol),
    }
    if "wide" in numbers:
        claims[WIDE_CLAIM] = bool(
            abs(np.mean(numbers["wide"]["test"]) - README["MLP"]) <= readme_tol
        )
    return claims


@reproduction("mnist1d", "MNIST-1D baselines with the repository's recipe", SOURCE)
def run(out, *, quick: bool = False, seeds: int | None = None, progress: bool = False) -> Result:
    seed_list = seeds_list(seeds, 2 if quick else 5)
    measured = compute(quick=quick, seeds=seed_list, progress=progress)
    rows = []
    for name, curve in measured["models"].items():
        test, train_acc = curve["test_accuracy"][-1], curve["train_accuracy"][-1]
        rows.append(
            {
                "model": name,
                "README [%]": f"{README[name]:.0f}",
                "notebook, seed 42 [%]": f"{NOTEBOOK[name]}",
                "steplab test acc [%]": pm(test, 2),
                "steplab train acc [%]": pm(train_acc, 1),
                "notebook train acc [%]": f"{NOTEBOOK_TRAIN[name]}",
                "seeds": ", ".join(map(str, seed_list)),
            }
        )
    if not quick:
        for key, label in (
            ("shuffled", "MLP, batches reshuffled each epoch (not the recipe)"),
            ("wide", f"MLP of width {WIDE} (train.py's hidden_size; not the notebook's run)"),
        ):
            curve = measured[key]
            rows.append(
                {
                    "model": label,
                    "README [%]": "",
                    "notebook, seed 42 [%]": "",
                    "steplab test acc [%]": pm(curve["test_accuracy"][-1], 2),
                    "steplab train acc [%]": pm(curve["train_accuracy"][-1], 1),
                    "notebook train acc [%]": "",
                    "seeds": ", ".join(map(str, seed_list[: len(curve["test_accuracy"][-1])])),
                }
            )
    numbers = summarize(measured)
    claims = check(numbers, quick=quick)
    return Result(
        name="mnist1d",
        title="MNIST-1D baselines with the repository's recipe (Greydanus 2020)",
        source=SOURCE,
        setup=(
            "Data: mnist1d.data.make_dataset defaults (4000 train / 1000 test, not "
            "standardized; equal to the repository's mnist1d_data.pkl to 9e-16). Models: "
            "LinearBase = softmax regression 40→10; MLPBase = 40→100 (ReLU) → residual "
            "100→100 (h + relu(W h + b)) → 10; both initialized like torch.nn.Linear, "
            "U(±1/√fan_in). Training: steplab's Adam.like('torch') (lr 0.01, β₁ 0.9, β₂ "
            "0.999, ε 1e-8 outside the root), batches of 100 in fixed order starting at "
            "(100·step) mod 4000, steps 0…6000 (6001 updates); test accuracy after the last "
            "update, mean ± sample std over the seeds (each seed draws its own init)."
        ),
        differences=(
            "(1) float64 NumPy instead of float32 PyTorch. (2) The initial weights have "
            "torch.nn.Linear's distribution but are drawn by NumPy, one draw per seed "
            "(0…4), so no run starts where the notebook's seed-42 run started. (3) The "
            "published MLP figure is one run in the notebook (65.1 %) and a rounded "
            "number in the README (68 %); the README does not say which run or recipe "
            "gave 68 %. Otherwise the recipe is the repository's."
        ),
        tables={f"Test accuracy on MNIST-1D after {measured['steps'] + 1} updates": rows},
        claims=claims,
        expected={c: v for c, v in EXPECTED.items() if c in claims},
        numbers=numbers,
        quick=quick,
        figures=[figure(measured, out)],
    )
