"""The loop: the seed's update, stopping rules, history, exports, K runs at once, sweeps."""

import csv
import json

import numpy as np
import pytest

import steplab as sl
from steplab.run import STATUSES, MinibatchSampler


def same_history(a, b):
    """Histories equal bit for bit in every column except wall time."""
    assert list(a.keys()) == list(b.keys())
    for name in a.keys():
        if name != "time":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# -- the issue's examples and the seed's loop -------------------------------------------


def test_issue_examples():
    run = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.05), steps=2000)
    assert run.status == "max_steps" and run.steps == 2000
    assert np.allclose(run.x, [1.0, 1.0], atol=1e-3)
    assert len(run.history) == 2001 and run.history["x"].shape == (2001, 2)
    run = sl.minimize(sl.problems.expression("x**2 + 10*y**2"), sl.Adam(lr=0.05), steps=500)
    assert run.final_loss < 1e-4
    p = sl.problems.logistic_regression("breast_cancer")
    run = sl.minimize(p, sl.Adam(), epochs=20, batch_size=32, seed=0)
    assert run.steps == 20 * int(np.ceil(p.n_train / 32)) and run.epochs == 20
    assert run.metrics["test_accuracy"] > 0.9


def test_gradient_descent_by_hand():
    p = sl.problems.quadratic([1.0, 4.0], rotation=0.3)
    run = sl.minimize(p, sl.SGD(lr=0.1), steps=15)
    x = p.x0.copy()
    for t in range(16):
        np.testing.assert_allclose(run.history["x"][t], x, rtol=1e-14)
        assert run.history["loss"][t] == pytest.approx(p.value(x), rel=1e-13)
        assert run.history["grad_norm"][t] == pytest.approx(np.linalg.norm(p.grad(x)), rel=1e-13)
        x = x - 0.1 * p.grad(x)


def test_adagrad_step_sizes_are_recorded_per_coordinate():
    p = sl.problems.quadratic([1.0, 10.0])
    opt = sl.AdaGrad(lr=0.3)
    run = sl.minimize(p, opt, steps=20)
    xs, sizes = run.history["x"], run.history["step_size"]
    assert np.all(np.isnan(sizes[0]))  # no step has produced x_0
    r = np.zeros(2)
    for t in range(1, 21):
        r += (p.A @ xs[t - 1]) ** 2  # the seed: r ← r + g ⊙ g
        np.testing.assert_allclose(sizes[t], 0.3 / (opt.eps + np.sqrt(r)), rtol=1e-12)


def test_full_batch_minibatches_equal_full_gradient_descent():
    p = sl.problems.softmax_regression("iris")
    full = sl.minimize(p, sl.SGD(lr=0.5), steps=30)
    shuffled = sl.minimize(p, sl.SGD(lr=0.5), steps=30, batch_size=p.n_train)
    np.testing.assert_allclose(full.x, shuffled.x, rtol=1e-10, atol=1e-12)


def test_sampler_shuffles_each_epoch_and_is_seeded():
    sampler = MinibatchSampler(10, 4, np.random.default_rng(0))
    epoch = [sampler.next() for _ in range(sampler.steps_per_epoch)]
    assert [len(b) for b in epoch] == [4, 4, 2]
    assert sorted(np.concatenate(epoch)) == list(range(10))
    again = MinibatchSampler(10, 4, np.random.default_rng(0))
    assert all(np.array_equal(a, again.next()) for a in epoch)
    with_replacement = MinibatchSampler(10, 4, np.random.default_rng(0), "replacement")
    draws = np.concatenate([with_replacement.next() for _ in range(50)])
    assert draws.min() >= 0 and draws.max() < 10 and len(np.unique(draws)) == 10


def test_same_seed_same_run_other_seed_other_run():
    p = sl.problems.mlp("iris", hidden=(5,))
    a = sl.minimize(p, sl.Adam(lr=0.01), epochs=3, batch_size=16, seed=4)
    b = sl.minimize(p, sl.Adam(lr=0.01), epochs=3, batch_size=16, seed=4)
    c = sl.minimize(p, sl.Adam(lr=0.01), epochs=3, batch_size=16, seed=5)
    same_history(a.history, b.history)
    assert not np.array_equal(a.history["loss"], c.history["loss"])
    r = sl.minimize(p, sl.Adam(lr=0.01), epochs=3, batch_size=16, seed=4, sampling="replacement")
    assert not np.array_equal(a.history["loss"], r.history["loss"])


# -- K runs at once -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "options"),
    [
        (lambda: sl.problems.get("rosenbrock"), {"steps": 300}),
        (lambda: sl.problems.with_gradient_noise(sl.problems.beale(), 0.3), {"steps": 200}),
        (lambda: sl.problems.get("two_d_branin"), {"epochs": 2, "batch_size": 128}),
        (lambda: sl.problems.mlp("wine", hidden=(6,)), {"epochs": 4, "batch_size": 20}),
        (lambda: sl.problems.quadratic_deep(), {"epochs": 2, "batch_size": 128}),
    ],
)
def test_vectorized_runs_equal_single_runs(problem, options):
    p = problem()
    lrs = np.array([0.003, 0.03, 0.3])
    seeds = [0, 1, 2]
    together = sl.minimize(p, sl.RMSProp(lr=lrs), seed=seeds, **options)
    assert len(together) == 3
    for k in range(3):
        alone = sl.minimize(p, sl.RMSProp(lr=float(lrs[k])), seed=seeds[k], **options)
        same_history(together[k].history, alone.history)
        assert together[k].status == alone.status and together[k].seed == seeds[k]
        np.testing.assert_array_equal(together[k].x, alone.x)
        assert together[k].optimizer["lr"] == lrs[k]


def test_a_diverging_run_does_not_disturb_the_others():
    p = sl.problems.get("rosenbrock")
    lrs = np.array([1e-4, 0.05, 1e-3])  # plain GD with lr 0.05 explodes on Rosenbrock
    runs = sl.minimize(p, sl.SGD(lr=lrs), steps=200)
    assert [r.status for r in runs] == ["max_steps", "diverged", "max_steps"]
    for k in (0, 2):
        same_history(runs[k].history, sl.minimize(p, sl.SGD(lr=lrs[k]), steps=200).history)
    alone = sl.minimize(p, sl.SGD(lr=0.05), steps=200)
    same_history(runs[1].history, alone.history)


def test_seeds_alone_make_k_runs():
    p = sl.problems.with_gradient_noise(sl.problems.rosenbrock(), 1.0)
    runs = sl.minimize(p, sl.Adam(lr=0.01), steps=50, seed=range(4))
    assert [r.seed for r in runs] == [0, 1, 2, 3]
    assert len({r.final_loss for r in runs}) == 4
    table = runs.table()
    assert len(table) == 4 and table[0]["optimizer"] == "adam"


# -- stopping rules -------------------------------------------------------------------


def test_divergence_is_a_status_not_an_exception():
    run = sl.minimize(sl.problems.get("rosenbrock"), sl.SGD(lr=0.05), steps=1000)
    assert run.status == "diverged" and run.steps < 1000
    assert np.all(np.isfinite(run.history["loss"])) and np.all(np.isfinite(run.x))
    np.testing.assert_array_equal(run.x, run.history["x"][-1])  # the last finite point


def test_exploding_loss_counts_as_divergence():
    p = sl.problems.quadratic([1.0, 1.0])
    run = sl.minimize(p, sl.SGD(lr=3.0), steps=500, divergence_threshold=1e6)
    assert run.status == "diverged"
    assert run.history["loss"][-1] > 1e6 and np.all(run.history["loss"][:-1] <= 1e6)


def test_time_budget():
    p = sl.problems.mlp("digits", hidden=(32,))
    run = sl.minimize(p, sl.Adam(), steps=10**6, batch_size=32, time_budget=0.3)
    assert run.status == "time_budget"
    assert 0.3 <= run.history["time"][-1] < 3.0 and run.steps < 10**6  # slack for busy CI
    endless = sl.minimize(sl.problems.get("beale"), sl.Adam(), time_budget=0.2)  # no step limit
    assert endless.status == "time_budget" and endless.config["max_steps"] > 10**9


def test_gradient_tolerance_loss_tolerance_and_target():
    p = sl.problems.quadratic([1.0, 2.0])
    run = sl.minimize(p, sl.SGD(lr=0.3), steps=1000, gtol=1e-6)
    g = run.history["grad_norm"]
    assert run.status == "converged" and g[-1] <= 1e-6 < g[-2]
    run = sl.minimize(p, sl.SGD(lr=0.3), steps=1000, ftol=1e-9, window=5)
    loss = run.history["loss"]
    assert run.status == "converged" and abs(loss[-1] - loss[-6]) <= 1e-9 < abs(loss[-2] - loss[-7])
    run = sl.minimize(p, sl.SGD(lr=0.3), steps=1000, target_loss=1e-3)
    loss = run.history["loss"]
    assert run.status == "target_reached" and loss[-1] <= 1e-3 < loss[-2]
    assert set(STATUSES) == {
        "max_steps",
        "converged",
        "target_reached",
        "time_budget",
        "diverged",
        "interrupted",
    }


def test_record_every_keeps_the_last_row():
    run = sl.minimize(sl.problems.get("beale"), sl.Adam(lr=0.01), steps=95, record_every=10)
    assert run.history["step"].tolist() == [*range(0, 95, 10), 95]


def test_data_problems_record_epochs_and_validation_metrics():
    p = sl.problems.softmax_regression("iris")
    run = sl.minimize(p, sl.Adam(lr=0.05), epochs=3, batch_size=30)
    h = run.history
    per_epoch = int(np.ceil(p.n_train / 30))
    evaluated = ~np.isnan(h["val_accuracy"])
    assert h["step"][evaluated].tolist() == [0, per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert h["epoch"][-1] == 3.0
    assert "step_size_median" in h and "x" not in h  # 15 parameters > record_dim
    assert run.metrics["val_accuracy"] == h["val_accuracy"][-1]


def test_float32_runs_stay_float32():
    run = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.01), steps=10, dtype="float32")
    assert run.x.dtype == np.float32


# -- export -------------------------------------------------------------------------


def test_csv_and_json_export(tmp_path):
    run = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.01), steps=20, seed=3)
    path = run.to_csv(tmp_path / "run.csv")
    lines = path.read_text().splitlines()
    meta = {
        line[2:].split(": ", 1)[0]: json.loads(line.split(": ", 1)[1])
        for line in lines
        if line.startswith("#")
    }
    assert meta["seed"] == 3 and meta["optimizer"]["lr"] == 0.01 and meta["config"]["steps"] == 20
    assert set(meta["versions"]) == {"python", "numpy", "steplab"}
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(rows) == 21
    x0 = np.array([float(r["x_0"]) for r in rows])
    np.testing.assert_array_equal(x0, run.history["x"][:, 0])  # repr round-trips exactly
    data = json.loads(run.to_json(tmp_path / "run.json"))
    assert data["history"]["step_size_0"][0] is None  # NaN becomes null
    assert data["x"] == run.x.tolist() and data["versions"]["numpy"] == np.__version__


# -- sweeps -------------------------------------------------------------------------


def test_sweep_grid_matches_single_runs(tmp_path):
    p = sl.problems.with_gradient_noise(sl.problems.rosenbrock(), 0.5)
    grid = {"adam": {"lr": [1e-3, 1e-2], "rho1": [0.0, 0.9]}, "sgd": {"lr": [1e-4]}}
    table = sl.sweep(p, grid, seeds=range(3), steps=40, chunk_size=5)
    assert len(table) == (4 + 1) * 3
    assert table.column("optimizer").count("adam") == 12
    row = table.where(optimizer="adam", lr=1e-2, rho1=0.0, seed=2)[0]
    alone = sl.minimize(p, sl.Adam(lr=1e-2, rho1=0.0), steps=40, seed=2)
    assert row["final_loss"] == alone.final_loss and row["status"] == alone.status
    out = table.to_csv(tmp_path / "sweep.csv")
    assert out.read_text().splitlines()[0].startswith("problem,optimizer,")
    assert len(sl.run.DEEPOBS_LR_GRID) == 36


# -- bad input ----------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    p = sl.problems.get("rosenbrock")
    with pytest.raises(ValueError, match="batch_size needs a problem with training data"):
        sl.minimize(p, sl.Adam(), steps=5, batch_size=8)
    with pytest.raises(ValueError, match="epochs need"):
        sl.minimize(p, sl.Adam(), epochs=5)
    with pytest.raises(ValueError, match="common length K"):
        sl.minimize(p, sl.Adam(lr=np.array([0.1, 0.2])), steps=5, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="sampling"):
        sl.minimize(sl.problems.softmax_regression("iris"), sl.Adam(), steps=5, sampling="x")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        sl.minimize(p, sl.Adam(), steps=0)
    with pytest.raises(TypeError, match="problem"):
        sl.minimize(42, sl.Adam(), steps=5)
    with pytest.raises(ValueError, match="no hyperparameter 'beta'"):
        sl.sweep(p, {"adam": {"beta": [1]}}, seeds=[0], steps=5)
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        sl.minimize(p, sl.Adam(), steps=5, x0=[1.0, 2.0, 3.0])
    run = sl.minimize("beale", "adam", steps=3)  # names work too
    assert run.steps == 3


def test_progress_bar_only_when_asked(capsys):
    sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(), steps=20)
    assert capsys.readouterr().err == ""
    sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(), steps=20, progress=True)
    assert "steplab" in capsys.readouterr().err
