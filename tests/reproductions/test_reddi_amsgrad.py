"""Reddi, Kale & Kumar (2018): the counterexample where Adam goes to the worst point."""

import numpy as np
import pytest

from steplab.reproductions import reddi_amsgrad as reddi


def test_online_gradients_follow_the_paper_and_make_minus_one_optimal():
    g = reddi.gradients("online", 303)
    assert g[0] == 1010 and g[101] == 1010 and g[202] == 1010  # t = 1, 102, 203
    assert np.count_nonzero(g == 1010) == 3 and np.all(g[g != 1010] == -10)
    assert g[:101].sum() == 10  # one period: Σ f_t(x) = 10·x, minimized at x = −1
    assert reddi.ADAM_LIMIT == pytest.approx(20 / 101)


def test_stochastic_gradients_have_the_stated_probability():
    g = reddi.gradients("stochastic", 200_000, seed=1)
    assert np.mean(g == 1010) == pytest.approx(0.01, abs=0.001)
    assert reddi.EXPECTED_GRAD == pytest.approx(0.2)  # E[g] > 0: x = −1 optimal


def test_first_steps_match_hand_computed_adam_and_amsgrad():
    """Two steps of g = (3, −1), ρ₁ = 0, ρ₂ = 0.1, no bias correction, α_t = 1/√t."""
    g = np.array([[3.0], [-1.0]])
    for ams in (False, True):
        xs = reddi.optimize(g, [0.0], [0.1], amsgrad=ams)
        v1 = 0.9 * 9
        x2 = np.clip(-3 / np.sqrt(v1 + 1e-8), -1, 1)  # = −1.054… → clipped to −1
        assert xs[1, 0] == pytest.approx(x2)
    # the third iterate differs: Adam's v shrinks to 0.1·8.1 + 0.9 = 1.71, AMSGrad keeps 8.1
    g3 = np.array([[3.0], [-1.0], [-1.0]])
    adam = reddi.optimize(g3, [0.0], [0.1], amsgrad=False)[2, 0]
    ams = reddi.optimize(g3, [0.0], [0.1], amsgrad=True)[2, 0]
    assert adam == pytest.approx(-1 + 1 / np.sqrt(2) / np.sqrt(1.71 + 1e-8))
    assert ams == pytest.approx(-1 + 1 / np.sqrt(2) / np.sqrt(8.1 + 1e-8))


def test_projection_keeps_iterates_in_the_box():
    xs = reddi.optimize(np.full((50, 1), -10.0), [0.9], [0.99], amsgrad=False)
    assert xs.max() == 1.0 and xs.min() >= 0.0


@pytest.mark.slow
def test_quick_claims_hold(tmp_path):
    result = reddi.run(tmp_path, quick=True)
    assert all(result.claims.values()), result.claims
    assert (tmp_path / "repro-reddi-amsgrad.png").stat().st_size > 10_000
