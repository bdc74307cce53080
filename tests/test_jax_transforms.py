"""steplab.jax.transforms: the core's pieces on the JAX path (optax's own where it has them,
a steplab rule through steplab.jax.transformation) equal the NumPy core's chain (float64,
1e-12); settings are checked as the core checks them."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from steplab.jax import transforms as J  # noqa: E402
from steplab.optim import Adam, Nadam  # noqa: E402
from steplab.optim import transforms as core  # noqa: E402

jnp = jax.numpy
START = {"w": np.array([[1.0, -2.0, 0.5], [3.0, -1.5, 0.25]]), "b": np.array([0.3, -0.7])}
CURVATURE = {"w": np.array([[0.01, 0.1, 1.0], [3.0, 10.0, 100.0]]), "b": np.array([2.0, 0.5])}
MASK = {"w": True, "b": False}


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def gradient(params, t):
    rng = np.random.default_rng(1000 + t)
    return {k: CURVATURE[k] * params[k] + 0.5 * rng.standard_normal(params[k].shape) for k in START}


def flat(params):
    return np.concatenate([np.asarray(params["w"]).ravel(), np.asarray(params["b"])])


def path(tx, steps, to_array, apply):
    params = {k: to_array(v) for k, v in START.items()}
    state = tx.init(params)
    out = []
    for t in range(steps):
        grads = gradient({k: np.asarray(v) for k, v in params.items()}, t)
        updates, state = tx.update({k: to_array(v) for k, v in grads.items()}, state, params)
        params = apply(params, updates)
        out.append(flat(params))
    return np.array(out)


def chains(T, adam):
    """The same chains built from the pieces of module T (core or steplab.jax.transforms)."""
    return {
        "clip_by_global_norm + adam": T.chain(T.clip_by_global_norm(1.0), adam(0.05)),
        "clip + sgd": T.chain(T.clip(0.5), T.scale_by_learning_rate(0.01)),
        "L2 + adam": T.chain(T.add_decayed_weights(0.1), adam(0.05)),
        "adam + decoupled decay": T.chain(adam(0.05), T.decay_weights(0.05, 0.1)),
        "decay masked to w": T.chain(T.masked(T.add_decayed_weights(0.1), MASK), adam(0.05)),
        "nadam, scaled": T.chain(T.from_optimizer(Nadam(lr=0.01, weight_decay=0.01)), T.scale(0.5)),
        "accumulate 3": T.MultiSteps(T.chain(T.clip_by_global_norm(1.0), adam(0.05)), 3),
    }


def adam_of(T):
    return lambda lr: T.from_optimizer(Adam.like("optax", lr=lr))


NAMES = list(chains(core, adam_of(core)))


@pytest.mark.parametrize("name", NAMES)
def test_equals_the_numpy_core(name):
    ours = chains(J, adam_of(J))[name]
    reference = chains(core, adam_of(core))[name]
    np.testing.assert_allclose(
        path(ours, 40, jnp.asarray, optax.apply_updates),
        path(reference, 40, np.array, core.apply_updates),
        rtol=1e-12,
        atol=1e-14,  # the parameters are O(1); a coordinate crossing 0 cancels
    )


def test_the_pieces_are_optax_where_optax_has_them():
    params = {k: jnp.asarray(v) for k, v in START.items()}
    grads = {k: jnp.asarray(v) for k, v in gradient(START, 0).items()}
    for ours, theirs in [
        (J.chain(J.clip(0.2), J.scale(0.5)), optax.chain(optax.clip(0.2), optax.scale(0.5))),
        (J.clip_by_global_norm(0.5), optax.clip_by_global_norm(0.5)),
        (J.clip(0.2), optax.clip(0.2)),
        (J.add_decayed_weights(0.1), optax.add_decayed_weights(0.1)),
    ]:
        state = ours.init(params)  # optax's state: the same pytree
        assert jax.tree.structure(state) == jax.tree.structure(theirs.init(params))
        mine = ours.update(grads, state, params)[0]
        reference = theirs.update(grads, theirs.init(params), params)[0]
        for k in grads:
            assert np.asarray(mine[k]).tobytes() == np.asarray(reference[k]).tobytes()


def test_multisteps_accumulates_in_the_parameters_dtype():
    tx = J.MultiSteps(J.scale_by_learning_rate(1.0), 2)
    for dtype in (jnp.float32, jnp.float64):
        p = jnp.ones(3, dtype)
        state = tx.init(p)
        _, state = tx.update(jnp.full(3, 0.1, dtype), state, p)
        assert state.acc_grads.dtype == dtype


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: J.clip_by_global_norm(0.0), r"max_norm must be in \(0, inf\)"),
        (lambda: J.clip(-1.0), r"max_delta must be in \[0, inf\)"),
        (lambda: J.decay_weights(0.1, -1.0), r"weight_decay must be in \[0, inf\)"),
        (lambda: J.MultiSteps(J.clip(1.0), 0), r"every_k must be an integer in \[1, inf\)"),
    ],
)
def test_bad_settings_name_the_interval(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _jax_params(shift=0):
    return {k: jnp.asarray(np.resize(v, (v.shape[0] + shift, *v.shape[1:])))
            for k, v in START.items()}  # fmt: skip


@pytest.mark.parametrize(
    ("foreign", "message"),
    [
        (
            lambda: J.chain(J.clip(1.0), J.from_optimizer(Adam()), J.decay_weights(1e-3, 0.1)),
            "chain of 2 pieces: this state holds 3 states, not 2",
        ),
        (
            lambda: J.chain(J.clip_by_global_norm(1.0), J.from_optimizer(Nadam())),
            r"piece 2's state is .*NadamState.*, but this chain's init makes .*AdamState",
        ),
        (
            lambda: J.chain(J.clip_by_global_norm(1.0), optax.adam(1e-3)),
            r"piece 2's state is .*ScaleByAdamState",
        ),
        (lambda: optax.adam(1e-3), r"piece 1's state is .*ScaleByAdamState"),
    ],  # fmt: skip
    ids=["three pieces", "another optimizer", "optax's adam", "not a chain's"],
)
def test_a_state_from_another_chain_is_named(foreign, message):
    tx = J.chain(J.clip_by_global_norm(1.0), J.from_optimizer(Adam()))
    params = _jax_params()
    with pytest.raises(ValueError, match=message + r".*another chain\? Use this chain's init"):
        tx.update(params, foreign().init(params), params)
    with pytest.raises(ValueError, match="piece 2's state"):  # under jit too
        jax.jit(tx.update)(params, J.chain(J.clip(1.0), J.from_optimizer(Nadam())).init(params))


def test_a_state_for_other_shapes_is_named():
    tx = J.chain(J.clip(1.0), J.from_optimizer(Adam()))
    params = _jax_params()
    wider = tx.init(_jax_params(shift=1))
    with pytest.raises(ValueError, match=r"piece 2's state at \['b'\]\.s has shape \(3,\), but "
                                         r"this chain's init makes \(2,\)"):  # fmt: skip
        tx.update(params, wider, params)
    updates, _ = tx.update(params, tx.init(params), params)  # its own state passes
    assert updates["b"].shape == (2,)
