"""Quadratic forms, gradient noise and the DeepOBS-style stochastic problems."""

import numpy as np
import pytest

from steplab import problems
from steplab.problems.custom import central_difference


def test_quadratic_hessian_has_the_requested_spectrum():
    p = problems.quadratic(condition=100.0, dim=4, rotation="random", seed=3)
    assert np.allclose(np.linalg.eigvalsh(p.A), np.geomspace(1, 100, 4))
    assert not np.allclose(p.A, np.diag(np.diag(p.A)))  # really rotated
    x = np.random.default_rng(0).standard_normal(4)
    assert np.allclose(p.grad(x), p.A @ x)
    assert p.value(x) == pytest.approx(0.5 * x @ p.A @ x)


def test_quadratic_2d_rotation_by_angle():
    p = problems.quadratic([1.0, 9.0], rotation=np.pi / 4)
    # rotated by 45°: the steep direction is the diagonal (1, 1)/√2 or (1, -1)/√2
    eigvals, eigvecs = np.linalg.eigh(p.A)
    assert np.allclose(eigvals, [1.0, 9.0])
    assert np.allclose(np.abs(eigvecs), np.sqrt(0.5))


def test_quadratic_validation():
    with pytest.raises(ValueError, match="eigenvalues"):
        problems.quadratic([1.0, -1.0])
    with pytest.raises(ValueError, match="condition"):
        problems.quadratic(condition=0.5)
    with pytest.raises(ValueError, match="rotation"):
        problems.quadratic(dim=3, rotation=0.3)
    with pytest.raises(ValueError, match="not both"):
        problems.quadratic([1.0, 2.0], condition=3.0)


def test_quadratic_deep_matches_deepobs_construction():
    p = problems.quadratic_deep()
    lam = np.linalg.eigvalsh(p.H)
    assert p.dim == 100 and p.n_train == 1000
    assert np.sum(lam < 1.0) == 90 and np.all((lam[-10:] > 30) & (lam[-10:] < 60))
    assert np.allclose(p.x0, 1.0)
    # the minibatch gradient is H (θ − mean of the batch's data points)
    theta = np.random.default_rng(0).standard_normal(100)
    batch = np.arange(5, 37)
    expected = p.H @ (theta - p.data[batch].mean(axis=0))
    assert np.allclose(p.grad(theta, batch), expected)
    numeric = central_difference(lambda z: p.value(z, batch), theta)
    assert np.allclose(p.grad(theta, batch), numeric, atol=1e-5)
    # the empirical risk's minimum is where the catalogue says
    assert np.linalg.norm(p.grad(p.minima[0])) < 1e-10
    assert p.value(p.minima[0]) == pytest.approx(p.f_min)
    # DeepOBS' test set is a second draw around the same mean 0
    metrics = p.evaluate(np.zeros(100))
    assert set(metrics) == {"loss", "test_loss"}
    assert metrics["test_loss"] == pytest.approx(metrics["loss"], rel=0.1)


def test_gradient_noise_has_the_requested_scale_and_is_seeded():
    base = problems.rosenbrock()
    p = problems.with_gradient_noise(base, 0.5)
    x = np.array([0.3, -0.2])
    draws = np.array([p.value_and_grad(x, rng=np.random.default_rng(s))[1] for s in range(2000)])
    noise = draws - base.grad(x)
    assert np.allclose(noise.mean(axis=0), 0.0, atol=0.05)
    assert np.allclose(noise.std(axis=0), 0.5, rtol=0.08)
    same = p.value_and_grad(x, rng=np.random.default_rng(7))[1]
    again = p.value_and_grad(x, rng=np.random.default_rng(7))[1]
    assert np.array_equal(same, again)
    assert np.array_equal(p.grad(x), base.grad(x))  # no generator: exact gradient
    with pytest.raises(ValueError, match="scale"):
        problems.with_gradient_noise(base, -1.0)


@pytest.mark.parametrize("name", ["two_d_rosenbrock", "two_d_beale", "two_d_branin"])
def test_two_d_noisy_problems(name):
    p = problems.get(name)
    base = p.base
    x = np.array([0.4, 1.1])
    batch = np.arange(0, 128)
    numeric = central_difference(lambda z: p.value(z, batch), x)
    assert np.allclose(p.grad(x, batch), numeric, rtol=1e-6, atol=1e-6)
    a, b = p.data[batch].mean(axis=0)
    assert p.value(x, batch) == pytest.approx(base.value(x) + a * x[0] + b * x[1])
    # the noise averages out: on average over batches the gradient is the true one
    rng = np.random.default_rng(0)
    grads = [p.grad(x, rng.integers(0, p.n_train, 128)) for _ in range(400)]
    assert np.allclose(np.mean(grads, axis=0), base.grad(x), atol=0.05)
    assert p.evaluate(x)["test_loss"] == base.value(x)  # DeepOBS' test set: the clean function
