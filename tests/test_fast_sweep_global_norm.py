"""Sweeps of chains that clip by global norm: each configuration is its own parameter
vector, so the sweep's kernel clips it by the norm of its own gradient, and every
configuration ends bit for bit where the same chain, stepping that configuration alone,
ends: through the NumPy core and through the fused path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from steplab import problems
from steplab.optim import SGD, Adam, AdamW, Momentum
from steplab.optim import transforms as T

pytest.importorskip("numba")

from steplab import fast  # noqa: E402 - after the skip: needs numba
from steplab.fast import _numba  # noqa: E402

K, STEPS = 70, 40  # more than one block of 64 configurations
PROBLEM = problems.get("rosenbrock")
# Rosenbrock's gradient near (-1.2, 1) is ~100 and shrinks as the runs settle: a bound of
# 20 clips the early steps and rests in the late ones (asserted by _alone)
CHAINS = {
    "adam": lambda lr: T.fuse(T.clip_by_global_norm(20.0), Adam(lr=lr)),
    "adamw": lambda lr: T.fuse(T.clip_by_global_norm(20.0), AdamW(lr=lr, weight_decay=0.1)),
    "momentum": lambda lr: T.fuse(T.clip_by_global_norm(20.0), Momentum(lr=lr / 50)),
    "sgd+pieces": lambda lr: T.fuse(
        T.clip_by_global_norm(20.0),
        T.clip(15.0),
        T.add_decayed_weights(0.01),
        SGD(lr=lr / 50),
        T.decay_weights(0.05, 0.1),
    ),  # fmt: skip
}


def _bits(array):
    return np.ascontiguousarray(array, dtype=np.float64).view(np.uint64)


def _starts():
    rng = np.random.default_rng(1)
    return np.array([-1.2, 1.0]) + rng.uniform(-0.5, 0.5, (K, 2))


def _alone(opt, x0, impl, counts=None):
    """One configuration stepped alone by the chain's own step: (final point, losses)."""
    opt = opt.replace(impl=impl, nonfinite="propagate")
    theta = x0.copy()
    state = opt.init(theta)
    losses = [PROBLEM.f(theta[None])[0]]
    for _ in range(STEPS):
        g = PROBLEM.g(theta[None])[0]
        if counts is not None:
            counts[bool(np.linalg.norm(g) >= opt.clip_norm)] += 1
        opt.step(theta, g, state)
        assert state.impl == impl
        losses.append(PROBLEM.f(theta[None])[0])
    return theta, np.array(losses)


def _configuration(opt, k):
    """The chain of configuration k: its own values of the per-configuration settings."""
    return opt.replace(**{n: float(np.reshape(v, -1)[k]) for n in opt.hyperparameters()
                          if np.ndim(v := getattr(opt, n))})  # fmt: skip


@pytest.mark.parametrize("name", list(CHAINS))
def test_each_configuration_is_clipped_by_its_own_norm_bit_for_bit(name):
    opt = CHAINS[name](np.geomspace(1e-3, 0.1, K))
    X0 = _starts()
    x, losses = fast.sweep("rosenbrock", opt, X0, STEPS, history=True)
    counts = {True: 0, False: 0}
    for k in range(0, K, 3):  # every third configuration, both blocks
        for impl in ("numpy", "fused"):
            alone, alone_losses = _alone(_configuration(opt, k), X0[k], impl, counts)
            np.testing.assert_array_equal(_bits(x[k]), _bits(alone), err_msg=f"{impl}, k={k}")
            np.testing.assert_array_equal(_bits(losses[:, k]), _bits(alone_losses))
    assert counts[True] > 20 and counts[False] > 20  # the clip both acted and rested


def test_the_clip_bound_may_differ_per_configuration():
    opt = CHAINS["adam"](0.05).replace(clip_norm=np.geomspace(1.0, 300.0, K))
    X0 = _starts()
    x, _ = fast.sweep("rosenbrock", opt, X0, STEPS)
    for k in (0, 33, 64, 69):
        alone, _ = _alone(_configuration(opt, k), X0[k], "numpy")
        np.testing.assert_array_equal(_bits(x[k]), _bits(alone))
    plain, _ = fast.sweep("rosenbrock", Adam(lr=0.05), X0, STEPS)
    assert not np.array_equal(plain[0], x[0])  # c = 1 clips
    assert np.array_equal(plain[-1], x[-1])  # c = 300 never does


def test_a_norm_over_all_configurations_would_differ():
    """What the kernel must not do: clip every configuration by the norm over all of
    them (the chain's step on the whole (K, 2) array). The test above tells them apart."""
    opt = CHAINS["adam"](0.05)
    X0 = _starts()
    x, _ = fast.sweep("rosenbrock", opt, X0, STEPS)
    X = X0.copy()
    whole = opt.replace(nonfinite="propagate")
    state = whole.init(X)
    for _ in range(STEPS):
        whole.step(X, PROBLEM.g(X), state)  # one norm over every configuration
    assert not np.any(np.all(X == x, axis=1))


def test_the_numpy_sweep_without_numba_clips_per_configuration(monkeypatch):
    opt = CHAINS["adamw"](np.geomspace(1e-3, 0.1, K))
    X0 = _starts()
    x, losses = fast.sweep("rosenbrock", opt, X0, STEPS, history=True)
    monkeypatch.setattr(_numba, "available", lambda: False)
    monkeypatch.setattr(_numba, "UNAVAILABLE_REASON", "switched off by the test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the slow path's one warning
        x_slow, losses_slow = fast.sweep("rosenbrock", opt, X0, STEPS, history=True)
    np.testing.assert_allclose(x_slow, x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(losses_slow, losses, rtol=1e-12, atol=1e-14)


def test_minimize_clips_each_run_by_its_own_norm():
    """sl.minimize runs K configurations as the rows of one array: each is clipped by the
    norm of its own row, so each run ends where it ends alone."""
    import steplab as sl

    lrs = np.geomspace(1e-3, 0.1, 5)
    runs = list(sl.minimize("rosenbrock", CHAINS["adam"](lrs), steps=STEPS))
    for k, run in enumerate(runs):
        alone = sl.minimize("rosenbrock", CHAINS["adam"](float(lrs[k])), steps=STEPS)
        np.testing.assert_array_equal(_bits(run.x), _bits(np.reshape(alone.x, -1)))


def test_sl_sweep_of_a_chain_gives_the_same_rows_on_the_loop_and_the_kernels():
    import steplab as sl

    grid = {CHAINS["adamw"](0.01): {"lr": np.geomspace(1e-3, 0.1, 4), "clip_norm": [1.0, 50.0]}}
    rows = {engine: sl.sweep("rosenbrock", grid, engine=engine, steps=STEPS)
            for engine in ("loop", "fast")}  # fmt: skip
    loop, kernels = ([row["final_loss"] for row in rows[e]] for e in ("loop", "fast"))
    np.testing.assert_array_equal(_bits(loop), _bits(kernels))
    assert len(set(loop)) == 8  # every setting ran, and the bound mattered


@pytest.mark.parametrize("wrapper", ["EMA", "Lookahead"])
def test_minimize_over_seeds_clips_each_run_inside_an_averaging_wrapper(wrapper):
    """K seeds of a stochastic problem are K rows too; an averaging wrapper passes each
    run's norm on to the chain it wraps."""
    import steplab as sl
    from steplab import optim

    opt = getattr(optim, wrapper)(base=T.fuse(T.clip_by_global_norm(5.0), Adam(lr=0.05)))
    runs = list(sl.minimize("two_d_rosenbrock", opt, steps=30, seed=[0, 1, 2]))
    for k, run in enumerate(runs):
        alone = sl.minimize("two_d_rosenbrock", opt, steps=30, seed=k)
        np.testing.assert_array_equal(_bits(run.x), _bits(np.reshape(alone.x, -1)))
