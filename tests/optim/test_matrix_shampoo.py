"""Shampoo against pytorch_optimizer's Shampoo (100 float64 steps of the feedback stream) and
NumPy = torch = JAX; its blocks, grafting and the refusal of a too-large side.

The tolerance: the roots L^(−1/4) come from eigendecompositions (steplab, NumPy's LAPACK or
torch's or XLA's) or an SVD (pytorch_optimizer). Each is backward stable: it is exact for a
matrix within ~u·‖L‖ of L (u = 1.1e-16). The root's error is then at most that times the
largest slope of x^(−1/4) on L's spectrum, ¼·λ_min^(−5/4), i.e. relative ~u·‖L‖/(4·λ_min)·…
With λ_min ≥ ε = 1e-6 and ‖L‖ ≈ 1 on this stream that is ≤ ~1e-9 per root (a worst case);
1e-10 is asserted against pytorch_optimizer, 1e-12 between steplab's NumPy and torch paths.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from steplab.optim.adam import AdamW
from steplab.optim.matrix import Shampoo

_spec = importlib.util.spec_from_file_location(
    "matrix_stream", Path(__file__).with_name("matrix_stream.py")
)
stream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stream)

MATRICES = ("W1", "W2")
TOL = 1e-10


def _numpy(opt, steps=stream.STEPS):
    lr = float(opt.lr)
    return stream.run_numpy(
        {k: opt if k in MATRICES else AdamW.like("torch", lr=lr) for k in stream.SHAPES}, steps
    )


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_shampoo_equals_pytorch_optimizer_shampoo(momentum):
    torch = pytest.importorskip("torch")
    reference_cls = pytest.importorskip("pytorch_optimizer").Shampoo
    import steplab.torch.matrix as stm

    lr = 0.01

    def make(cls, **options):
        def build(p):
            return [
                cls([p[k] for k in MATRICES], lr=lr, **options),
                torch.optim.AdamW([p["b1"], p["b2"]], lr=lr),
            ]

        return build

    reference = stream.run_torch(make(reference_cls, momentum=momentum))
    numpy = _numpy(Shampoo.like("pytorch_optimizer", lr=lr, momentum=momentum))
    assert stream.max_difference(numpy, reference) < TOL
    ours = stream.run_torch(make(stm.Shampoo, momentum=momentum))
    assert stream.max_difference(ours, reference) < TOL
    # the same eigh-based rule; momentum feeds each step back into the statistics, which
    # amplifies the LAPACKs' rounding differences (measured 4.6e-12 at μ = 0.9)
    assert stream.max_difference(ours, numpy) < (1e-12 if momentum == 0 else TOL)
    assert stream.max_difference(reference, stream.start()) > 0.1


@pytest.mark.parametrize("options", [{}, {"graft": "adagrad"}, {"every": 3, "rho2": 0.99},
                                     {"block_size": 3, "graft": "rmsprop"},
                                     {"momentum": 0.5, "graft": "adagrad",
                                      "every": 2}])  # fmt: skip
def test_numpy_equals_jax(options):
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jax.config.update("jax_enable_x64", True)
    import steplab.jax as sj
    import steplab.jax.matrix as sjm

    opt = Shampoo(lr=0.01, **options)
    numpy = _numpy(opt)
    labels = {k: "matrix" if k in MATRICES else "other" for k in stream.SHAPES}
    other = sj.make("adamw", "torch", lr=0.01)
    tx = optax.partition({"matrix": sjm.transformation(opt), "other": other}, labels)
    assert stream.max_difference(numpy, stream.run_optax(tx)) < TOL


def test_momentum_changes_the_path_and_keeps_the_previous_step():
    pytest.importorskip("torch")  # the shared gradient stream is a torch MLP's
    plain, mixed = _numpy(Shampoo(lr=0.01), 20), _numpy(Shampoo(lr=0.01, momentum=0.9), 20)
    assert stream.max_difference(plain, mixed) > 1e-4  # the option is not ignored
    assert "P" not in Shampoo().state_shapes((4, 3))  # no momentum: no extra state
    assert Shampoo(momentum=0.9).state_shapes((4, 3))["P"] == (4, 3)


def test_one_block_as_large_as_the_matrix_is_no_block():
    pytest.importorskip("torch")  # the shared gradient stream is a torch MLP's
    a = _numpy(Shampoo(lr=0.01), 20)
    b = _numpy(Shampoo(lr=0.01, block_size=8), 20)
    assert stream.max_difference(a, b) == 0.0


def test_blocks_are_independent_shampoos():
    rng = np.random.default_rng(2)
    W0, grads = rng.standard_normal((6, 4)), rng.standard_normal((5, 6, 4))
    W = W0.copy()
    opt = Shampoo(lr=0.1, block_size=3)
    state = opt.init(W)
    for G in grads:
        opt.step(W, G, state)
    for r in (slice(0, 3), slice(3, 6)):
        for c in (slice(0, 3), slice(3, 4)):
            block = W0[r, c].copy()
            single = Shampoo(lr=0.1)
            s = single.init(block)
            for G in grads:
                single.step(block, np.ascontiguousarray(G[r, c]), s)
            np.testing.assert_allclose(W[r, c], block, rtol=0, atol=1e-14)


def test_grafting_takes_the_step_length_of_adagrad():
    rng = np.random.default_rng(4)
    W, G = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    opt = Shampoo(lr=0.1, graft="adagrad", graft_eps=0.0)
    before = W.copy()
    opt.step(W, G, opt.init(W))
    adagrad_step = 0.1 * G / np.abs(G)  # AdaGrad's first step: α·g/√(g²)
    assert np.linalg.norm(W - before) == pytest.approx(np.linalg.norm(adagrad_step), rel=1e-12)
    plain = before.copy()
    Shampoo(lr=0.1).step(plain, G, Shampoo(lr=0.1).init(plain))
    direction = (plain - before) / np.linalg.norm(plain - before)  # Shampoo's direction
    np.testing.assert_allclose((W - before) / np.linalg.norm(W - before), direction, atol=1e-12)


def test_roots_are_recomputed_every_k_steps_only():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((4, 3))
    opt = Shampoo(every=3)
    state = opt.init(W)
    roots = []
    for _ in range(4):
        opt.step(W, rng.standard_normal((4, 3)), state)
        roots.append(state.L_root.copy())
    assert np.array_equal(roots[0], roots[2]) and not np.array_equal(roots[2], roots[3])
    # and a root is L^(−1/4): (L̃)⁻⁴ = L at the step it was computed
    np.testing.assert_allclose(np.linalg.matrix_power(np.linalg.inv(roots[3]), 4), state.L,
                               rtol=1e-9)  # fmt: skip


def test_a_side_too_long_is_refused_and_the_message_names_block_size():
    with pytest.raises(ValueError, match=r"max_dim=4096.*block_size"):
        Shampoo().init(np.zeros((5000, 10)))
    state = Shampoo(block_size=1024).init(np.zeros((5000, 10)))
    assert state.L_4_0.shape == (5000 - 4096, 5000 - 4096)
    with pytest.raises(ValueError, match="takes 2-D weight matrices only"):
        Shampoo().init(np.zeros(5))
