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


def test_initial_test_loss_on_896_points_equals_deepobs_baseline_files(problems):
    """test_losses[0] of DeepOBS' baseline JSON files (θ₀ = 1, first 7·128 test points)."""
    fast, _ = problems
    first = dq.sample_loss(fast, fast.x0, fast.test_data[: dq.TEST_POINTS])[0]
    assert dq.TEST_POINTS == 896
    assert first == pytest.approx(dq.PUBLISHED_INITIAL_TEST_LOSS, rel=1e-6)  # float32 there
    assert dq.sample_loss(fast, fast.x0, fast.test_data)[0] != pytest.approx(first, rel=1e-4)


def test_epochs_replay_one_fixed_order_without_the_last_partial_batch(problems, monkeypatch):
    fast, _ = problems
    seen = []
    original = type(fast).value_and_grad

    def recording(self, x, batch=None, rng=None):
        seen.append(np.array(batch))
        return original(self, x, batch, rng)

    monkeypatch.setattr(type(fast), "value_and_grad", recording)
    dq._train(fast, dq._optimizer, "sgd", [0.01, 0.02], [5, 6], epochs=2, progress=False)
    assert len(seen) == 2 * 7  # 7 steps per epoch: 1000 // 128
    for a, b in zip(seen[:7], seen[7:], strict=True):
        assert np.array_equal(a, b)  # epoch 2 replays epoch 1
    first_epoch = np.concatenate(seen[:7], axis=1)
    assert first_epoch.shape == (2, 896) and len(set(first_epoch[0])) == 896
    assert not np.array_equal(first_epoch[0], first_epoch[1])  # one order per seed


def test_momentum_is_the_baselines_rho_099():
    assert dq._optimizer("momentum", 0.01).rho == 0.99
    adam = dq._optimizer("adam", 0.01)
    assert adam.eps_hat and adam.eps == 1e-8 and adam.eps_root == 0.0  # TensorFlow's Adam


@pytest.mark.slow
def test_quick_reproduction_claims_hold(tmp_path):
    result = dq.run(tmp_path, quick=True)
    assert len(result.claims) == 4 and all(result.claims.values()), result.claims
    rows = result.tables["Tuned and rerun (DeepOBS summary)"]
    assert [r["optimizer"] for r in rows] == ["SGD", "Momentum", "Adam"]
