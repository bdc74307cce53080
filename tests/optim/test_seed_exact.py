"""The seed's three algorithms, checked against hand-derived steps and against an
independent, element-by-element transcription of the lecture's pseudo-code."""

from __future__ import annotations

import math

import numpy as np
import pytest

import steplab as sl

# -- defaults are the seed's ---------------------------------------------------------------


def test_seed_defaults():
    assert (sl.AdaGrad().eps, sl.AdaGrad().eps_root, sl.AdaGrad().r0) == (1e-7, 0.0, 0.0)
    assert (sl.RMSProp().eps, sl.RMSProp().eps_root, sl.RMSProp().r0) == (1e-6, 0.0, 0.0)
    adam = sl.Adam()
    assert (adam.lr, adam.rho1, adam.rho2) == (1e-3, 0.9, 0.999)
    assert (adam.eps, adam.eps_root, adam.bias_correction) == (0.0, 1e-8, True)
    assert sl.Adam.like("seed").config() == adam.config()


# -- first steps, derived by hand ------------------------------------------------------------


def test_adagrad_first_two_steps_by_hand():
    # r₁ = g₁² = 4;  θ₁ = 1 − 0.1/(1e-7 + 2)·2
    # r₂ = 4 + 1 = 5;  θ₂ = θ₁ − 0.1/(1e-7 + √5)·1
    opt = sl.AdaGrad(lr=0.1)
    theta = np.array([1.0])
    state = opt.init(theta)
    opt.step(theta, np.array([2.0]), state)
    assert theta[0] == pytest.approx(1 - 0.1 / (1e-7 + 2) * 2, rel=1e-15)
    assert state.r[0] == 4.0
    opt.step(theta, np.array([1.0]), state)
    assert theta[0] == pytest.approx(
        1 - 0.1 / (1e-7 + 2) * 2 - 0.1 / (1e-7 + math.sqrt(5)), rel=1e-15
    )
    assert state.t == 2


def test_rmsprop_first_step_by_hand():
    # r₁ = (1 − 0.9)·3² = 0.9;  θ₁ = 0 − 0.01/(1e-6 + √0.9)·3
    opt = sl.RMSProp(lr=0.01, rho=0.9)
    theta = np.array([0.0])
    state = opt.init(theta)
    opt.step(theta, np.array([3.0]), state)
    assert state.r[0] == pytest.approx(0.9, rel=1e-15)
    assert theta[0] == pytest.approx(-0.01 / (1e-6 + math.sqrt(0.9)) * 3, rel=1e-14)


def test_adam_first_step_is_alpha_times_sign():
    # t=1: ŝ = g, r̂ = g², so Δθ = −α·g/√(g² + β): nearly −α·sign(g) for |g| ≫ √β.
    opt = sl.Adam()
    theta = np.array([0.0, 0.0, 0.0])
    g = np.array([5.0, -0.02, 1e-4])
    state = opt.init(theta)
    opt.step(theta, g, state)
    np.testing.assert_allclose(theta, -1e-3 * g / np.sqrt(g * g + 1e-8), rtol=1e-14)
    np.testing.assert_allclose(state.s, 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(state.r, 0.001 * g * g, rtol=1e-15)


def test_adam_second_step_by_hand():
    g1, g2, lr = 2.0, -1.0, 0.1
    s = 0.1 * g1
    r = 0.001 * g1**2
    s = 0.9 * s + 0.1 * g2
    r = 0.999 * r + 0.001 * g2**2
    s_hat, r_hat = s / (1 - 0.9**2), r / (1 - 0.999**2)
    theta1 = -lr * g1 / math.sqrt(g1**2 + 1e-8)
    theta2 = theta1 - lr * s_hat / math.sqrt(r_hat + 1e-8)
    opt = sl.Adam(lr=lr)
    theta = np.array([0.0])
    state = opt.init(theta)
    opt.step(theta, np.array([g1]), state)
    opt.step(theta, np.array([g2]), state)
    assert theta[0] == pytest.approx(theta2, rel=1e-14)


def test_adam_without_bias_correction_takes_a_tiny_first_step():
    # Without correction, s₁ = 0.1·g and r₁ = 0.001·g²: the step is α·0.1/√0.001 ≈ 3.16·α.
    opt = sl.Adam(lr=1e-3, bias_correction=False, eps_root=0.0)
    theta = np.array([0.0])
    state = opt.init(theta)
    opt.step(theta, np.array([4.0]), state)
    assert theta[0] == pytest.approx(-1e-3 * 0.1 / math.sqrt(0.001), rel=1e-14)


# -- an independent transcription of the pseudo-code ------------------------------------------


def seed_adagrad(theta, grads, alpha, beta=1e-7):
    """Algorithm AdaGrad, line by line, one coordinate at a time."""
    theta = list(theta)
    r = [0.0] * len(theta)  # 4: initialize gradient accumulation variable r = 0
    for g in grads:  # 5: while stopping criterion not met
        g = g(theta)  # 7: compute gradient estimate
        for i in range(len(theta)):
            r[i] = r[i] + g[i] * g[i]  # 8: accumulate squared gradient
            update = -alpha / (beta + math.sqrt(r[i])) * g[i]  # 9: compute update
            theta[i] = theta[i] + update  # 10: apply update
    return theta


def seed_rmsprop(theta, grads, alpha, rho, beta=1e-6):
    theta = list(theta)
    r = [0.0] * len(theta)
    for g in grads:
        g = g(theta)
        for i in range(len(theta)):
            r[i] = rho * r[i] + (1 - rho) * g[i] * g[i]  # 8
            update = -alpha / (beta + math.sqrt(r[i])) * g[i]  # 9
            theta[i] = theta[i] + update  # 10
    return theta


def seed_adam(theta, grads, alpha=0.001, rho1=0.9, rho2=0.999, beta=1e-8):
    theta = list(theta)
    t = 0  # 5
    s = [0.0] * len(theta)  # 6
    r = [0.0] * len(theta)
    for g in grads:  # 7
        t = t + 1  # 8
        g = g(theta)  # 10
        for i in range(len(theta)):
            s[i] = rho1 * s[i] + (1 - rho1) * g[i]  # 11
            r[i] = rho2 * r[i] + (1 - rho2) * g[i] * g[i]  # 12
            s_hat = s[i] / (1 - rho1**t)  # 13
            r_hat = r[i] / (1 - rho2**t)  # 14
            update = -alpha * s_hat / math.sqrt(r_hat + beta)  # 15
            theta[i] = theta[i] + update  # 16
    return theta


@pytest.mark.parametrize(
    "opt, transcription",
    [
        (sl.AdaGrad(lr=0.05), lambda th, gs: seed_adagrad(th, gs, 0.05)),
        (sl.RMSProp(lr=0.01, rho=0.9), lambda th, gs: seed_rmsprop(th, gs, 0.01, 0.9)),
        (sl.Adam(), lambda th, gs: seed_adam(th, gs)),
        (sl.Adam(lr=0.05, rho1=0.8, rho2=0.99), lambda th, gs: seed_adam(th, gs, 0.05, 0.8, 0.99)),
    ],
    ids=["adagrad", "rmsprop", "adam", "adam-tuned"],
)
def test_matches_transcription_of_the_pseudo_code(opt, transcription, stream):
    steps = 150
    # The transcription pulls gradients through callables so it sees its own iterates.
    grads = [(lambda th, t=t: list(stream.gradient(np.array(th), t))) for t in range(steps)]
    expected = transcription(list(stream.start), grads)
    actual = stream.run(opt, steps)[-1]
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14)
