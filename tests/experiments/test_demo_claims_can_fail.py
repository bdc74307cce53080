"""Every claim of ``steplab demo`` can fail: break the setup a lesson is about (swap its
optimizers, move its step-size grid, change ρ, undo the correction) and run the lesson's
``--quick`` version: the claims about the broken part must come out False."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab.experiments import bias_correction, quadratic, saddle, sensitivity, step_sizes

pytestmark = pytest.mark.slow


def failing(report) -> set[str]:
    return {claim for claim, held in report.claims.items() if not held}


def test_quadratic_claims_fail_when_momentum_and_adam_are_sgd(tmp_path, monkeypatch):
    sgd = sl.SGD(lr=quadratic.SGD_LR)
    monkeypatch.setitem(quadratic.OPTIMIZERS, "momentum", sgd)
    monkeypatch.setitem(quadratic.OPTIMIZERS, "adam", sgd)
    report = quadratic.run(tmp_path, quick=True)
    assert failing(report) == set(report.claims), report.claims


def test_saddle_claims_fail_with_sgd_everywhere_and_the_small_shared_step(tmp_path, monkeypatch):
    for name in saddle.OPTIMIZERS:
        monkeypatch.setitem(saddle.OPTIMIZERS, name, sl.SGD(lr=saddle.LR))
    monkeypatch.setattr(saddle, "LECTURE_LR", saddle.LR)  # AdaGrad is slow at α = 0.05
    report = saddle.run(tmp_path, quick=True)
    assert failing(report) == set(report.claims), report.claims


def test_sensitivity_claims_fail_on_a_grid_too_narrow_to_matter(tmp_path, monkeypatch):
    monkeypatch.setattr(sensitivity, "LR_RANGE", (-2.0, -1.98))
    report = sensitivity.run(tmp_path, quick=True)
    assert failing(report) == set(report.claims), report.claims


def test_adaptive_step_size_claims_fail_when_the_curvatures_swap(tmp_path, monkeypatch):
    monkeypatch.setattr(step_sizes, "SCALES", step_sizes.SCALES[::-1])
    report = step_sizes.run_adaptive(tmp_path, quick=True)
    assert failing(report) == set(report.claims), report.claims


def test_adagrad_decay_claims_fail_when_the_methods_swap(tmp_path, monkeypatch):
    monkeypatch.setitem(step_sizes.DECAY, "adagrad", sl.RMSProp(lr=step_sizes.DECAY_LR))
    monkeypatch.setitem(step_sizes.DECAY, "rmsprop", sl.AdaGrad(lr=step_sizes.DECAY_LR))
    report = step_sizes.run_decay(tmp_path, quick=True)
    assert failing(report) == set(report.claims), report.claims


def test_bias_correction_claims_fail_without_bias_and_without_correction(tmp_path, monkeypatch):
    original = bias_correction.moments_on_noisy_gradient

    def uncorrected(steps, seed=0):
        t, s, r, _, _ = original(steps, seed)
        return t, s, r, s, r  # the "corrected" moments are the raw ones

    monkeypatch.setattr(bias_correction, "moments_on_noisy_gradient", uncorrected)
    report = bias_correction.run(tmp_path, quick=True)
    assert failing(report) == {c for c in report.claims if c.startswith("corrected")}
    monkeypatch.setattr(bias_correction, "moments_on_noisy_gradient", original)
    monkeypatch.setattr(bias_correction, "RHO1", 0.0)  # s = ĝ: no bias; formula 1/√(1−ρ₂)
    monkeypatch.setattr(bias_correction, "RHO2", 0.5)  # r catches up within a few steps
    report = bias_correction.run(tmp_path, quick=True)
    expected = {c for c in report.claims if c.startswith(("raw", "the uncorrected"))}
    assert failing(report) == expected, report.claims
    assert np.isfinite(report.data.s).all()
