"""steplab.jax.modifiers.mars: the core's MARS rule traced by JAX on a pytree (every leaf
concatenated, as the core's θ), equal to the NumPy core (float64, 1e-12) with the
corrected gradient's norm clipped and unclipped, and to pytorch_optimizer 4.1.0's MARS on
one 2-D array (its norm is per tensor: one leaf is where the two agree), 1e-10."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from steplab.jax.modifiers import mars  # noqa: E402
from steplab.optim import MARS, AdamW  # noqa: E402

jnp = jax.numpy
START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25, 0.7])
SPLIT = 4
STEPS = 60


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def gradient(theta, t, scale=1.0):
    return scale * (np.array([0.01, 0.1, 1, 3, 10, 100, 0.5]) * theta + np.sin(3 * t + theta))


def numpy_path(opt, scale=1.0, steps=STEPS):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t, scale), state)
        path.append(theta.copy())
    return np.array(path)


def jax_path(tx, scale=1.0, steps=STEPS):
    params = {"a": jnp.asarray(START[:SPLIT]), "b": jnp.asarray(START[SPLIT:]).reshape(1, 3)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    path = []
    for t in range(steps):
        g = gradient(np.concatenate([params["a"], params["b"].ravel()]), t, scale)
        grads = {"a": jnp.asarray(g[:SPLIT]), "b": jnp.asarray(g[SPLIT:]).reshape(1, 3)}
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        path.append(np.concatenate([params["a"], params["b"].ravel()]))
    return np.array(path), state


@pytest.mark.parametrize("scale", [1.0, 0.01], ids=["clipped", "unclipped"])
def test_equals_the_numpy_core(scale):
    values = {"lr": 0.01, "weight_decay": 0.1}
    reference = numpy_path(MARS(**values), scale)
    ours, state = jax_path(mars(MARS(**values)), scale)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-15)
    assert int(state.t) == STEPS and state.m["b"].shape == (1, 3)
    # the two cases differ where the clip acts: the first is clipped, the second is not
    c = gradient(START, 0, scale)
    assert (np.linalg.norm(c) > 1) == (scale == 1.0)


def test_the_norm_runs_over_every_leaf():
    """One leaf at a time (a norm per leaf) would be another path: the clip is global."""
    values = {"lr": 0.01}
    whole, _ = jax_path(mars(MARS(**values)))
    theta = START.copy()
    parts = [MARS(**values), MARS(**values)]
    states = [parts[0].init(theta[:SPLIT].copy()), parts[1].init(theta[SPLIT:].copy())]
    for t in range(STEPS):
        g = gradient(theta, t)
        a, b = theta[:SPLIT].copy(), theta[SPLIT:].copy()
        parts[0].step(a, g[:SPLIT], states[0])
        parts[1].step(b, g[SPLIT:], states[1])
        theta = np.concatenate([a, b])
    assert not np.allclose(whole[-1], theta, rtol=1e-6)


def test_equals_pytorch_optimizer_on_one_array():
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("pytorch_optimizer")
    start = START[:6].reshape(2, 3)

    def grad_of(theta, t):
        return gradient(np.append(theta.ravel(), 0.0), t)[:6].reshape(2, 3)

    p = torch.tensor(start.copy(), requires_grad=True)
    reference_opt = po.MARS([p], lr=0.01, weight_decay=0.1)
    tx = mars(MARS(lr=0.01, weight_decay=0.1))
    params = jnp.asarray(start)
    state = tx.init(params)
    reference, ours = [], []
    for t in range(STEPS):
        p.grad = torch.tensor(grad_of(p.detach().numpy(), t))
        reference_opt.step()
        reference.append(p.detach().numpy().copy())
        updates, state = tx.update(jnp.asarray(grad_of(np.asarray(params), t)), state, params)
        params = optax.apply_updates(params, updates)
        ours.append(np.asarray(params))
    np.testing.assert_allclose(np.array(ours), np.array(reference), rtol=1e-10, atol=1e-14)


def test_float32_leaves_keep_their_dtype():
    params = {"w": jnp.ones((3,), jnp.float32)}
    tx = mars(MARS())
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.full((3,), 2.0, jnp.float32)}, state, params)
    assert updates["w"].dtype == jnp.float32 and state.m["w"].dtype == jnp.float32
    assert bool(jnp.all(updates["w"] < 0))


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="needs a steplab.optim.MARS"):
        mars(AdamW())
    with pytest.raises(ValueError, match="lr"):
        mars(MARS(lr=-1.0))
    tx = mars(MARS())
    params = jnp.ones(3)
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(params, state)
    with pytest.raises(ValueError, match="not made by mars's init"):
        tx.update(params, optax.adam(1e-3).init(params), params)
    with pytest.raises(TypeError, match="floating-point"):
        tx.init(jnp.ones(3, jnp.int32))
