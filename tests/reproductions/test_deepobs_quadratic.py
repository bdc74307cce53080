"""DeepOBS on quadratic_deep: the fast problem equals the original; closed forms; claims."""

import numpy as np
import pytest

import steplab as sl
from steplab.reproductions import deepobs_quadratic as dq


@pytest.fixture(scope="module")
def problems():
    return dq.make_problem(), sl.problems.quadratic_deep()


def test_precomputed_problem_equals_the_original(problems):
    fast, original = problems
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 100))
    batch = rng.integers(0, original.n_train, size=(4, 128))
    for b in (batch, None):
        v_fast, g_fast = fast.value_and_grad(X, b)
        v_orig, g_orig = original.value_and_grad(X, b)
        assert np.allclose(v_fast, v_orig, rtol=1e-12) and np.allclose(g_fast, g_orig, atol=1e-10)


def test_sample_loss_equals_the_problems_own_evaluation(problems):
    _, original = problems
    X = np.random.default_rng(1).normal(size=(3, 100))
    assert np.allclose(
        dq.sample_loss(original, X, original.test_data), original.evaluate(X)["test_loss"]
    )
    assert np.allclose(dq.sample_loss(original, X, original.data), original.evaluate(X)["loss"])


def test_expected_test_loss_matches_monte_carlo(problems):
    _, original = problems
    theta = np.full(100, 0.3)
    Z = np.random.default_rng(2).normal(0.0, dq.NOISE, size=(20000, 100))
    monte_carlo = dq.sample_loss(original, theta, Z)[0]
    assert dq.expected_test_loss(original, theta)[0] == pytest.approx(monte_carlo, rel=0.01)


@pytest.mark.slow
def test_quick_reproduction_claims_hold(tmp_path):
    result = dq.run(tmp_path, quick=True)
    assert len(result.claims) == 3 and all(result.claims.values()), result.claims
    rows = result.tables["Tuned and rerun (DeepOBS summary)"]
    assert [r["optimizer"] for r in rows] == ["SGD", "Momentum", "Adam"]
