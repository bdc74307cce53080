"""steplab.jax.modifiers: cautious equals the NumPy core's Cautious (float64, 1e-12) on a
dict of two arrays (one mask over every leaf, as the core's θ concatenates them); prodigy
(optax.contrib.prodigy) equals the core's Prodigy with bias correction (1e-7: see
docs/modern.md on Prodigy's cancellation)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from steplab.jax.modifiers import cautious, prodigy  # noqa: E402
from steplab.optim import Adam, AdamW, Cautious, Lion, Prodigy  # noqa: E402

jnp = jax.numpy
START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25, 0.7])
SPLIT = 4


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def gradient(theta, t):
    return np.array([0.01, 0.1, 1, 3, 10, 100, 0.5]) * theta + np.sin(3 * t + theta)


def numpy_path(opt, steps=40):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path)


def jax_path(tx, steps=40):
    params = {"a": jnp.asarray(START[:SPLIT]), "b": jnp.asarray(START[SPLIT:])}
    state = tx.init(params)
    update = jax.jit(tx.update)
    path = []
    for t in range(steps):
        g = gradient(np.concatenate([params["a"], params["b"]]), t)
        grads = {"a": jnp.asarray(g[:SPLIT]), "b": jnp.asarray(g[SPLIT:])}
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        path.append(np.concatenate([params["a"], params["b"]]))
    return np.array(path)


@pytest.mark.parametrize(
    "base",
    [
        AdamW(lr=0.05, weight_decay=0.1),
        Adam(lr=0.05, weight_decay=0.1),
        Lion(lr=0.01, weight_decay=0.1),
    ],  # fmt: skip
    ids=["adamw", "adam-l2", "lion"],
)
def test_equals_the_numpy_core(base):
    reference = numpy_path(Cautious(base=base))
    np.testing.assert_allclose(jax_path(cautious(Cautious(base=base))), reference,
                               rtol=1e-12, atol=1e-14)  # fmt: skip
    assert not np.allclose(reference, numpy_path(base))  # the mask changed the path


def test_a_schedule_is_refused():
    from steplab.optim.schedules import CosineDecay

    with pytest.raises(ValueError, match="lr must be a number"):
        cautious(AdamW(lr=CosineDecay(0.1, 10)))


def test_prodigy_equals_the_numpy_core_with_bias_correction():
    core = Prodigy(weight_decay=0.1, bias_correction=True, d_coef=2.0)
    np.testing.assert_allclose(jax_path(prodigy(core)), numpy_path(core), rtol=1e-7, atol=1e-12)


def test_prodigy_without_bias_correction_is_refused():
    with pytest.raises(ValueError, match="bias_correction=True"):
        prodigy(Prodigy())
