"""steplab.jax's ema equals the NumPy core's EMA around the same optimizer (float64)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from steplab.jax.averaging import averaged, ema, lookahead  # noqa: E402
from steplab.optim import SGD  # noqa: E402
from steplab.optim.averaging import EMA  # noqa: E402


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("debias", [True, False])
def test_ema_equals_the_numpy_core(debias):
    start = np.array([1.0, -2.0, 3.0])

    def gradient(theta, t):
        return np.array([0.1, 1.0, 10.0]) * theta + np.cos(t)

    tx = jax.jit(ema(optax.sgd(0.05), decay=0.8, debias=debias).update)
    init = ema(optax.sgd(0.05), decay=0.8, debias=debias).init
    params = jax.numpy.asarray(start)
    state = init(params)
    ours = EMA(base=SGD(lr=0.05), decay=0.8, debias=debias)
    theta = start.copy()
    numpy_state = ours.init(theta)
    for t in range(30):
        updates, state = tx(jax.numpy.asarray(gradient(np.asarray(params), t)), state, params)
        params = optax.apply_updates(params, updates)
        ours.step(theta, gradient(theta, t), numpy_state)
    np.testing.assert_allclose(np.asarray(params), theta, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(averaged(state)), ours.averaged(numpy_state),
                               rtol=1e-12)  # fmt: skip


def test_bad_settings_and_states_raise():
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        ema(optax.sgd(0.1), decay=1.5)
    with pytest.raises(ValueError, match=r"sync_period must be in \[1, inf\)"):
        lookahead(optax.sgd(0.1), sync_period=0)
    with pytest.raises(TypeError, match="state of steplab.jax's ema"):
        averaged(optax.sgd(0.1).init(jax.numpy.zeros(2)))
