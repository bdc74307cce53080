"""steplab.jax.matrix: the core's per-tensor rules as optax transformations. NumPy = JAX for
every optimizer and preset (float64, 100 steps of the feedback stream, 1e-10, under jit);
routing and bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from steplab.optim.matrix import Adafactor, Muon

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import steplab.jax.matrix as sjm  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "matrix_stream", Path(__file__).parent / "optim" / "matrix_stream.py"
)
stream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stream)

MATRICES = ("W1", "W2")
CASES = [(cls, preset) for cls in (Muon, Adafactor) for preset in ("seed", "torch", "optax")]


class _Frozen:
    def init(self, theta):
        return None

    def step(self, theta, grad, state):
        return theta


@pytest.mark.parametrize("cls, preset", CASES, ids=lambda c: getattr(c, "name", c))
def test_numpy_equals_jax_for_every_preset(cls, preset):
    lr = 0.01
    names = MATRICES if cls is Muon else tuple(stream.SHAPES)
    numpy = stream.run_numpy(
        {k: cls.like(preset, lr=lr) if k in names else _Frozen() for k in stream.SHAPES}
    )
    labels = {k: "matrix" if k in names else "other" for k in stream.SHAPES}
    tx = optax.partition(
        {"matrix": sjm.make(cls.name, preset, lr=lr), "other": optax.set_to_zero()}, labels
    )
    jaxed = stream.run_optax(tx)
    assert stream.max_difference(numpy, jaxed) < 1e-10
    assert stream.max_difference(jaxed, stream.start()) > 0.01


def test_muon_refuses_a_vector_leaf_and_names_it():
    tx = sjm.make("muon")
    with pytest.raises(ValueError, match=r"leaf \['b'\] has shape \(3,\)"):
        tx.init({"W": jnp.ones((3, 2)), "b": jnp.ones(3)})


def test_routed_default_sends_matrices_to_muon_and_vectors_to_adamw():
    params = {"W": jnp.ones((4, 3)), "b": jnp.ones(3)}
    grads = {"W": jnp.arange(12.0).reshape(4, 3) / 10, "b": jnp.array([0.1, -0.2, 0.3])}
    tx = sjm.routed("muon", lr=0.02)
    updates, _ = tx.update(grads, tx.init(params), params)
    # the bias: AdamW's first step, −α·sign(g)-like, θ decayed by α·λ (steplab's AdamW)
    import steplab as sl

    b = np.ones(3)
    adamw = sl.AdamW()
    adamw.step(b, np.asarray(grads["b"]), adamw.init(b))
    np.testing.assert_allclose(np.asarray(params["b"] + updates["b"]), b, rtol=1e-12)
    W = np.ones((4, 3))
    muon = Muon(lr=0.02)
    muon.step(W, np.asarray(grads["W"]), muon.init(W))
    np.testing.assert_allclose(np.asarray(params["W"] + updates["W"]), W, rtol=1e-12)


def test_update_without_params_is_refused():
    tx = sjm.make("adafactor")
    params = {"W": jnp.ones((3, 2))}
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(params, tx.init(params))


def test_unknown_name_and_array_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="choose one of: .*adafactor, muon, shampoo, soap"):
        sjm.make("shampoo2")
    with pytest.raises(ValueError, match="scalar hyperparameters"):
        sjm.make("muon", lr=[0.1, 0.2])


def test_steplab_jax_make_finds_the_per_tensor_optimizers():
    import steplab.jax as sj

    params = {"w": jnp.ones((4, 3))}
    grads = {"w": jnp.full((4, 3), 0.5)}
    by_name, direct = sj.make("muon", preset="optax"), sjm.make("muon", preset="optax")
    u1, _ = by_name.update(grads, by_name.init(params), params)
    u2, _ = direct.update(grads, direct.init(params), params)
    np.testing.assert_array_equal(u1["w"], u2["w"])
    with pytest.raises(ValueError, match="adam is element-wise"):
        sjm.make("adam")


def test_muon_bfloat16_iteration_runs_in_jax_and_returns_the_parameters_dtype():
    """ns_dtype="bfloat16" on the JAX path: the update comes back in float32 and differs from
    the float32 iteration's by bfloat16's precision (measured 3.4 %; bound 5 %)."""
    import jax.numpy as jnp

    W = jnp.asarray(np.random.default_rng(0).standard_normal((32, 16)), dtype=jnp.float32)
    updates = {}
    for dtype in ("param", "bfloat16"):
        tx = sjm.make("muon", "torch", ns_dtype=dtype)
        updates[dtype], _ = tx.update({"W": W}, tx.init({"W": W}), {"W": W})
    ours, full = updates["bfloat16"]["W"], updates["param"]["W"]
    assert ours.dtype == jnp.float32
    relative = float(jnp.linalg.norm(ours - full) / jnp.linalg.norm(full))
    assert 1e-5 < relative < 5e-2
