"""SOAP against pytorch_optimizer's SOAP (the authors' algorithm) over 100 float64 steps of the
feedback stream with square weights, and NumPy = torch = JAX.

Why square weights: SOAP runs Adam in the eigenbasis of L = Σ G·Gᵀ. For an m×n gradient with
m > n the first L has a null space of dimension m − n, whose eigenvectors LAPACK may return in
any orthonormal basis, and Adam's per-coordinate normalization is not invariant to that choice:
two correct implementations then differ at O(1). With 5×5 weights and full-rank gradients
every eigenvalue is simple, and only signs are free, to which SOAP is invariant (a column of Q
and the matching row of the rotated moments flip together).

Tolerances: until the first basis refresh the two agree to 1e-10 (eigh against eigh). The
refresh (every k steps) takes a QR decomposition, which pytorch_optimizer (like the authors)
computes in float32 whatever the dtype; steplab keeps the dtype. From there the difference is
float32's rounding of Q (~6e-8 relative), measured 1.2e-6 on the weights after 100 steps with
k = 10: 1e-5 is asserted.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from steplab.optim.adam import AdamW
from steplab.optim.matrix import SOAP

_spec = importlib.util.spec_from_file_location(
    "matrix_stream_soap", Path(__file__).with_name("matrix_stream.py")
)
stream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stream)
stream.SHAPES = {"W1": (5, 5), "b1": (5,), "W2": (5, 5), "b2": (5,)}  # square: see above
stream.Y = np.random.default_rng(3).standard_normal((16, 5))

MATRICES = ("W1", "W2")


def _numpy(opt, steps=stream.STEPS):
    return stream.run_numpy(
        {k: opt if k in MATRICES else AdamW.like("torch", lr=0.01) for k in stream.SHAPES}, steps
    )


@pytest.mark.parametrize("every, tol", [(1000, 1e-10), (10, 1e-5)], ids=["no-refresh", "k=10"])
def test_soap_equals_pytorch_optimizer_soap(every, tol):
    torch = pytest.importorskip("torch")
    reference_cls = pytest.importorskip("pytorch_optimizer").SOAP
    import steplab.torch.matrix as stm

    def build(cls, **options):
        def make(p):
            return [
                cls([p[k] for k in MATRICES], lr=0.01, **options),
                torch.optim.AdamW([p["b1"], p["b2"]], lr=0.01),
            ]

        return make

    reference = stream.run_torch(build(reference_cls, precondition_frequency=every))
    numpy = _numpy(SOAP.like("pytorch_optimizer", lr=0.01, every=every))
    assert stream.max_difference(numpy, reference) < tol
    ours = stream.run_torch(build(stm.SOAP, every=every))
    assert stream.max_difference(ours, numpy) < 1e-10  # the same rule, both in float64
    assert stream.max_difference(reference, stream.start()) > 0.5


@pytest.mark.parametrize("every, tol", [(1000, 1e-8), (10, 1e-5)], ids=["no-refresh", "k=10"])
def test_soap_over_every_parameter_equals_pytorch_optimizer_soap(every, tol):
    """vectors="adam": the biases too, as the references take them (precondition_1d=False).

    This stream's first eigenbases are worse conditioned than the one above (the biases move
    differently): NumPy's and torch's eigh already differ by 1.1e-10 on the weights after the
    first step and 2.1e-9 after 100 steps without a refresh (the biases by 2e-16 after two
    steps, 4.6e-10 after 100, fed by the weights; measured with this test's two runs at
    1, 2 and 100 steps): 1e-8 is asserted."""
    pytest.importorskip("torch")
    reference_cls = pytest.importorskip("pytorch_optimizer").SOAP
    import steplab.torch.matrix as stm

    opt = SOAP.like("pytorch_optimizer", lr=0.01, every=every, vectors="adam")
    reference = stream.run_torch(
        lambda p: [reference_cls(list(p.values()), lr=0.01, precondition_frequency=every)]
    )
    numpy = stream.run_numpy(dict.fromkeys(stream.SHAPES, opt))
    assert stream.max_difference(numpy, reference) < tol
    ours = stream.run_torch(lambda p: [stm.SOAP(list(p.values()), lr=0.01, every=every,
                                                vectors="adam")])  # fmt: skip
    assert stream.max_difference(ours, numpy) < 1e-8  # torch's eigh against NumPy's: as above
    routed = _numpy(SOAP.like("pytorch_optimizer", lr=0.01, every=every))  # biases: AdamW
    assert stream.max_difference(routed, numpy) > 1e-3  # not what AdamW does to them


def test_numpy_equals_jax_over_every_parameter():
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    import jax

    jax.config.update("jax_enable_x64", True)
    import steplab.jax.matrix as sjm

    opt = SOAP(lr=0.01, every=7, vectors="adam")
    numpy = stream.run_numpy(dict.fromkeys(stream.SHAPES, opt))
    # XLA's eigh against NumPy's on the stream above: measured 1.0e-9
    assert stream.max_difference(numpy, stream.run_optax(sjm.transformation(opt))) < 1e-8


def test_numpy_equals_jax():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jax.config.update("jax_enable_x64", True)
    import steplab.jax as sj
    import steplab.jax.matrix as sjm

    opt = SOAP(lr=0.01, every=7)
    labels = {k: "matrix" if k in MATRICES else "other" for k in stream.SHAPES}
    tx = optax.partition(
        {"matrix": sjm.transformation(opt), "other": sj.make("adamw", "torch", lr=0.01)}, labels
    )
    assert stream.max_difference(_numpy(opt), stream.run_optax(tx)) < 1e-10


def test_the_first_step_only_builds_the_basis():
    rng = np.random.default_rng(0)
    W, G = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    before = W.copy()
    opt = SOAP()
    state = opt.init(W)
    opt.step(W, G, state)
    np.testing.assert_array_equal(W, before)
    np.testing.assert_allclose(state.L, 0.05 * G @ G.T, rtol=1e-14)
    eigenvalues = np.diag(state.Q_L.T @ state.L @ state.Q_L)
    assert np.all(np.diff(eigenvalues) <= 1e-15)  # columns by descending eigenvalue
    opt.step(W, G, state)
    assert not np.array_equal(W, before)


def test_k_configurations_are_k_single_runs_bit_for_bit():
    rng = np.random.default_rng(1)
    W0, grads = rng.standard_normal((4, 3)), rng.standard_normal((25, 4, 3))
    lrs = [0.01, 0.1]
    batch = np.repeat(W0[None], 2, axis=0)
    opt = SOAP(lr=lrs, every=5)
    state = opt.init(batch)
    for G in grads:
        opt.step(batch, np.repeat(G[None], 2, axis=0), state)
    for k, lr in enumerate(lrs):
        W = W0.copy()
        single = SOAP(lr=lr, every=5)
        s = single.init(W)
        for G in grads:
            single.step(W, G, s)
        np.testing.assert_array_equal(batch[k], W)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="max_dim=10000"):
        SOAP().init(np.zeros((10001, 2)))
    with pytest.raises(ValueError, match="takes 2-D weight matrices only"):
        SOAP().init(np.zeros(3))
    with pytest.raises(ValueError, match="takes 2-D weight matrices only"):
        SOAP(vectors="adam").init(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="vectors"):
        SOAP(vectors="sgd")
    with pytest.raises(ValueError, match="rho_s"):
        SOAP(rho_s=1.0)
