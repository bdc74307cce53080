"""steplab.jax's Schedule-Free transformations: the NumPy core's steps (1e-12), optax.contrib's
(1e-10, float64), eval_params, jit, pytrees and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy

from optax import contrib  # noqa: E402

from steplab.jax import schedule_free as sjf  # noqa: E402
from steplab.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD  # noqa: E402

CURVATURES = np.array([0.01, 0.1, 1.0, 3.0, 10.0, 100.0])
START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25])


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def gradient(theta, t):
    return CURVATURES * theta + 0.3 * np.random.default_rng(1000 + t).standard_normal(6)


def optax_path(tx, eval_params, steps=100, jit=False):
    params = jnp.asarray(START)
    state = tx.init(params)
    update = jax.jit(tx.update) if jit else tx.update
    path = []
    for t in range(steps):
        updates, state = update(jnp.asarray(gradient(np.asarray(params), t)), state, params)
        params = optax.apply_updates(params, updates)
        path.append(np.asarray(params))
    return np.array(path), np.asarray(eval_params(state, params))


def numpy_path(opt, steps=100):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path), opt.eval_params(theta, state)


def ours_eval(state, params):
    return sjf.eval_params(params, state)


SETTINGS = [
    (ScheduleFreeSGD, sjf.schedule_free_sgd, dict(lr=0.05, rho=0.8, weight_decay=0.1)),
    (
        ScheduleFreeAdamW,
        sjf.schedule_free_adamw,
        dict(lr=0.05, rho2=0.99, weight_decay=0.1, warmup_steps=10, poly_power=1.0),
    ),
]


@pytest.mark.parametrize(("core", "make", "hyper"), SETTINGS)
@pytest.mark.parametrize("jit", [False, True])
def test_equals_the_numpy_core(core, make, hyper, jit):
    path, x = optax_path(make(**hyper), ours_eval, jit=jit)
    numpy, numpy_x = numpy_path(core(**hyper))
    np.testing.assert_allclose(path, numpy, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x, numpy_x, rtol=1e-12, atol=1e-15)


def test_equals_optax_contrib():
    for ours, theirs in [
        (
            sjf.schedule_free_sgd(lr=0.05, rho=0.8, weight_decay=0.1),
            contrib.schedule_free_sgd(0.05, b1=0.8, weight_decay=0.1),
        ),
        (
            sjf.schedule_free_adamw(lr=0.05, rho2=0.99, weight_decay=0.1),
            contrib.schedule_free_adamw(0.05, b2=0.99, weight_decay=0.1),
        ),
    ]:
        path, x = optax_path(ours, ours_eval)
        reference, reference_x = optax_path(theirs, contrib.schedule_free_eval_params)
        np.testing.assert_allclose(path, reference, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(x, reference_x, rtol=1e-10, atol=1e-14)


def test_a_pytree_of_float32_leaves_keeps_its_dtypes():
    tx = sjf.schedule_free_adamw(lr=0.1)
    params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, state = tx.update(grads, state, params)
    assert all(u.dtype == jnp.float32 for u in jax.tree.leaves(updates))
    assert state.moments["z"]["w"].dtype == jnp.float32
    new = optax.apply_updates(params, updates)
    assert float(new["w"][0, 0]) < 1.0
    assert sjf.eval_params(new, state)["b"].dtype == jnp.float32


def test_update_without_params_and_eval_params_of_another_state_raise():
    tx = sjf.schedule_free_sgd()
    state = tx.init(jnp.zeros(2))
    with pytest.raises(ValueError, match="needs params"):
        tx.update(jnp.ones(2), state)
    with pytest.raises(TypeError, match="schedule_free_sgd"):
        sjf.eval_params(jnp.zeros(2), optax.sgd(0.1).init(jnp.zeros(2)))


def test_bad_hyperparameters_name_the_interval():
    with pytest.raises(ValueError, match=r"rho1 must be in \(0, 1\)"):
        sjf.schedule_free_adamw(rho1=1.0)
