"""Adam's bias correction: the first step by hand, and the reduced reproduction."""

import numpy as np
import pytest

from steplab.reproductions import bias_correction as bc


@pytest.mark.parametrize("rho2", [0.99, 0.999, 0.9999])
def test_first_uncorrected_step_is_scaled_by_the_hand_derived_factor(rho2):
    # s = (1 − ρ₁)g, r = (1 − ρ₂)g² ⇒ |Δθ| = α(1 − ρ₁)/√(1 − ρ₂); corrected: α
    assert bc.first_step_ratio(rho2) == pytest.approx(0.1 / np.sqrt(1 - rho2), rel=1e-9)


@pytest.mark.slow
def test_quick_reproduction_claims_hold(tmp_path):
    result = bc.run(tmp_path, quick=True)
    assert len(result.claims) == 3 and all(result.claims.values()), result.claims
    assert (tmp_path / "repro-bias-correction.png").exists()


def test_sweep_covers_the_papers_grid():
    """§6.4: β₁ ∈ {0, 0.9}, β₂ ∈ {0.99, 0.999, 0.9999}, log₁₀ α ∈ {−5, …, −1}."""
    assert bc.RHO1S == (0.0, 0.9) and bc.RHO2S == (0.99, 0.999, 0.9999)
