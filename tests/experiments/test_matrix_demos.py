"""The numbers docs/matrix.md reads off its figures (steplab.experiments.matrix), and the
figures themselves (steplab.viz.matrix) draw."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.experiments import matrix as demos


def test_muon_figure_numbers():
    data = demos.muon_singular_values()
    assert data["before"].max() / data["before"].min() > 300  # 1 down to 0.003
    assert 0.68 <= data["after"].min() and data["after"].max() <= 1.2


def test_adafactor_figure_numbers():
    data = demos.adafactor_moments()
    assert data["numbers"] == {"Adam r": 1536, "Adafactor R + C": 80}
    ratio = data["factored"] / data["full"]
    assert 0.5 < np.median(ratio) < 2.0  # the rank-one picture follows the full moment


def test_race_numbers_and_best_step_sizes_inside_their_grids():
    race = demos.preconditioned_race()
    final = {name: curve[-1] for name, curve in race["curves"].items()}
    assert 10 < final["sgd"] < 25
    assert 0.5 < final["adam"] < 3 and 0.5 < final["muon"] < 3
    assert final["shampoo"] < 1e-3
    assert 1e-3 < final["soap"] < 0.1
    for name, (_, grid) in demos.RACE.items():
        assert grid[0] < race["lr"][name] < grid[-1]
    np.testing.assert_allclose(race["preconditioned"] / race["preconditioned"].max(), 1, atol=1e-3)


def test_figures_draw():
    pytest.importorskip("matplotlib")
    from steplab.viz.matrix import all_figures

    data = {
        "muon": demos.muon_singular_values(),
        "adafactor": demos.adafactor_moments(steps=20),
        "race": demos.preconditioned_race(steps=10),
    }
    figures = all_figures(data)
    assert [len(f.axes) for f in figures.values()] == [1, 4, 2]  # (+ the colorbar)
