"""Muon and Adafactor step for step against torch.optim and optax: 100 float64 steps on a small
MLP whose gradients feed back through the iterates (tests/optim/matrix_stream.py), to 1e-10,
on all three of steplab's paths (NumPy, steplab.torch, steplab.jax).

torch.optim.Muon runs its Newton–Schulz iteration in bfloat16 whatever the parameters' dtype;
for the float64 comparison that one cast is made the identity (``Tensor.bfloat16`` returns a
copy), so the algorithm is compared, not the precision. A float32 test against the unpatched
torch.optim.Muon bounds what bfloat16 costs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from steplab.optim.adam import Adam, AdamW
from steplab.optim.matrix import Adafactor, Muon

_spec = importlib.util.spec_from_file_location(
    "matrix_stream", Path(__file__).with_name("matrix_stream.py")
)
stream = importlib.util.module_from_spec(_spec)  # a helper module beside this file (importlib mode)
_spec.loader.exec_module(stream)

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jax.config.update("jax_enable_x64", True)

TOL = 1e-10
MATRICES = ("W1", "W2")


@pytest.fixture
def no_bfloat16(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())


def _per_name(matrix, other):
    return {k: matrix if k in MATRICES else other for k in stream.SHAPES}


# -- Muon ---------------------------------------------------------------------------------


def _torch_muon_reference(lr):
    def make(params):
        return [
            torch.optim.Muon([params[k] for k in MATRICES], lr=lr),
            torch.optim.AdamW([params["b1"], params["b2"]], lr=lr),
        ]

    return stream.run_torch(make)


def test_muon_torch_preset_equals_torch_optim_muon(no_bfloat16):
    import steplab.torch as st
    import steplab.torch.matrix as stm

    lr = 0.02
    reference = _torch_muon_reference(lr)
    numpy = stream.run_numpy(_per_name(Muon.like("torch", lr=lr), AdamW.like("torch", lr=lr)))
    assert stream.max_difference(numpy, reference) < TOL

    def make(params):
        return [
            stm.Muon.like("torch", [params[k] for k in MATRICES], lr=lr),
            st.AdamW.like("torch", [params["b1"], params["b2"]], lr=lr),
        ]

    assert stream.max_difference(stream.run_torch(make), reference) < TOL
    # the stream moves the weights: a rule that did nothing would fail
    assert stream.max_difference(reference, stream.start()) > 0.1


def test_muon_seed_default_is_not_the_torch_preset(no_bfloat16):
    reference = _torch_muon_reference(0.02)
    seed = stream.run_numpy(_per_name(Muon(), AdamW.like("torch", lr=0.02)))
    assert stream.max_difference(seed, reference) > 1e-3  # λ = 0.1 in torch, 0 in Keller's


def _optax_muon_reference(lr):
    labels = {k: "muon" if k in MATRICES else "adam" for k in stream.SHAPES}
    return optax.partition(
        {"muon": optax.contrib.muon(learning_rate=lr), "adam": optax.adam(lr)}, labels
    )


def test_muon_optax_preset_equals_optax_contrib_muon():
    import steplab.jax as sj
    import steplab.jax.matrix as sjm

    lr = 0.02
    reference = stream.run_optax(_optax_muon_reference(lr))
    numpy = stream.run_numpy(_per_name(Muon.like("optax", lr=lr), Adam.like("optax", lr=lr)))
    assert stream.max_difference(numpy, reference) < TOL
    labels = {k: "matrix" if k in MATRICES else "other" for k in stream.SHAPES}
    tx = sjm.routed("muon", "optax", other=sj.make("adam", "optax", lr=lr), labels=labels, lr=lr)
    assert stream.max_difference(stream.run_optax(tx), reference) < TOL
    assert stream.max_difference(reference, stream.start()) > 0.1


def test_muon_torch_and_optax_presets_differ():
    torch_like = stream.run_numpy(_per_name(Muon.like("torch", lr=0.02), Adam(lr=0.02)), 10)
    optax_like = stream.run_numpy(_per_name(Muon.like("optax", lr=0.02), Adam(lr=0.02)), 10)
    assert stream.max_difference(torch_like, optax_like) > 1e-4


def test_unpatched_torch_muon_in_float32_agrees_to_bfloat16_precision():
    """torch.optim.Muon as shipped (bfloat16 iteration) against steplab's torch preset in
    float32, one step from the same state: the orthogonalized updates agree to ~1 %, the
    precision of bfloat16's 8-bit significand after five iterations."""
    import steplab.torch.matrix as stm

    rng = np.random.default_rng(0)
    W = torch.tensor(rng.standard_normal((32, 16)), dtype=torch.float32)
    G = torch.tensor(rng.standard_normal((32, 16)), dtype=torch.float32)
    ours, theirs = torch.nn.Parameter(W.clone()), torch.nn.Parameter(W.clone())
    ours.grad, theirs.grad = G.clone(), G.clone()
    stm.Muon.like("torch", [ours], weight_decay=0.0).step()
    torch.optim.Muon([theirs], weight_decay=0.0).step()
    step_ours, step_theirs = ours.detach() - W, theirs.detach() - W
    relative = float((step_ours - step_theirs).norm() / step_theirs.norm())
    assert 1e-5 < relative < 3e-2  # not equal (bfloat16), but close


# -- Adafactor ----------------------------------------------------------------------------


def test_adafactor_torch_preset_equals_torch_optim_adafactor():
    import steplab.torch.matrix as stm

    reference = stream.run_torch(lambda p: [torch.optim.Adafactor(list(p.values()))])
    numpy = stream.run_numpy({k: Adafactor.like("torch") for k in stream.SHAPES})
    assert stream.max_difference(numpy, reference) < TOL
    ours = stream.run_torch(lambda p: [stm.Adafactor.like("torch", list(p.values()))])
    assert stream.max_difference(ours, reference) < TOL
    assert stream.max_difference(reference, stream.start()) > 0.05


def test_adafactor_torch_preset_with_weight_decay_and_lr():
    import steplab.torch.matrix as stm

    # (with lr = 0.05 the iteration grows round-off ×3 a step after step 25: 1e-9 at 100)
    options = {"lr": 0.005, "weight_decay": 0.1}
    reference = stream.run_torch(lambda p: [torch.optim.Adafactor(list(p.values()), **options)])
    ours = stream.run_torch(lambda p: [stm.Adafactor.like("torch", list(p.values()), **options)])
    numpy = stream.run_numpy({k: Adafactor.like("torch", **options) for k in stream.SHAPES})
    assert stream.max_difference(ours, reference) < TOL
    assert stream.max_difference(numpy, reference) < TOL


@pytest.mark.parametrize(
    "options, ours",
    [
        ({"learning_rate": 0.01}, {"lr": 0.01}),  # nothing factored below 128
        ({"learning_rate": 0.01, "min_dim_size_to_factor": 1}, {"lr": 0.01, "factor_min_size": 1}),
        ({"learning_rate": 0.01, "min_dim_size_to_factor": 1, "clipping_threshold": None,
          "multiply_by_parameter_scale": False},
         {"lr": 0.01, "factor_min_size": 1, "clip_update": False, "scale_parameter": False}),
        # optax keeps its momentum in float32 unless told (dtype_momentum); steplab in θ's
        ({"learning_rate": 0.01, "min_dim_size_to_factor": 1, "momentum": 0.9,
          "dtype_momentum": np.float64},
         {"lr": 0.01, "factor_min_size": 1, "momentum": 0.9}),
        ({"learning_rate": 0.01, "momentum": 0.5, "dtype_momentum": np.float64},
         {"lr": 0.01, "momentum": 0.5}),
    ],
    ids=["unfactored", "factored", "factored-unclipped-unscaled", "factored-momentum",
         "unfactored-momentum"],
)  # fmt: skip
def test_adafactor_optax_preset_equals_optax_adafactor(options, ours):
    import steplab.jax.matrix as sjm

    reference = stream.run_optax(optax.adafactor(**options))
    numpy = stream.run_numpy({k: Adafactor.like("optax", **ours) for k in stream.SHAPES})
    scale = max(1.0, max(float(np.abs(v).max()) for v in reference.values()))
    assert stream.max_difference(numpy, reference) < TOL * scale
    jaxed = stream.run_optax(sjm.make("adafactor", "optax", **ours))
    assert stream.max_difference(jaxed, reference) < TOL * scale
    assert stream.max_difference(reference, stream.start()) > 0.05


def test_adafactor_momentum_on_torch_equals_numpy_and_changes_the_path():
    import steplab.torch.matrix as stm

    options = {"lr": 0.01, "factor_min_size": 1, "momentum": 0.9}
    numpy = stream.run_numpy({k: Adafactor.like("optax", **options) for k in stream.SHAPES})
    ours = stream.run_torch(lambda p: [stm.Adafactor.like("optax", list(p.values()), **options)])
    assert stream.max_difference(ours, numpy) < TOL
    plain = stream.run_numpy({k: Adafactor.like("optax", lr=0.01, factor_min_size=1)
                              for k in stream.SHAPES})  # fmt: skip
    assert stream.max_difference(plain, numpy) > 1e-3
    assert set(Adafactor(momentum=0.9).init(np.zeros((4, 3))).arrays()) == {"R", "C", "M"}


def test_adafactor_factored_state_is_rows_plus_columns():
    opt = Adafactor()
    state = opt.init(np.zeros((300, 200)))
    assert {k: v.shape for k, v in state.arrays().items()} == {"R": (300, 1), "C": (1, 200)}
    assert sum(v.size for v in state.arrays().values()) == 300 + 200


def test_adafactor_optax_preset_is_optax_adafactor_with_its_defaults():
    """optax.adafactor() itself (α = 1, no relative step): its steps grow θ and the stream
    then amplifies round-off ~×3 a step, so 5 steps, relative to the weights' size."""
    reference = stream.run_optax(optax.adafactor(), steps=5)
    numpy = stream.run_numpy({k: Adafactor.like("optax") for k in stream.SHAPES}, steps=5)
    assert stream.max_difference(numpy, reference) < 1e-12 * 10
    assert stream.max_difference(reference, stream.start()) > 1.0


@pytest.mark.parametrize("shape", [(4, 3), (5,)], ids=["factored", "vector"])
def test_adafactor_clamps_v_hat_at_eps_squared(shape):
    """G = 10⁻¹⁰ everywhere, θ = 1, one step of the torch preset (ε = float64's 2.2e-16).
    Hand-derived: V̂ = R·C/max(mean R, ε) ≈ 4.5e-25 (factored) or G² = 1e-20 (vector), both
    above ε² ≈ 4.9e-32, so U = G/√V̂ has RMS > 1, is clipped to RMS 1 and θ ← 1 − α₁ = 0.99
    (α₁ = max(ε₂, RMS θ)·min(α, 1) = 0.01). A clamp at ε instead of ε² makes √V̂ = 1.5e-8,
    U ≈ 0.0067 and θ ≈ 0.99993."""
    import steplab.torch.matrix as stm

    g = np.full(shape, 1e-10)
    theta = np.ones(shape)
    opt = Adafactor.like("torch")
    opt.step(theta, g, opt.init(theta))
    np.testing.assert_allclose(theta, 0.99, rtol=1e-12)
    ours = torch.nn.Parameter(torch.ones(shape, dtype=torch.float64))
    theirs = torch.nn.Parameter(torch.ones(shape, dtype=torch.float64))
    ours.grad, theirs.grad = torch.tensor(g), torch.tensor(g)
    stm.Adafactor.like("torch", [ours]).step()
    torch.optim.Adafactor([theirs]).step()
    np.testing.assert_allclose(ours.detach().numpy(), 0.99, rtol=1e-12)
    np.testing.assert_allclose(theirs.detach().numpy(), 0.99, rtol=1e-12)


def test_muon_bfloat16_iteration_equals_torch_optim_muon_as_shipped(monkeypatch):
    """ns_dtype="bfloat16" (torch's precision) against torch.optim.Muon unpatched, float32,
    20 fed-back steps on a tall, a wide and a square weight: the momentum and the weights equal
    bit for bit (both mix Nesterov's term with one lerp). On a side of 300, where steplab
    computes the Gram products by panels (of 128 rows here), the weights within 2e-5
    (measured: bit for bit on this machine's kernels; a panel's kernel may sum in another order
    elsewhere). The float32
    iteration is farther from torch than that (test above: ~1 % a step)."""
    import steplab.torch.matrix as stm

    monkeypatch.setattr(stm, "GRAM_LEAF", 128)  # panels of 128 rows: three on a side of 300
    torch.manual_seed(0)
    for shape in [(64, 32), (32, 64), (48, 48), (600, 300)]:
        W0 = torch.randn(*shape)
        a, b = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(W0.clone())
        ours = stm.Muon.like("torch", [a], ns_dtype="bfloat16")
        theirs = torch.optim.Muon([b])
        for _ in range(20):
            g = torch.randn(*shape) + 0.1 * a.detach()
            a.grad, b.grad = g.clone(), g.clone()
            ours.step()
            theirs.step()
        if max(shape) < 2 * stm.GRAM_LEAF:
            assert torch.equal(ours.state[a]["B"], theirs.state[b]["momentum_buffer"])
            assert torch.equal(a, b)
        assert float((a - b).abs().max()) < 2e-5
        assert float((a - W0).abs().max()) > 1e-3  # the weights moved
