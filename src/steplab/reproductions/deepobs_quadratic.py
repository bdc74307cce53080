"""The DeepOBS protocol on ``quadratic_deep`` (Schneider, Balles & Hennig, 2019).

DeepOBS benchmarks an optimizer by (1) tuning its step size on 36 log-spaced values from
1e-5 to 1e2 with one seed, (2) rerunning the best value with 10 seeds, and (3) reporting
the final test loss (mean ± std) and a sensitivity plot: final performance against the
step size. ``quadratic_deep`` is a 100-D noisy quadratic ``½(θ − z)ᵀH(θ − z)`` whose
Hessian has 90 eigenvalues ~ U(0, 1) and 10 ~ U(30, 60) under a random rotation; data
points ``z ~ N(0, 0.6² I)`` make minibatch gradients noisy. Trained with batches of 128
for 100 epochs, from θ₀ = (1, …, 1).

DeepOBS' own data pipeline (``deepobs/tensorflow/datasets/quadratic.py``) batches with
``drop_remainder=True``: an epoch is 7 batches of 128 (the last 104 points are dropped)
and the test loss is the mean over the first 7·128 = 896 test points (the test set is not
shuffled). The training set is shuffled once per run: re-initializing TensorFlow's
iterator every epoch replays the same order, which the baseline files show as a
minibatch loss that repeats with period 7. The baselines' Momentum uses ρ = 0.99 (their
directory names say ``momentum__9.9e-01``), and their Adam is TensorFlow's, which adds
ε = 1e-8 to the uncorrected √v (steplab's ``eps_hat``). We follow all of this.

Two things are known in closed form, which makes this a good check of the whole loop:
the expected test loss is ``½θᵀHθ + ½σ²·tr H`` (its floor ``½σ²·tr H`` is reached at
θ = 0), and gradient descent (momentum ρ) is stable only for ``α·λ_max < 2`` (``2(1 + ρ)``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from steplab.problems import NoisyQuadratic
from steplab.reproductions._common import Result, fmt, mean_std, pm, save_figure
from steplab.reproductions.registry import reproduction

SOURCE = (
    "F. Schneider, L. Balles, P. Hennig, 'DeepOBS: A Deep Learning Optimizer Benchmark "
    "Suite', ICLR 2019 (protocol, quadratic_deep test problem, baselines)"
)
NOISE = 0.6  # DeepOBS' noise level: z ~ N(0, 0.6² I)
BATCH, EPOCHS, N_TRAIN = 128, 100, 1000
TUNING_SEED = 42  # DeepOBS' default random seed
OPTIMIZER_NAMES = ("sgd", "momentum", "adam")
RHO_MOMENTUM = 0.99  # the baselines' MomentumOptimizer: momentum__9.9e-01
STEPS_PER_EPOCH = N_TRAIN // BATCH  # 7: the last incomplete batch is dropped
TEST_POINTS = STEPS_PER_EPOCH * BATCH  # 896: the test loss' first 7 full batches

BASELINES = "github.com/fsschneider/DeepOBS @ 873bbc2, baselines/quadratic_deep/"
# DeepOBS' published runs with the best step size, final entry of "test_losses" (epoch 100)
# in the JSON file named; the 10-seed reruns are seeds 42-51, of which the files quoted
# here are those we could read.
PUBLISHED: dict[str, dict[str, Any]] = {
    "sgd": {
        "lr": 0.015848931925,
        "runs": {46: 87.51817212785993},
        "file": "GradientDescentOptimizer/num_epochs__100__batch_size__128__lr__1.5848931925e-02/"
        "random_seed__46__2019-02-15-16-57-33.json",
    },
    "momentum": {
        "lr": 0.0025118864315,
        "runs": {44: 87.02500479561942},
        "file": "MomentumOptimizer/num_epochs__100__batch_size__128__momentum__9.9e-01__"
        "use_nesterov__False__lr__2.5118864315e-03/random_seed__44__2019-02-15-16-57-33.json",
    },
    "adam": {
        "lr": 0.039810717055,
        "runs": {44: 87.06753322056362, 46: 87.1228256225586},
        "file": "AdamOptimizer/num_epochs__100__batch_size__128__beta1__9.e-01__beta2__9.99e-01"
        "__epsilon__1.e-08__lr__3.9810717055e-02/random_seed__{44,46}__2019-02-15-16-57-33.json",
    },
}
# test_losses[0] in every one of those files: the loss at θ₀ on the 896 test points
PUBLISHED_INITIAL_TEST_LOSS = 353.44676426478793
# How far our mean final test loss (10 seeds) may lie from DeepOBS' run(s): 3 × the sample
# std over our seeds 42-51, measured with `steplab reproduce deepobs_quadratic` (SGD 0.13,
# Momentum 0.02, Adam 0.06): a published run is one draw from the same spread. Smaller
# than the gaps between the optimizers (SGD 87.40 vs Momentum 87.04), so swapping one for
# another, or changing Momentum's ρ, moves a row out of its tolerance (the tests do).
FINAL_TOLERANCE = {"sgd": 0.40, "momentum": 0.06, "adam": 0.18}
DIVERGENCE = 1e8  # a run diverged when its test loss passes 1e8 × its start (as sl.minimize)


class PrecomputedQuadratic(NoisyQuadratic):
    """``quadratic_deep`` with ``H z_i`` computed once for every data point.

    Same loss and gradients as :class:`~steplab.problems.NoisyQuadratic` (the tests check
    it), but a minibatch costs elementwise work only: ``H(θ − z) = Hθ − Hz``. The
    grid of 36 step sizes runs 36 rows at once, so this is what makes the protocol cheap.
    """

    def __post_init__(self):
        super().__post_init__()
        self._HZ = self.data @ self.H  # H symmetric: row i is (H z_i)ᵀ

    def _value_and_grad_rows(self, X, batch, rngs):
        Z = self.data[None] if batch is None else self.data[batch]  # (1 or K, m, d)
        HZ = self._HZ[None] if batch is None else self._HZ[batch]
        HX = X @ self.H.astype(X.dtype)  # (K, d)
        Hd = HX[:, None, :] - HZ  # H(θ − z_i), (K, m, d)
        values = 0.5 * np.mean(np.sum((X[:, None, :] - Z) * Hd, axis=2), axis=1)
        return values, np.mean(Hd, axis=1)


def make_problem() -> PrecomputedQuadratic:
    """DeepOBS' ``quadratic_deep`` from :func:`steplab.problems.quadratic_deep`."""
    from steplab import problems

    original = problems.quadratic_deep(n_train=N_TRAIN, noise_level=NOISE)
    fields = {f.name: getattr(original, f.name) for f in dataclasses.fields(original)}
    return PrecomputedQuadratic(**fields)


def expected_test_loss(problem, theta) -> np.ndarray:
    """E_z[½(θ − z)ᵀH(θ − z)] for fresh z ~ N(0, σ² I): ½θᵀHθ + ½σ²·tr H (rows of θ)."""
    theta = np.atleast_2d(theta)
    quadratic = 0.5 * np.einsum("kd,de,ke->k", theta, problem.H, theta)
    return quadratic + 0.5 * NOISE**2 * np.trace(problem.H)


def sample_loss(problem, theta, Z) -> np.ndarray:
    """(1/n) Σ_i ½(θ − z_i)ᵀH(θ − z_i) over the rows z_i of ``Z``, for each row of θ.

    Expanded as ½θᵀHθ − θᵀH z̄ + ½·mean zᵀHz, so a whole history of θ costs one matrix
    product instead of one per data point (the problem's own ``evaluate`` is the reference).
    """
    theta = np.atleast_2d(theta)
    HZ = Z @ problem.H
    constant = 0.5 * np.mean(np.sum(Z * HZ, axis=1))
    quadratic = 0.5 * np.einsum("kd,de,ke->k", theta, problem.H, theta)
    return quadratic - theta @ HZ.mean(axis=0) + constant


def _optimizer(name, lr):
    import steplab as sl

    if name == "sgd":
        return sl.SGD(lr=lr, nonfinite="propagate")
    if name == "momentum":  # TensorFlow's MomentumOptimizer: b ← ρb + g; θ ← θ − αb
        return sl.Momentum(lr=lr, rho=RHO_MOMENTUM, nonfinite="propagate")
    # TensorFlow's AdamOptimizer: ε added to the uncorrected √v
    return sl.Adam(lr=lr, eps=1e-8, eps_root=0.0, eps_hat=True, nonfinite="propagate")


def batch_orders(seeds) -> np.ndarray:
    """One fixed permutation of the training set per run (rows), replayed every epoch."""
    return np.stack([np.random.default_rng(s).permutation(N_TRAIN) for s in seeds])


def _train(problem, make, name, lr, seeds, epochs, progress):
    """Runs of optimizer ``name`` (one row per entry of ``lr`` and ``seeds``) with DeepOBS'
    batching: 7 batches of 128 per epoch in the run's fixed order. Returns the final and
    per-epoch losses (test: first 896 test points), NaN where a run diverged (its test loss
    became non-finite or exceeded 1e8 times its start, steplab's loop's default rule)."""
    from steplab.run.loop import _progress_bar

    lr = np.atleast_1d(np.asarray(lr, dtype=float))
    orders = batch_orders(seeds)
    K = max(len(lr), len(orders))
    lr, orders = np.broadcast_to(lr, (K,)), np.broadcast_to(orders, (K, N_TRAIN))
    theta = np.tile(problem.x0, (K, 1))
    opt = make(name, lr.copy())
    state = opt.init(theta)
    history = [theta.copy()]
    bar = _progress_bar(epochs, progress)
    with np.errstate(all="ignore"):  # diverging rows overflow: they are reported, not fatal
        for _ in range(epochs):
            for j in range(STEPS_PER_EPOCH):
                _, grad = problem.value_and_grad(
                    theta, batch=orders[:, j * BATCH : (j + 1) * BATCH]
                )
                opt.step(theta, grad, state)
            history.append(theta.copy())
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        path = np.stack(history, axis=1)  # (K, epochs + 1, d)
        test_data = problem.test_data[:TEST_POINTS]
        limit = DIVERGENCE * sample_loss(problem, problem.x0, test_data)[0]
        test_curves = [sample_loss(problem, path[k], test_data) for k in range(K)]
        diverged = np.array([not np.all(c <= limit) for c in test_curves])  # NaN fails too

        def losses(data):
            final = sample_loss(problem, theta, data)
            curves = [sample_loss(problem, path[k], data) for k in range(K)]
            return np.where(diverged, np.nan, final), curves

        final, curves = losses(test_data)
        train, train_curves = losses(problem.data)
        expected = np.where(diverged, np.nan, expected_test_loss(problem, theta))
    return {
        "final": final,
        "train": train,
        "expected": expected,
        "curves": curves,
        "train_curves": train_curves,
    }


def compute(
    *,
    quick: bool = False,
    seeds=range(42, 52),
    progress: bool = False,
    names=OPTIMIZER_NAMES,
    optimizer=None,
    grid=None,
    epochs: int | None = None,
) -> dict:
    """Tune each optimizer on the grid with one seed, rerun the best with ``seeds``.

    The setup is a parameter so that a test can break it and see the claims fail:
    ``names`` picks the optimizers, ``optimizer(name, lr)`` builds one (default: the
    baselines' SGD, Momentum ρ = 0.99 and TensorFlow's Adam), ``grid`` and ``epochs``
    override the protocol's 36 step sizes and 100 epochs (``quick``: 8 and 10).
    """
    from steplab.run import DEEPOBS_LR_GRID

    problem = make_problem()
    if grid is None:
        grid = DEEPOBS_LR_GRID[::5] if quick else DEEPOBS_LR_GRID
    grid = np.asarray(grid, dtype=float)
    if epochs is None:
        epochs = 10 if quick else EPOCHS
    make = _optimizer if optimizer is None else optimizer
    out: dict[str, Any] = {"problem": problem, "grid": grid, "epochs": epochs, "optimizers": {}}
    for name in names:
        tuning = _train(problem, make, name, grid, [TUNING_SEED], epochs, progress)
        best = int(np.nanargmin(tuning["final"]))
        rerun = _train(
            problem, make, name, np.full(len(seeds), grid[best]), list(seeds), epochs, progress
        )
        out["optimizers"][name] = {"tuning": tuning, "best_lr": grid[best], "rerun": rerun}
    out["floor"] = float(0.5 * NOISE**2 * np.trace(problem.H))  # of the expected test loss
    test_data = problem.test_data[:TEST_POINTS]
    z_bar = test_data.mean(axis=0)  # the evaluated test points' own minimizer
    out["test_floor"] = float(sample_loss(problem, z_bar, test_data)[0])
    out["initial_test_loss"] = float(sample_loss(problem, problem.x0, test_data)[0])
    out["lambda_max"] = float(np.linalg.eigvalsh(problem.H).max())
    return out


def check(measured: dict) -> dict[str, bool]:
    """The claims, for the optimizers ``measured`` has; the comparisons with DeepOBS' tuned
    step sizes and final losses only for the full protocol (36 step sizes, 100 epochs)."""
    from steplab.run import DEEPOBS_LR_GRID
    from steplab.viz import pretty

    grid, lam, floor = measured["grid"], measured["lambda_max"], measured["floor"]
    runs = measured["optimizers"]

    def boundary_ok(entry, limit):
        # the last stable grid point is the last one below the theoretical limit
        return _last_stable(grid, entry["tuning"]["final"]) == float(grid[grid < limit][-1])

    rho = RHO_MOMENTUM
    claims = {
        f"the loss at θ₀ on the 896 test points is DeepOBS' {PUBLISHED_INITIAL_TEST_LOSS:.4f} "
        "(float32 there: within 1e-6 relative)": abs(
            measured["initial_test_loss"] / PUBLISHED_INITIAL_TEST_LOSS - 1
        )
        < 1e-6,
    }
    if "sgd" in runs:
        claims[f"SGD is stable exactly up to 2/λmax = {2 / lam:.4f}"] = boundary_ok(
            runs["sgd"], 2 / lam
        )
    if "momentum" in runs:
        claims[
            f"Momentum (ρ={rho}) is stable exactly up to 2(1+ρ)/λmax = {2 * (1 + rho) / lam:.4f}"
        ] = boundary_ok(runs["momentum"], 2 * (1 + rho) / lam)
    if "adam" in runs:
        claims["Adam never diverges on the grid (its steps are bounded by ≈ α)"] = bool(
            np.all(np.isfinite(runs["adam"]["tuning"]["final"]))
        )
    full = measured["epochs"] == EPOCHS and np.array_equal(grid, DEEPOBS_LR_GRID)
    if not full:
        return claims
    for name, entry in runs.items():
        published = PUBLISHED[name]
        label, tol = pretty(name), FINAL_TOLERANCE[name]
        claims[f"{label}: expected test loss within 2 % of ½σ²·tr H"] = bool(
            mean_std(entry["rerun"]["expected"])[0] <= 1.02 * floor
        )
        steps_apart = abs(
            int(np.argmin(abs(np.log(grid / entry["best_lr"]))))
            - int(np.argmin(abs(np.log(grid / published["lr"]))))
        )
        claims[f"{label}: tuned α within one grid step of DeepOBS' {published['lr']:.3g}"] = (
            steps_apart <= 1
        )
        claims[
            f"{label}: mean final test loss within {tol} of DeepOBS' run(s) (3 × our seed std)"
        ] = bool(
            abs(mean_std(entry["rerun"]["final"])[0] - np.mean(list(published["runs"].values())))
            <= tol
        )
    return claims


def figure(measured: dict, out):
    """DeepOBS' two plots: step-size sensitivity, and test/train loss of the tuned reruns."""
    from steplab.viz import color, pretty, subplots

    fig, axes = subplots(1, 3, width=4.6, height=3.8)
    sens, test_ax, train_ax = axes[0]
    for name, entry in measured["optimizers"].items():
        c = color(name)
        sens.plot(
            measured["grid"], entry["tuning"]["final"], "o-", ms=3, color=c, label=pretty(name)
        )
        sens.plot([entry["best_lr"]], [np.nanmin(entry["tuning"]["final"])], "*", ms=12, color=c)
        for ax, key in ((test_ax, "curves"), (train_ax, "train_curves")):
            curves = np.array(entry["rerun"][key], dtype=float)
            epochs = np.arange(curves.shape[1])
            mean, std = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
            label = f"{pretty(name)} (lr={entry['best_lr']:.3g})"
            ax.plot(epochs, mean, color=c, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=c, alpha=0.2)
    for ax in axes[0]:
        if ax is not train_ax:  # the training set has its own, lower minimum
            ax.axhline(
                measured["test_floor"], color="black", ls=":", lw=1, label="test-set minimum"
            )
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    sens.set_xscale("log")
    sens.set_xlabel("step size α (36 log-spaced values)")
    sens.set_ylabel("final test loss (seed 42)")
    sens.set_title("sensitivity (★ best; diverged runs not drawn)")
    test_ax.set_title("test loss, tuned, 10 seeds (mean ± std)")
    train_ax.set_title("train loss, tuned, 10 seeds")
    for ax in (test_ax, train_ax):
        ax.set_xlabel("epoch")
    fig.suptitle("DeepOBS protocol on quadratic_deep")
    fig.tight_layout()
    return save_figure(fig, out, "repro-deepobs-quadratic")


def _last_stable(grid, final):
    """The largest step size whose run did not diverge."""
    finite = np.isfinite(final)
    return float(grid[finite][-1]) if finite.any() else float("nan")


@reproduction(
    "deepobs_quadratic", "DeepOBS protocol on quadratic_deep: SGD, Momentum, Adam", SOURCE
)
def run(out, *, quick: bool = False, seeds: int | None = None, progress: bool = False) -> Result:
    from steplab.reproductions._common import seeds_list
    from steplab.viz import pretty

    seed_list = seeds_list(seeds, 2 if quick else 10, first=TUNING_SEED)
    measured = compute(quick=quick, seeds=seed_list, progress=progress)
    floor, lam, test_floor = measured["floor"], measured["lambda_max"], measured["test_floor"]
    rows, sensitivity = [], []
    for name, entry in measured["optimizers"].items():
        final = entry["rerun"]["final"]
        curves = np.array(entry["rerun"]["curves"])
        within = np.nanmean(curves, axis=0) <= 1.05 * test_floor
        published = PUBLISHED[name]
        rows.append(
            {
                "optimizer": pretty(name),
                "best lr": fmt(entry["best_lr"], 3),
                "DeepOBS best lr": fmt(published["lr"], 3),
                "final test loss": pm(final, 2),
                "DeepOBS final test loss (seed)": ", ".join(
                    f"{v:.2f} ({k})" for k, v in published["runs"].items()
                ),
                "expected test loss": pm(entry["rerun"]["expected"], 2),
                "final train loss (all 1000)": pm(entry["rerun"]["train"], 2),
                "epochs to ≤ 1.05·test minimum": str(int(np.argmax(within)))
                if within.any()
                else "never",
                "diverged on grid": str(int(np.sum(~np.isfinite(entry["tuning"]["final"])))),
            }
        )
        tuned = entry["tuning"]["final"]
        sensitivity.append(
            {
                "optimizer": pretty(name),
                "largest stable lr": fmt(_last_stable(measured["grid"], tuned), 3),
                "lr within 10 % of best": "{:.3g} … {:.3g}".format(
                    *measured["grid"][tuned <= 1.1 * np.nanmin(tuned)][[0, -1]]
                ),
            }
        )
    grid = measured["grid"]
    claims = check(measured)
    return Result(
        name="deepobs_quadratic",
        title="DeepOBS protocol on quadratic_deep",
        source=SOURCE,
        setup=(
            f"steplab.problems.quadratic_deep (n_train = {N_TRAIN}, σ = {NOISE}); batches of "
            f"{BATCH}, {STEPS_PER_EPOCH} per epoch (the last incomplete batch dropped) in one "
            f"fixed order per run, {measured['epochs']} epochs; step size tuned on "
            f"{len(grid)} log-spaced values 1e-5…1e2 with seed {TUNING_SEED} by final test "
            f"loss, then rerun with {len(seed_list)} seeds ({seed_list[0]}…{seed_list[-1]}). "
            f"SGD, Momentum (heavy ball, ρ = {RHO_MOMENTUM}), Adam as TensorFlow's (ρ₁ = 0.9, "
            "ρ₂ = 0.999, ε = 1e-8 added to the uncorrected √v). Test loss: the loss on the "
            f"first {TEST_POINTS} of DeepOBS' 1000 test draws (RandomState(43)), minimum "
            f"{test_floor:.2f}; expected test loss ½θᵀHθ + ½σ²·tr H, floor {floor:.2f}; "
            f"λmax = {lam:.2f}. A run counts as diverged when its test loss becomes "
            "non-finite or exceeds 1e8 × its start."
        ),
        differences=(
            "Float64 NumPy instead of float32 TensorFlow. A seed here draws the run's batch "
            "order with NumPy; DeepOBS' seed sets TensorFlow's, so no run sees DeepOBS' exact "
            "order. DeepOBS' train loss is over a shuffled 896 of the 1000 training points; "
            "ours over all 1000. DeepOBS marks only NaN runs as diverged; we also count runs "
            f"whose loss passed 1e8 × its start. Published numbers: {BASELINES} (the JSON files "
            "named in the module), final entry of test_losses; we could read the files of "
            "a few of the ten seeds only."
        ),
        tables={
            "Tuned and rerun (DeepOBS summary)": rows,
            "Sensitivity to the step size": sensitivity,
        },
        claims=claims,
        quick=quick,
        figures=[figure(measured, out)],
    )
