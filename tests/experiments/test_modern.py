"""The claims docs/modern.md makes from its figures' runs (steplab.experiments.modern)."""

from __future__ import annotations

import numpy as np

from steplab.experiments import modern


def test_schedule_free_matches_the_cosine_schedule_without_knowing_the_horizon():
    curves = modern.schedule_free_vs_cosine()  # 5 seeds, 400 steps: the figure's run
    final = {name: losses[:, -1] for name, losses in curves.losses.items()}
    constant, cosine, free = (final[k] for k in curves.losses)
    assert free.mean() < 0.5 * constant.mean()  # far below the constant step
    assert abs(free.mean() - cosine.mean()) < cosine.std()  # level with the schedule


def test_ema_is_closer_to_the_minimum_than_the_iterates():
    cloud = modern.ema_on_noisy_quadratic()
    late = slice(100, None)
    iterate = np.linalg.norm(cloud.iterates[late], axis=1).mean()
    average = np.linalg.norm(cloud.averages[late], axis=1).mean()
    assert average < 0.6 * iterate


def test_the_cautious_mask_stops_momentums_overshoot_but_escapes_later():
    race = modern.cautious_saddle()
    assert race.paths["momentum"][:, 0].min() < -0.5  # heavy ball swings through x = 0
    assert race.paths["cautious momentum"][:, 0].min() > -0.2
    assert race.escape_step["cautious momentum"] > race.escape_step["momentum"]
    assert race.escape_step["cautious adam"] > race.escape_step["adam"]
