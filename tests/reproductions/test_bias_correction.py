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
    assert len(result.claims) == 4 and all(result.claims.values()), result.claims
    assert (tmp_path / "repro-bias-correction.png").exists()
