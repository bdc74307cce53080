"""steplab's own loop on MNIST-1D (shuffled batches, 10 % held out for validation): softmax
regression reaches the linear baseline's level and an MLP clearly beats it.

These check the loop, not the publication: the faithful rerun of the mnist1d repository's
recipe is ``steplab reproduce mnist1d`` (tests/reproductions/test_ml_reproductions.py).
"""

import pytest

import steplab as sl


@pytest.mark.slow
def test_softmax_regression_reaches_the_linear_baseline():
    p = sl.problems.softmax_regression("mnist1d")
    run = sl.minimize(p, sl.Adam(lr=0.01), epochs=30, batch_size=100, seed=0)
    assert 0.27 <= run.metrics["test_accuracy"] <= 0.40
    assert run.metrics["train_accuracy"] > 0.33


@pytest.mark.slow
def test_mlp_clearly_beats_the_linear_baseline():
    p = sl.problems.mlp("mnist1d", hidden=(100, 100))
    run = sl.minimize(p, sl.Adam(lr=0.01), steps=1500, batch_size=100, seed=0, eval_every=500)
    assert run.metrics["test_accuracy"] >= 0.52
