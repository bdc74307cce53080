"""Wilson et al.'s construction, checked by hand, and the reduced reproduction."""

import numpy as np
import pytest

import steplab as sl
from steplab.reproductions import wilson_toy


def test_construction_matches_the_paper():
    X, y, X_test, y_test = wilson_toy.make_data(20, seed=3)
    assert X.shape == (20, 3 + 5 * 20) and y.sum() > 0
    assert np.array_equal(X[:, 0], y) and np.all(X[:, 1:3] == 1)
    own = X[:, 3:]
    # each example's own features: 1 for a positive, 5 for a negative, shared with nobody
    assert np.array_equal(own.sum(axis=1), np.where(y > 0, 1, 5))
    assert np.all(own.sum(axis=0) <= 1)
    # the key identity: X sign(Xᵀy) = 4y (1 + 2 + 1 for positives, −1 + 2 − 5 for negatives)
    assert np.array_equal(X @ np.sign(X.T @ y), 4 * y)
    # test points: only the label feature and the two constant ones
    assert np.array_equal(X_test[:, 0], y_test) and np.all(X_test[:, 3:] == 0)


def test_the_two_closed_form_solutions_generalize_as_the_paper_says():
    X, y, X_test, y_test = wilson_toy.make_data(30, seed=1)
    u = np.sign(X.T @ y)
    w_adaptive = u / 4  # interpolates: X u / 4 = y
    w_min_norm = np.linalg.pinv(X) @ y
    assert np.allclose(X @ w_adaptive, y) and np.allclose(X @ w_min_norm, y)
    assert wilson_toy.test_error(w_min_norm, X_test, y_test)[0] == 0.0
    negatives = np.mean(y_test < 0)
    assert wilson_toy.test_error(w_adaptive, X_test, y_test)[0] == pytest.approx(negatives)


def test_objective_gradient_matches_finite_differences():
    X, y, _, _ = wilson_toy.make_data(5, seed=0)
    problem = wilson_toy.problem(X, y)
    w = np.random.default_rng(0).normal(size=problem.dim)
    grad = problem.grad(w)
    numeric = sl.problems.central_difference(problem.value, w)
    assert np.allclose(grad, numeric, atol=1e-6)
    value_batch, grad_batch = problem.value_and_grad(w, np.arange(5))
    assert value_batch == pytest.approx(problem.value(w)) and np.allclose(grad_batch, grad)


@pytest.mark.slow
def test_quick_reproduction_claims_hold(tmp_path):
    result = wilson_toy.run(tmp_path, quick=True)
    assert result.claims and all(result.claims.values()), result.claims
