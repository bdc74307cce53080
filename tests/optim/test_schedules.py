"""Learning-rate schedules: hand-derived values, optax's schedules, and optimizers using them."""

from __future__ import annotations

import importlib
import json
import math
import os

import numpy as np
import pytest

import steplab as sl
from steplab import schedules

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _require(name):
    # CI installs optax and jax; there a missing one is a failure, never a silent skip.
    return importlib.import_module(name) if os.environ.get("CI") else pytest.importorskip(name)


def test_hand_derived_values():
    assert schedules.constant_schedule(0.1)(7) == 0.1
    inv = schedules.inverse_sqrt_schedule(0.2)
    assert inv(1) == 0.2 and inv(4) == 0.1 and inv(100) == pytest.approx(0.02, rel=1e-15)
    exp = schedules.exponential_decay(1.0, transition_steps=10, decay_rate=0.5)
    assert exp(1) == 1.0 and exp(11) == 0.5 and exp(21) == 0.25
    assert exp(6) == pytest.approx(0.5**0.5, rel=1e-15)
    stair = schedules.exponential_decay(1.0, transition_steps=10, decay_rate=0.5, staircase=True)
    assert [stair(t) for t in (1, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    cos = schedules.cosine_decay_schedule(2.0, decay_steps=100, alpha=0.1)
    assert cos(1) == 2.0  # t − 1 = 0: no decay yet
    assert cos(51) == pytest.approx(2.0 * (0.9 * 0.5 + 0.1), rel=1e-15)  # halfway: cos = 0
    assert cos(101) == pytest.approx(0.2, rel=1e-15) and cos(500) == cos(101)
    warm = schedules.linear_warmup(1.0, warmup_steps=4)
    assert [warm(t) for t in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    lin = schedules.linear_schedule(1.0, 0.5, transition_steps=5)
    assert lin(1) == 1.0 and lin(6) == 0.5 and lin(100) == 0.5 and lin(3) == 0.8
    wcd = schedules.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=110)
    assert wcd(1) == 0.0 and wcd(6) == 0.5 and wcd(11) == 1.0
    assert wcd(61) == pytest.approx(0.5, rel=1e-15) and wcd(111) == pytest.approx(0.0, abs=1e-16)


@pytest.fixture
def float64():
    jax = _require("jax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def test_against_optax(float64):
    optax = _require("optax")
    pairs = [
        (schedules.constant_schedule(0.3), optax.constant_schedule(0.3)),
        (
            schedules.exponential_decay(0.1, transition_steps=7, decay_rate=0.8),
            optax.exponential_decay(0.1, transition_steps=7, decay_rate=0.8),
        ),
        (
            schedules.exponential_decay(0.1, transition_steps=7, decay_rate=0.8, staircase=True),
            optax.exponential_decay(0.1, transition_steps=7, decay_rate=0.8, staircase=True),
        ),
        (
            schedules.cosine_decay_schedule(0.1, 50, alpha=0.05),
            optax.cosine_decay_schedule(0.1, 50, alpha=0.05),
        ),
        (schedules.linear_schedule(0.1, 0.02, 30), optax.linear_schedule(0.1, 0.02, 30)),
        (schedules.linear_warmup(0.1, 8), optax.linear_schedule(0.1 / 8, 0.1, 7)),
        (
            schedules.warmup_cosine_decay_schedule(0.001, 0.1, 10, 60, end_value=0.01),
            optax.warmup_cosine_decay_schedule(0.001, 0.1, 10, 60, end_value=0.01),
        ),
    ]
    for ours, theirs in pairs:
        t = np.arange(1, 80)
        # optax counts the updates done (0 for the first), steplab the step computed (1)
        expected = np.array([float(theirs(c)) for c in t - 1])
        got = np.array([ours(int(k)) for k in t])
        np.testing.assert_allclose(got, expected, rtol=1e-14, err_msg=repr(ours))


def test_adam_with_a_schedule_matches_optax(stream, float64):
    jax = _require("jax")
    optax = _require("optax")
    jnp = jax.numpy
    if True:
        ours = sl.Adam.like("optax", lr=schedules.cosine_decay_schedule(0.05, 60, alpha=0.1))
        transform = optax.adam(optax.cosine_decay_schedule(0.05, 60, alpha=0.1))
        params = jnp.asarray(stream.start)
        state = transform.init(params)
        path = []
        for t in range(80):
            grad = jnp.asarray(stream.gradient(np.asarray(params), t))
            updates, state = transform.update(grad, state, params)
            params = optax.apply_updates(params, updates)
            path.append(np.asarray(params))
    np.testing.assert_allclose(stream.run(ours, 80), np.array(path), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "nadam", "lion"])
def test_schedule_equals_changing_the_constant_lr(name, stream):
    """With a schedule, step t uses exactly the lr a fresh optimizer with lr=schedule(t) uses."""
    schedule = schedules.exponential_decay(0.05, transition_steps=3, decay_rate=0.7)
    scheduled = sl.make(name, lr=schedule)
    theta, theta_ref = stream.start.copy(), stream.start.copy()
    state, state_ref = scheduled.init(theta), sl.make(name, lr=0.05).init(theta_ref)
    for t in range(1, 12):
        g = stream.gradient(theta, t)
        scheduled.step(theta, g, state)
        sl.make(name, lr=schedule(t)).step(theta_ref, g, state_ref)
        np.testing.assert_array_equal(theta, theta_ref)
    np.testing.assert_array_equal(
        scheduled.step_size(state), sl.make(name, lr=schedule(11)).step_size(state_ref)
    )


def test_config_round_trip_and_repr():
    schedule = schedules.warmup_cosine_decay_schedule(0.0, 1.0, 5, 50, end_value=0.1)
    config = json.loads(json.dumps(schedule.config()))
    assert schedules.from_config(config) == schedule
    assert repr(schedule).startswith("warmup_cosine_decay_schedule(init_value=0.0")
    opt = sl.Adam(lr=schedule)
    assert json.loads(json.dumps(opt.config()))["lr"] == config
    with pytest.raises(ValueError, match="must be one of"):
        schedules.from_config({"schedule": "nope"})


def test_bad_input():
    with pytest.raises(ValueError, match="decay_steps must be an integer >= 1"):
        schedules.cosine_decay_schedule(0.1, 0)
    with pytest.raises(ValueError, match="init_value must be a finite number"):
        schedules.inverse_sqrt_schedule(math.nan)
    with pytest.raises(ValueError, match="t = 1, 2"):
        schedules.constant_schedule(0.1)(0)
    with pytest.raises(TypeError):
        schedules.exponential_decay(0.1, 10, 0.5)  # keyword-only: no silent swap
    # a schedule reaching 0 is caught at the step that would use it, naming t
    opt = sl.Adam(lr=schedules.warmup_cosine_decay_schedule(0.0, 0.1, 3, 10))
    theta = np.ones(3)
    state = opt.init(theta)
    with pytest.raises(ValueError, match="t=1"):
        opt.step(theta, np.ones(3), state)
    np.testing.assert_array_equal(theta, np.ones(3))  # nothing changed
    assert state.t == 0
    with pytest.raises(ValueError, match="lr must be"):
        sl.Adam(lr="fast")


def test_minimize_and_sweep_take_a_schedule():
    problem = sl.problems.get("rosenbrock")
    schedule = schedules.inverse_sqrt_schedule(0.05)
    run = sl.minimize(problem, sl.Adam(lr=schedule), steps=30)
    many = sl.minimize(problem, sl.Adam(lr=schedule), steps=30, seed=[0, 1, 2])
    assert np.isfinite(run.final_loss) and len(many) == 3
    assert many[0].final_loss == run.final_loss  # seed 0 alone and among others: same run
    for engine in ("loop", "fast"):
        table = sl.sweep(
            problem,
            {sl.Adam(lr=schedule): {"rho1": [0.8, 0.9]}},
            seeds=[0, 1],
            steps=30,
            engine=engine,
        )
        assert len(table) == 4
