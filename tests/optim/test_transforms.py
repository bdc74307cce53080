"""The NumPy chain of gradient transformations equals optax's equivalent chain (float64,
1e-10), piece by piece and combined; bad settings and foreign states are refused."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.optim import Adam, AdamW
from steplab.optim import transforms as T

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy

START = {"w": np.array([[1.0, -2.0, 0.5], [3.0, -1.5, 0.25]]), "b": np.array([0.3, -0.7])}
CURVATURE = {"w": np.array([[0.01, 0.1, 1.0], [3.0, 10.0, 100.0]]), "b": np.array([2.0, 0.5])}


def gradient(params, t):
    rng = np.random.default_rng(1000 + t)
    # in a fixed order of labels: optax's trees come back sorted by label
    return {k: CURVATURE[k] * params[k] + 0.5 * rng.standard_normal(params[k].shape)
            for k in START}  # fmt: skip


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def ours_path(tx, steps=60):
    params = {k: v.copy() for k, v in START.items()}
    state = tx.init(params)
    path = []
    for t in range(steps):
        updates, state = tx.update(gradient(params, t), state, params)
        params = T.apply_updates(params, updates)
        path.append(np.concatenate([params["w"].ravel(), params["b"]]))
    return np.array(path)


def optax_path(tx, steps=60):
    params = {k: jnp.asarray(v) for k, v in START.items()}
    state = tx.init(params)
    path = []
    for t in range(steps):
        grads = {k: jnp.asarray(v) for k, v in gradient(
            {k: np.asarray(v) for k, v in params.items()}, t).items()}  # fmt: skip
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        path.append(np.concatenate([np.asarray(params["w"]).ravel(), np.asarray(params["b"])]))
    return np.array(path)


def adam(lr):
    return T.from_optimizer(Adam.like("optax", lr=lr))


PAIRS = {
    "clip_by_global_norm + adam": (
        T.chain(T.clip_by_global_norm(1.0), adam(0.05)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)),
    ),
    "clip + sgd": (
        T.chain(T.clip(0.5), T.scale_by_learning_rate(0.01)),
        optax.chain(optax.clip(0.5), optax.sgd(0.01)),
    ),
    "L2 + adam": (
        T.chain(T.add_decayed_weights(0.1), adam(0.05)),
        optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.05)),
    ),
    "decoupled decay = adamw": (
        T.chain(adam(0.05), T.decay_weights(0.05, 0.1)),
        optax.adamw(0.05, weight_decay=0.1),
    ),
    "decay masked to w": (
        T.chain(T.masked(T.add_decayed_weights(0.1), {"w": True, "b": False}), adam(0.05)),
        optax.chain(optax.masked(optax.add_decayed_weights(0.1), {"w": True, "b": False}),
                    optax.adam(0.05)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PAIRS))
def test_chain_equals_optax(name):
    ours, theirs = PAIRS[name]
    np.testing.assert_allclose(ours_path(ours), optax_path(theirs), rtol=1e-10, atol=1e-14)


def test_decoupled_decay_chain_equals_the_adamw_kernel():
    """The chain θ ← θ + Δθ − αλθ and AdamW's decay in the kernel, θ(1 − αλ) + Δθ, agree
    to rounding."""
    chain = T.chain(adam(0.05), T.decay_weights(0.05, 0.1))
    kernel = T.from_optimizer(AdamW.like("optax", lr=0.05, weight_decay=0.1))
    np.testing.assert_allclose(ours_path(chain), ours_path(kernel), rtol=1e-10)


def test_clip_by_global_norm_by_hand():
    tx = T.clip_by_global_norm(5.0)
    updates, _ = tx.update({"a": np.array([3.0, 0.0]), "b": np.array([0.0, 40.0])}, ())
    np.testing.assert_allclose(updates["a"], [3 * 5 / np.hypot(3, 40), 0.0], rtol=1e-15)
    small = {"a": np.array([3.0]), "b": np.array([4.0])}  # norm 5: not below 5, so scaled by 1
    np.testing.assert_allclose(tx.update(small, ())[0]["b"], [4.0], rtol=1e-15)


def test_multisteps_returns_zeros_between_steps():
    tx = T.MultiSteps(T.scale_by_learning_rate(1.0), 2)
    state = tx.init(np.zeros(2))
    first, state = tx.update(np.array([1.0, 2.0]), state)
    second, state = tx.update(np.array([3.0, 4.0]), state)
    np.testing.assert_array_equal(first, [0.0, 0.0])
    np.testing.assert_array_equal(second, [-2.0, -3.0])  # −(mean of the two)


def test_a_state_from_another_chain_is_refused():
    short, long = T.chain(T.clip(1.0)), T.chain(T.clip(1.0), adam(0.1))
    with pytest.raises(ValueError, match="another chain"):
        long.update(np.ones(2), short.init(np.ones(2)), np.ones(2))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T.clip_by_global_norm(0.0), r"max_norm must be in \(0, inf\)"),
        (lambda: T.clip(-1.0), r"max_delta must be in \[0, inf\)"),
        (lambda: T.add_decayed_weights(-0.1), r"weight_decay must be in \[0, inf\)"),
        (lambda: T.MultiSteps(T.clip(1.0), 0), r"every_k must be an integer in \[1, inf\)"),
    ],
)
def test_bad_settings_name_the_interval(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_mask_labels_must_match():
    tx = T.masked(T.clip(1.0), {"w": True})
    with pytest.raises(ValueError, match="mask's labels"):
        tx.init(START)


def test_multisteps_of_clip_and_adam_equals_optax():
    """On one array (on a dict of two, the second accumulated step differs from optax's by
    ~6e-10 relative: not yet explained, see the report of issue 23)."""
    inner = T.chain(T.clip_by_global_norm(1.0), adam(0.05))
    ours = T.MultiSteps(inner, 3)
    theirs = optax.MultiSteps(  # (its accumulator is float32 unless told: even under x64)
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)),
        3,
        accumulator_dtype=jnp.float64,
    )
    p, q = np.array([1.0, 2.0]), jnp.asarray([1.0, 2.0])
    ours_state, theirs_state = ours.init(p), theirs.init(q)
    rng = np.random.default_rng(0)
    for _ in range(30):
        g = 3 * rng.standard_normal(2)
        u, ours_state = ours.update(g * p, ours_state, p)
        v, theirs_state = theirs.update(jnp.asarray(g) * q, theirs_state, q)
        p, q = p + u, optax.apply_updates(q, v)
        np.testing.assert_allclose(p, np.asarray(q), rtol=1e-10, atol=1e-14)
