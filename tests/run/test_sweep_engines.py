"""sl.sweep's compiled engine (steplab.fast) gives the rows of the loop engine."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import steplab as sl

fast = pytest.importorskip("steplab.fast")
if not fast.available():  # pragma: no cover - numba is in the test extras
    pytest.skip("numba is not installed", allow_module_level=True)

# Stable and diverging settings (SGD with α ≥ 1e-2 explodes on Rosenbrock), no chaotic ones:
# there the two engines' rounding differences (a few ulps per step) would grow.
GRID = {
    "sgd": {"lr": np.logspace(-5, 0, 6)},
    "adam": {"lr": [1e-3, 1e-2, 1e-1]},
    "rmsprop": {"lr": [1e-3, 1e-2], "rho": [0.5, 0.9]},
}


@pytest.mark.parametrize("problem", ["rosenbrock", "beale", "saddle"])
def test_fast_engine_rows_equal_loop_rows(problem):
    fast_rows = sl.sweep(problem, GRID, seeds=[0, 1], steps=300, engine="fast")
    loop_rows = sl.sweep(problem, GRID, seeds=[0, 1], steps=300, engine="loop")
    assert len(fast_rows) == len(loop_rows) == 2 * (6 + 3 + 4)
    if problem == "rosenbrock":  # the divergence rule must agree too
        assert any(row["status"] == "diverged" for row in loop_rows)
    for ours, theirs in zip(fast_rows, loop_rows, strict=True):
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            if key == "time":
                continue
            if isinstance(value, float):
                # RMSProp near a minimum hops around it (its steps do not shrink to 0),
                # which amplifies ulp-level differences: hence atol on tiny losses.
                np.testing.assert_allclose(ours[key], value, rtol=1e-7, atol=1e-6, err_msg=key)
            else:
                assert ours[key] == value, key


def test_fast_engine_keeps_the_functions_parameters():
    problem = sl.problems.rosenbrock(a=2.0, b=10.0)
    fast_rows = sl.sweep(
        problem, {"adam": {"lr": [0.01, 0.1]}}, seeds=[0], steps=200, engine="fast"
    )
    loop_rows = sl.sweep(
        problem, {"adam": {"lr": [0.01, 0.1]}}, seeds=[0], steps=200, engine="loop"
    )
    for ours, theirs in zip(fast_rows, loop_rows, strict=True):
        np.testing.assert_allclose(ours["final_loss"], theirs["final_loss"], rtol=1e-9)


def test_fast_engine_refuses_what_it_cannot_run():
    noisy = sl.problems.with_gradient_noise(sl.problems.get("rosenbrock"), 0.1)
    with pytest.raises(ValueError, match="engine='fast' needs a 2-D catalogue test function"):
        sl.sweep(noisy, {"adam": {"lr": [0.1]}}, seeds=[0], steps=10, engine="fast")
    with pytest.raises(ValueError, match="engine='fast' needs"):
        sl.sweep(
            "rosenbrock", {"adam": {"lr": [0.1]}}, seeds=[0], steps=10, gtol=1e-3, engine="fast"
        )
    with pytest.raises(ValueError, match="engine must be one of auto, fast, loop"):
        sl.sweep("rosenbrock", {"adam": {"lr": [0.1]}}, engine="numba")


def test_fast_trials_store_the_loops_loss_curves(tmp_path):
    """engine="fast" trials keep curves too: the loss at the steps the loop records (every
    record_every steps and the last, diverged runs included), without per-step time."""
    from steplab.run import store as stores

    grid = {"sgd": {"lr": np.logspace(-5, 0, 6)}, "adam": {"lr": [1e-3, 1e-1]}}
    options = {"seeds": [0, 1], "steps": 50, "record_every": 7}
    for engine in ("fast", "loop"):
        sl.sweep("rosenbrock", grid, engine=engine, store=tmp_path / f"{engine}.sqlite", **options)
    fast_curves = stores.curves(tmp_path / "fast.sqlite")
    loop_curves = stores.curves(tmp_path / "loop.sqlite")
    rows = stores.read(tmp_path / "fast.sqlite")
    assert {row["status"] for row in rows} == {"max_steps", "diverged"}
    for ours, theirs in zip(fast_curves, loop_curves, strict=True):
        assert set(ours) == {"step", "loss"} and set(theirs) == {"step", "loss", "time"}
        np.testing.assert_array_equal(ours["step"], theirs["step"])
        np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)


def test_an_optimizer_judged_at_its_evaluation_point_is_swept_in_the_loop(monkeypatch):
    # Schedule-Free is judged at x, not at y where gradients are taken; the compiled kernels
    # record losses at y, so auto must pick the loop even at a size that would compile.
    sweep_module = sys.modules[sl.sweep.__module__]  # steplab.run.sweep is also the function
    monkeypatch.setattr(sweep_module, "_FAST_MIN_WORK", 1)
    grid = {"schedule_free_sgd": {"lr": [0.01, 0.1]}}
    auto = sl.sweep("rosenbrock", grid, seeds=[0], steps=50)
    loop = sl.sweep("rosenbrock", grid, seeds=[0], steps=50, engine="loop")
    assert [row["final_loss"] for row in auto] == [row["final_loss"] for row in loop]
    opt = sl.make("schedule_free_sgd", lr=0.1)
    run = sl.minimize("rosenbrock", opt, steps=50, seed=0)
    assert loop[1]["final_loss"] == pytest.approx(run.final_loss, rel=1e-12)
    with pytest.raises(ValueError, match="judged at its evaluation point"):
        sl.sweep("rosenbrock", grid, seeds=[0], steps=50, engine="fast")
