"""steplab.jax computes its per-step scalars (1 − αλ, 1 − ρᵗ, …) in float64 whatever dtype a
schedule or a traced hyperparameter has (issue 27): with an optax schedule returning float32,
AdamW's and Lion's decoupled weight decay agree with optax's own to float64 precision (they
were 4.5e-7 to 6.8e-7 apart, 1 − αλ rounded to float32); and a vmap sweep over each switch
that a zero turns off (``weight_decay``, RMSProp's ``momentum``) equals the single runs of
the NumPy core (dropping the traced switch fails it)."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import steplab as sl

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _require(name):
    # CI installs optax and jax; there a missing one is a failure, never a silent skip.
    return importlib.import_module(name) if os.environ.get("CI") else pytest.importorskip(name)


jax = _require("jax")
optax = _require("optax")
jnp = _require("jax.numpy")
sj = _require("steplab.jax")

SHAPES = {"w": (3, 4), "b": (5,)}


@pytest.fixture(autouse=True, scope="module")
def float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def _start():
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=s) for k, s in SHAPES.items()}


def _run(tx, steps):
    """``steps`` jitted steps on a noisy quadratic, float64 parameters."""
    params = {k: jnp.asarray(v) for k, v in _start().items()}
    state = tx.init(params)

    @jax.jit
    def step(params, state, k):
        grads = jax.tree.map(lambda p: (1.5 + 0.5 * jnp.cos(k)) * p - 0.3, params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for k in range(steps):
        params, state = step(params, state, float(k))
    return params


def _float32_schedule(count):
    """An optax schedule whose values are float32 (as optax's are without x64, or when
    built from float32 numbers)."""
    return jnp.asarray(optax.cosine_decay_schedule(0.05, 40)(count), jnp.float32)


# steplab's optimizer (optax preset) -> optax's own, both with decoupled weight decay
WITH_DECAY = {
    "adamw": lambda lr: optax.adamw(lr, weight_decay=0.3),
    "lion": lambda lr: optax.lion(lr, weight_decay=0.3),
}


@pytest.mark.parametrize("name", list(WITH_DECAY))
def test_float32_schedule_with_weight_decay_equals_optax_in_float64(name):
    assert _float32_schedule(3).dtype == jnp.float32  # the premise
    ours = _run(sj.make(name, preset="optax", lr=_float32_schedule, weight_decay=0.3), 40)
    theirs = _run(WITH_DECAY[name](_float32_schedule), 40)
    for key in SHAPES:
        assert ours[key].dtype == jnp.float64
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12, atol=1e-14)


def test_float32_traced_learning_rates_give_float64_scalars():
    """A vmap sweep over float32 learning rates: each run equals the NumPy core's with that
    (float32-rounded) rate, in float64."""
    lrs = jnp.asarray([1e-3, 3e-2, 0.1], jnp.float32)

    def run(lr):
        return _run(sj.make("adamw", lr=lr, weight_decay=0.3), 10)

    swept = jax.vmap(run)(lrs)
    for i, lr in enumerate(np.asarray(lrs).tolist()):
        expected = _numpy_run(sl.AdamW(lr=lr, weight_decay=0.3), 10)
        for key in SHAPES:
            np.testing.assert_allclose(swept[key][i], expected[key], rtol=1e-12, atol=1e-14)


def _numpy_run(core, steps):
    thetas = {k: v.copy() for k, v in _start().items()}
    states = {k: core.init(v) for k, v in thetas.items()}
    for k in range(steps):
        for name, theta in thetas.items():
            core.step(theta, (1.5 + 0.5 * np.cos(float(k))) * theta - 0.3, states[name])
    return thetas


# Every registered optimizer's switches that a zero turns off (weight_decay; RMSProp's
# momentum): swept by vmap, the traced value counts as on.
SWITCHES = [
    (name, switch)
    for name, cls in sl.OPTIMIZERS.items()
    for switch in cls.OFF_WHEN_ZERO
    if switch in cls.hyperparameters()
]


@pytest.mark.parametrize(("name", "switch"), SWITCHES)
def test_vmap_sweep_over_a_switch_that_zero_turns_off_equals_single_runs(name, switch):
    # a count of steps (AdEMAMix's warm-up) must reach into the 8 steps to change the run
    values = jnp.asarray([0.0, 3.0, 6.0] if switch.endswith("_steps") else [0.0, 0.05, 0.3])

    def run(value):
        return _run(sj.make(name, lr=0.01, **{switch: value}), 8)

    swept = jax.vmap(run)(values)
    for i, value in enumerate(np.asarray(values).tolist()):
        expected = _numpy_run(sl.OPTIMIZERS[name](lr=0.01, **{switch: value}), 8)
        for key in SHAPES:
            np.testing.assert_allclose(swept[key][i], expected[key], rtol=1e-12, atol=1e-14)
        if value:  # the switch changes the run (else the sweep would test nothing)
            off = _numpy_run(sl.OPTIMIZERS[name](lr=0.01), 8)
            assert not np.allclose(swept["w"][i], off["w"], rtol=1e-9, atol=0)
