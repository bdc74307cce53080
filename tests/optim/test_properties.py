"""Properties the lecture states (or implies), checked on many random gradient streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import steplab as sl

# Gradient streams: 1–40 steps of 3 coordinates, magnitudes from 1e-3 to 1e3.
magnitudes = st.floats(min_value=1e-3, max_value=1e3)
signed = st.one_of(magnitudes, magnitudes.map(lambda x: -x))
streams = st.integers(1, 40).flatmap(lambda n: arrays(np.float64, (n, 3), elements=signed))
SETTINGS = settings(max_examples=60, deadline=None)


def iterates(opt, grads, theta0=None):
    theta = np.zeros(grads.shape[1]) if theta0 is None else theta0.copy()
    state = opt.init(theta)
    out = []
    for g in grads:
        opt.step(theta, g, state)
        out.append(theta.copy())
    return np.array(out), state


@SETTINGS
@given(grads=streams, scale=st.floats(1e-3, 1e3))
def test_adam_is_invariant_to_rescaling_one_coordinates_gradient(grads, scale):
    # ŝ/√r̂ does not change when every gradient of a coordinate is multiplied by c > 0
    # (the lecture: Adam adapts a step size per input). Exactly so without β.
    opt = sl.Adam(lr=0.01, eps_root=0.0)
    scaled = grads.copy()
    scaled[:, 0] *= scale
    plain, _ = iterates(opt, grads)
    rescaled, _ = iterates(opt, scaled)
    np.testing.assert_allclose(rescaled, plain, rtol=1e-9, atol=1e-15)


@SETTINGS
@given(grads=streams)
def test_adagrad_effective_step_size_never_increases(grads):
    # The accumulator only grows, so α/(β+√r) only shrinks — AdaGrad's premature decay.
    opt = sl.AdaGrad(lr=0.1)
    theta = np.zeros(3)
    state = opt.init(theta)
    previous = opt.step_size(state)
    np.testing.assert_allclose(previous, 0.1 / 1e-7)
    for g in grads:
        opt.step(theta, g, state)
        current = opt.step_size(state)
        assert np.all(current <= previous)
        previous = current


def test_rmsprop_effective_step_size_recovers_when_gradients_shrink():
    # The moving average forgets: unlike AdaGrad, RMSProp's step size grows again.
    grads = np.array([[10.0]] * 20 + [[0.01]] * 100)
    _, rms = iterates(sl.RMSProp(lr=0.01), grads[:20])
    early = sl.RMSProp(lr=0.01).step_size(rms)[0]
    _, rms = iterates(sl.RMSProp(lr=0.01), grads)
    _, ada = iterates(sl.AdaGrad(lr=0.01), grads)
    assert sl.RMSProp(lr=0.01).step_size(rms)[0] > 100 * early
    # AdaGrad still remembers the twenty large gradients: r ≥ 20·10², step ≤ α/√2000.
    assert sl.AdaGrad(lr=0.01).step_size(ada)[0] <= 0.01 / np.sqrt(2000)


@SETTINGS
@given(g=arrays(np.float64, 3, elements=signed), steps=st.integers(1, 50))
def test_bias_correction_makes_a_constant_gradient_step_exactly(g, steps):
    # With ĝ constant, ŝ = g and r̂ = g² for every t: every step is −α·g/√(g²+β).
    grads = np.tile(g, (steps, 1))
    path, state = iterates(sl.Adam(lr=0.01), grads)
    steps_taken = np.diff(np.vstack([np.zeros(3), path]), axis=0)
    np.testing.assert_allclose(
        steps_taken, np.tile(-0.01 * g / np.sqrt(g * g + 1e-8), (steps, 1)), rtol=1e-9
    )
    # Without correction s and r are both near 0, but not equally: the first step is
    # (1−ρ₁)/√(1−ρ₂) ≈ 3.16 times larger (Kingma & Ba, section 6.4: the instability).
    # (Without β, so that tiny gradients show the pure ratio; corrected, the step is α.)
    path, _ = iterates(sl.Adam(lr=0.01, bias_correction=False, eps_root=0.0), grads[:1])
    np.testing.assert_allclose(np.abs(path[0]), 0.01 * 0.1 / np.sqrt(0.001), rtol=1e-12)


@SETTINGS
@given(grads=streams)
def test_adam_steps_are_bounded_as_kingma_and_ba_state(grads):
    # Section 2.1: |Δθ| ≤ α·(1−ρ₁)/√(1−ρ₂) when (1−ρ₁) > √(1−ρ₂), which holds for the defaults.
    path, _ = iterates(sl.Adam(lr=0.01), grads)
    steps_taken = np.abs(np.diff(np.vstack([np.zeros(3), path]), axis=0))
    assert np.all(steps_taken <= 0.01 * 0.1 / np.sqrt(0.001) * (1 + 1e-12))


@SETTINGS
@given(grads=streams)
def test_lion_moves_every_coordinate_by_exactly_lr(grads):
    path, _ = iterates(sl.Lion(lr=0.01), grads)
    steps_taken = np.abs(np.diff(np.vstack([np.zeros(3), path]), axis=0))
    np.testing.assert_allclose(steps_taken, 0.01, rtol=1e-12)


@pytest.mark.parametrize(
    "special, general",
    [
        (sl.SGD(lr=0.03), sl.Momentum(lr=0.03, rho=0.0)),
        (sl.SGD(lr=0.03), sl.Nesterov(lr=0.03, rho=0.0)),
        (sl.Adam(lr=0.03), sl.AdamW(lr=0.03, weight_decay=0.0)),
        (sl.RMSProp(lr=0.03), sl.RMSProp(lr=0.03, momentum=0.0, centered=False)),
    ],
)
def test_special_cases_coincide(special, general):
    grads = np.random.default_rng(3).standard_normal((50, 4))
    np.testing.assert_array_equal(iterates(special, grads)[0], iterates(general, grads)[0])


def test_adam_with_rho1_zero_and_no_correction_is_rmsprop_with_beta_inside():
    # s = ĝ when ρ₁ = 0; then Adam without bias correction is RMSProp with β in the root.
    grads = np.random.default_rng(4).standard_normal((50, 4))
    adam = sl.Adam(lr=0.01, rho1=0.0, rho2=0.9, bias_correction=False, eps_root=1e-8)
    rms = sl.RMSProp(lr=0.01, rho=0.9, eps=0.0, eps_root=1e-8)
    np.testing.assert_allclose(iterates(adam, grads)[0], iterates(rms, grads)[0], rtol=1e-13)
