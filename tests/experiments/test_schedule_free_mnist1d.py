"""The claims docs/modern.md makes from the MNIST-1D Schedule-Free figure: the figure's
own run (5 seeds, 2000 steps, the full step-size grid), so the claims are its numbers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("mnist1d")  # the data set's generator (an extra)

from steplab.experiments import schedule_free_mnist1d as study  # noqa: E402


@pytest.fixture(scope="module")
def comparison():
    return study.compute()  # the figure's run


def test_schedule_free_needs_no_schedule_on_mnist1d(comparison):
    claims = study.claims(comparison)
    assert all(claims.values()), claims


def test_the_claims_can_fail(comparison):
    constant, cosine, free = study.METHODS
    swapped = dataclasses.replace(
        comparison,
        train_loss={**comparison.train_loss, free: comparison.train_loss[constant]},
    )
    claims = study.claims(swapped)
    assert not any(v for k, v in claims.items() if "Schedule-Free" in k)
    at_edge = dataclasses.replace(comparison, lr={**comparison.lr, free: comparison.grid[-1]})
    assert not study.claims(at_edge)["no chosen step size lies at the grid's edge"]


def test_every_seed_and_evaluation_is_recorded(comparison):
    for values in (*comparison.train_loss.values(), *comparison.test_accuracy.values()):
        assert values.shape == (study.FULL.seeds, study.FULL.steps // study.EVAL_EVERY + 1)
        assert np.isfinite(values).all()
