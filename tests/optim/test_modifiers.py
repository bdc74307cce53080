"""ADOPT, AdEMAMix, the cautious mask, MARS and Prodigy against their references
(pytorch_optimizer 4.1.0, optax.contrib), step for step in float64, the gradient fed back
through the iterates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steplab.optim import AdamW, Lion
from steplab.optim.modifiers import ADOPT, MARS, AdEMAMix, Cautious, Prodigy, cautious_mask

STEPS = 100
RTOL = 1e-10


def numpy_path(opt, stream, start=None, steps=STEPS):
    theta = (stream.start if start is None else start).copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, stream.gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path)


def torch_path(make, stream, start=None, steps=STEPS):
    torch = pytest.importorskip("torch")
    p = torch.tensor((stream.start if start is None else start).copy(), requires_grad=True)
    opt = make([p])
    path = []
    for t in range(steps):
        p.grad = torch.tensor(stream.gradient(p.detach().numpy().copy(), t))
        opt.step()
        path.append(p.detach().numpy().copy())
    return np.array(path)


def optax_path(tx, stream, steps=STEPS):
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        params = jax.numpy.asarray(stream.start)
        state = tx.init(params)
        path = []
        for t in range(steps):
            grads = jax.numpy.asarray(stream.gradient(np.asarray(params), t))
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            path.append(np.asarray(params))
        return np.array(path)
    finally:
        jax.config.update("jax_enable_x64", previous)


def close(ours, reference, rtol=RTOL):
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=1e-14)


def po():
    return pytest.importorskip("pytorch_optimizer")


# -- ADOPT ------------------------------------------------------------------------------


def test_adopt_equals_optax(stream):
    contrib = pytest.importorskip("optax.contrib")  # JAX: not in the min-versions venv

    close(numpy_path(ADOPT(lr=0.01), stream), optax_path(contrib.adopt(0.01), stream))


def test_adopt_equals_pytorch_optimizer_with_the_papers_clip(stream):
    reference = torch_path(
        lambda p: po().ADOPT(p, lr=0.01, weight_decay=0.1, clip_lambda=lambda t: (t - 1) ** 0.25),
        stream,
    )
    close(numpy_path(ADOPT(lr=0.01, weight_decay=0.1), stream), reference)


def test_adopt_without_clipping_equals_optax(stream):
    contrib = pytest.importorskip("optax.contrib")  # JAX: not in the min-versions venv

    reference = optax_path(contrib.adopt(0.01, b2=0.99, use_clipping=False), stream)
    close(numpy_path(ADOPT(lr=0.01, rho2=0.99, clipping=False), stream), reference)


def test_adopt_first_step_moves_nothing(stream):
    theta = stream.start.copy()
    opt = ADOPT()
    state = opt.init(theta)
    opt.step(theta, stream.gradient(theta, 0), state)
    np.testing.assert_array_equal(theta, stream.start)
    np.testing.assert_array_equal(state.v, stream.gradient(stream.start, 0) ** 2)


# -- AdEMAMix ---------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [0, 30])
def test_ademamix_equals_optax(stream, warmup):
    contrib = pytest.importorskip("optax.contrib")  # JAX: not in the min-versions venv

    alpha, b3 = 5.0, 0.999
    kwargs = {}
    if warmup:  # the paper's schedulers, as optax takes them: functions of the count t − 1
        log1, log3 = math.log(0.9), math.log(b3)

        def b3_schedule(count):
            f = jax_min((count + 1.0) / warmup, 1.0)  # (int32 / int would be float32)
            return jax_min(jax_exp(log1 * log3 / ((1 - f) * log3 + f * log1)), b3)

        kwargs = dict(alpha=lambda count: alpha * jax_min((count + 1.0) / warmup, 1.0),
                      b3=b3_schedule)  # fmt: skip
    tx = contrib.ademamix(0.01, b3=kwargs.get("b3", b3), alpha=kwargs.get("alpha", alpha),
                          weight_decay=0.1)  # fmt: skip
    ours = AdEMAMix(lr=0.01, rho3=b3, alpha=alpha, warmup_steps=warmup, weight_decay=0.1)
    close(numpy_path(ours, stream), optax_path(tx, stream))


def jax_min(a, b):
    import jax.numpy as jnp

    return jnp.minimum(a, b)


def jax_exp(x):
    import jax.numpy as jnp

    return jnp.exp(x)


def test_ademamix_equals_pytorch_optimizer(stream):
    reference = torch_path(
        lambda p: po().AdEMAMix(p, lr=0.01, betas=(0.9, 0.999, 0.999), alpha=5.0,
                                t_alpha_beta3=30, weight_decay=0.1, weight_decouple=True),
        stream,
    )  # fmt: skip
    ours = AdEMAMix(lr=0.01, rho3=0.999, warmup_steps=30, weight_decay=0.1)
    close(numpy_path(ours, stream), reference)


def test_ademamix_with_alpha_zero_is_adamw(stream):
    ours = AdEMAMix(lr=0.01, alpha=0.0, weight_decay=0.1)
    adamw = AdamW(lr=0.01, eps=1e-8, eps_root=0.0, weight_decay=0.1)
    close(numpy_path(ours, stream), numpy_path(adamw, stream), rtol=1e-12)


# -- the cautious mask ------------------------------------------------------------------


def test_cautious_lion_equals_pytorch_optimizer(stream):
    reference = torch_path(
        lambda p: po().Lion(p, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, cautious=True),
        stream,
    )
    ours = Cautious(base=Lion(lr=0.01, weight_decay=0.1))
    close(numpy_path(ours, stream), reference)


def test_cautious_adopt_equals_pytorch_optimizer(stream):
    reference = torch_path(
        lambda p: po().ADOPT(p, lr=0.01, cautious=True, clip_lambda=lambda t: (t - 1) ** 0.25),
        stream,
    )
    close(numpy_path(Cautious(base=ADOPT(lr=0.01)), stream), reference)


def test_cautious_mask_by_hand():
    direction = np.array([1.0, -2.0, 3.0, 0.5])
    g = np.array([2.0, 1.0, 1.0, -1.0])  # agree, disagree, agree, disagree
    np.testing.assert_array_equal(cautious_mask(direction, g), [4 / 3, 0.0, 4 / 3, 0.0])


def test_cautious_changes_the_path_and_keeps_the_state_of_the_base(stream):
    plain, masked = (
        numpy_path(AdamW(lr=0.05), stream),
        numpy_path(Cautious(base=AdamW(lr=0.05)), stream),
    )
    assert not np.allclose(plain, masked)
    opt = Cautious(base=AdamW(lr=0.05))
    state = opt.init(stream.start.copy())
    assert state.made_by == "adamw+cautious"
    with pytest.raises(ValueError, match="made by adamw.init, not by adamw\\+cautious"):
        opt.step(stream.start.copy(), stream.start, AdamW().init(stream.start.copy()))


# -- MARS -------------------------------------------------------------------------------


def test_mars_equals_pytorch_optimizer(stream):
    start = stream.start.reshape(2, 3)

    class Stream:  # the same gradients, on a 2-D parameter (MARS' own path in the reference)
        @staticmethod
        def gradient(theta, t):
            return stream.gradient(theta.ravel(), t).reshape(2, 3)

    reference = torch_path(lambda p: po().MARS(p, lr=0.01, weight_decay=0.1), Stream, start)
    ours = numpy_path(MARS(lr=0.01, weight_decay=0.1), Stream, start)
    close(ours, reference)


def test_mars_clips_the_corrected_gradient_to_norm_one(stream):
    opt = MARS(lr=0.01, rho1=0.5, gamma=1.0)
    theta = np.zeros(3)
    state = opt.init(theta)
    opt.step(theta, np.array([30.0, 40.0, 0.0]), state)  # c = 2g, ‖c‖ = 100 → c/100
    np.testing.assert_allclose(state.m, 0.5 * np.array([0.6, 0.8, 0.0]), rtol=1e-15)


# -- Prodigy ----------------------------------------------------------------------------


# Prodigy's ⟨ĝ, θ₀ − θ⟩ cancels while θ is still near θ₀ (it has moved by d ≈ 1e-6): one ulp
# of θ there is ~1e-10 of θ₀ − θ, and d carries it on. Hence 1e-7, not 1e-10.
PRODIGY_RTOL = 1e-7


def test_prodigy_equals_pytorch_optimizer(stream):
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # its sums d_numerator, d_de_nom: else float32
    try:
        reference = torch_path(lambda p: po().Prodigy(p, lr=1.0, weight_decay=0.1), stream)
    finally:
        torch.set_default_dtype(previous)
    close(numpy_path(Prodigy(weight_decay=0.1), stream), reference, rtol=PRODIGY_RTOL)


def test_prodigy_with_bias_correction_equals_optax(stream):
    contrib = pytest.importorskip("optax.contrib")  # JAX: not in the min-versions venv

    reference = optax_path(contrib.prodigy(1.0, weight_decay=0.1), stream)
    ours = numpy_path(Prodigy(weight_decay=0.1, bias_correction=True), stream)
    close(ours, reference, rtol=PRODIGY_RTOL)


def test_prodigy_grows_d(stream):
    opt = Prodigy()
    theta = stream.start.copy()
    state = opt.init(theta)
    for t in range(50):
        opt.step(theta, stream.gradient(theta, t), state)
    assert state.d > 1e3 * opt.d0


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ADOPT(eps=0.0), r"eps must be in \(0, inf\)"),
        (lambda: AdEMAMix(rho3=1.0), r"rho3 must be in \(0, 1\)"),
        (lambda: MARS(gamma=-1.0), r"gamma must be in \[0, inf\)"),
        (lambda: Prodigy(d0=0.0), r"d0 must be in \(0, inf\)"),
        (lambda: Prodigy(rho3=1.5), r"rho3 must be in \[0, 1\)"),
    ],
)
def test_bad_hyperparameters_name_the_interval(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_cautious_refuses_a_non_optimizer():
    with pytest.raises(TypeError, match="wraps a steplab Optimizer"):
        Cautious(base="adamw")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda impl: ADOPT(lr=0.01, weight_decay=0.1, impl=impl),
        lambda impl: AdEMAMix(lr=0.01, warmup_steps=3, weight_decay=0.1, impl=impl),
    ],
)
def test_element_wise_rules_give_the_numpy_bits_on_the_fused_path(make):
    pytest.importorskip("numba")
    start = np.random.default_rng(0).standard_normal(5000)
    results = []
    for impl in ("numpy", "fused"):
        opt = make(impl)
        theta = start.copy()
        state = opt.init(theta)
        for t in range(6):
            opt.step(theta, np.sin(theta + t), state)
        assert state.impl == impl
        results.append(theta.tobytes())
    assert results[0] == results[1]
