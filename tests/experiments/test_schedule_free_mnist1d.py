"""The claims docs/modern.md makes from the MNIST-1D Schedule-Free figure, on the study's
quick size (3 seeds, 600 steps, the same step-size grids; the figure's run is 5 seeds and
2000 steps: ``steplab demo --only schedule_free_mnist1d``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("mnist1d")  # the data set's generator (an extra)

from steplab.experiments import schedule_free_mnist1d as study  # noqa: E402


@pytest.fixture(scope="module")
def comparison():
    return study.compute(quick=True)


def test_schedule_free_needs_no_schedule_on_mnist1d(comparison):
    claims = study.claims(comparison)
    assert all(claims.values()), claims


def test_the_claims_can_fail(comparison):
    constant, cosine, free = study.METHODS
    swapped = dataclasses.replace(
        comparison,
        train_loss={**comparison.train_loss, free: comparison.train_loss[constant]},
    )
    below_constant = next(k for k in study.claims(swapped) if "constant step" in k)
    assert not study.claims(swapped)[below_constant]
    at_edge = dataclasses.replace(comparison, lr={**comparison.lr, free: study.GRIDS[free][-1]})
    assert not study.claims(at_edge)["no chosen step size lies at its grid's edge"]


def test_every_seed_and_evaluation_is_recorded(comparison):
    for values in (*comparison.train_loss.values(), *comparison.test_accuracy.values()):
        assert values.shape == (study.QUICK.seeds, study.QUICK.steps // study.EVAL_EVERY + 1)
        assert np.isfinite(values).all()


def test_the_figure_shows_every_method_with_its_final_values(comparison):
    fig = study.figure(comparison)
    loss, accuracy = fig.axes[:2]
    for ax in (loss, accuracy):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert [label.split(",")[0] for label in labels] == ["constant", "cosine", "Schedule-Free"]
        assert all("±" in label for label in labels)
