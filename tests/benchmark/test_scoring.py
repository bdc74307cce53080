"""AlgoPerf-style scoring and tuning on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steplab.benchmark import profile, scoring, tuning

INF = math.inf


def test_time_to_target_interpolates_between_evaluations():
    steps = [0, 100, 200, 300]
    acc = [0.1, 0.5, 0.7, 0.9]
    # 0.6 lies half way between 0.5 (step 100) and 0.7 (step 200).
    assert scoring.time_to_target(steps, acc, 0.6, maximize=True) == pytest.approx(150.0)
    assert scoring.time_to_target(steps, acc, 0.7, maximize=True) == pytest.approx(200.0)
    # A loss falling 2.0 → 1.0 between steps 100 and 200 reaches 1.25 at 175.
    loss = [3.0, 2.0, 1.0, 0.5]
    assert scoring.time_to_target(steps, loss, 1.25, maximize=False) == pytest.approx(175.0)
    # The same run in wall seconds: the same fraction of the interval.
    secs = [0.0, 1.0, 3.0, 4.0]
    assert scoring.time_to_target(secs, loss, 1.25, maximize=False) == pytest.approx(2.5)
    # Met at the first evaluation: that evaluation's time.
    assert scoring.time_to_target([10, 20], [0.9, 0.95], 0.8, maximize=True) == 10.0


def test_never_reached_and_diverged_are_inf():
    assert scoring.time_to_target([0, 1, 2], [0.1, 0.2, 0.3], 0.5, maximize=True) == INF
    # Diverged (NaN) before reaching: later values don't count.
    got = scoring.time_to_target([0, 1, 2], [3.0, math.nan, 0.1], 0.5, maximize=False)
    assert got == INF
    with pytest.raises(ValueError, match="equal length"):
        scoring.time_to_target([0, 1], [0.1], 0.5, maximize=True)


def test_study_and_median_over_studies():
    assert scoring.study_time([300.0, INF, 120.0, math.nan]) == 120.0
    assert scoring.study_time([INF, INF]) == INF
    assert scoring.median_over_studies([5.0, 1.0, 3.0]) == 3.0
    assert scoring.median_over_studies([5.0, 1.0, INF]) == 5.0  # one failure of three
    assert scoring.median_over_studies([1.0, INF, INF]) == INF  # most failed: no score
    assert scoring.median_over_studies([1.0, 3.0]) == 2.0
    assert scoring.median_over_studies([1.0, INF]) == INF


def test_profiles_and_integrated_score_by_hand():
    # Workloads × submissions; ties share ratio 1; a failure is inf.
    times = [[100.0, 200.0, 100.0], [50.0, 100.0, INF], [INF, 30.0, 300.0]]
    np.testing.assert_array_equal(profile.ratios(times), [[1, 2, 1], [1, 2, INF], [INF, 1, 10]])
    rho = profile.profile(times, [1.0, 2.0, 4.0])
    np.testing.assert_allclose(rho, [[2 / 3] * 3, [1 / 3, 1, 1], [1 / 3, 1 / 3, 1 / 3]])
    # ∫₁⁴ ρ / 3: submission 0 is within factor 1 on two workloads → (3 + 3 + 0)/3/3 = 2/3;
    # submission 1: ratios 2, 2, 1 → (2 + 2 + 3)/3/3 = 7/9; submission 2: (3 + 0 + 0)/9.
    np.testing.assert_allclose(profile.integrated_score(times), [2 / 3, 7 / 9, 1 / 3])
    # The closed form equals a fine numerical integral of the step function.
    taus = np.linspace(1, 4, 300001)
    numeric = np.trapezoid(profile.profile(times, taus), taus, axis=1) / 3
    np.testing.assert_allclose(profile.integrated_score(times), numeric, atol=1e-4)
    # A workload no one finished counts against everyone.
    np.testing.assert_array_equal(profile.integrated_score([[INF, INF]]), [0, 0])
    with pytest.raises(ValueError, match="> 0"):
        profile.ratios([[0.0, 1.0]])


def test_halton_matches_the_definition_and_scipy():
    assert tuning.radical_inverse(6, 2) == 0.375  # 110₂ → 0.011₂
    assert tuning.radical_inverse(5, 3) == pytest.approx(7 / 9)  # 12₃ → 0.21₃
    qmc = pytest.importorskip("scipy.stats.qmc")
    ours = tuning.halton(8, 2)
    theirs = qmc.Halton(d=2, scramble=False).random(9)[1:]
    np.testing.assert_allclose(ours, theirs)
    # Scrambled: Owen's digit permutations, drawn as scipy draws them, point for point.
    for seed in (0, 1, 2, 10007):
        scrambled = tuning.halton(12, 3, seed=seed)
        theirs = qmc.Halton(d=3, scramble=True, seed=seed).random(12)
        np.testing.assert_array_equal(scrambled, theirs)
    # By hand: with the permutations of base 2 all swaps, 0 → 0.111…₂ and 1 → 0.0111…₂.
    swaps = np.array([[1, 0]] * 53)
    assert tuning.scrambled_radical_inverse(0, 2, swaps) == pytest.approx(1.0)
    assert tuning.scrambled_radical_inverse(1, 2, swaps) == pytest.approx(0.5)
    assert tuning.scrambled_radical_inverse(2, 2, swaps) == pytest.approx(0.75)


def test_external_tuning_draws_are_seeded_per_study_and_inside_the_space():
    qmc = pytest.importorskip("scipy.stats.qmc")
    space = tuning.search_space("adam")
    assert space[0].low == pytest.approx(1e-4) and space[0].high == pytest.approx(0.1)
    a = tuning.draw(space, 4, study=0, seed=1)
    assert a == tuning.draw(space, 4, study=0, seed=1)  # same seed, same trials
    assert a != tuning.draw(space, 4, study=1, seed=1)  # another study, other trials
    lrs = [t["lr"] for t in a]
    assert all(1e-4 <= lr <= 0.1 for lr in lrs)
    # Each study is scipy's scrambled Halton sequence under its own seed, mapped to log α.
    for study in range(3):
        u = qmc.Halton(d=1, scramble=True, seed=tuning.study_seed(1, study)).random(4)[:, 0]
        drawn = [t["lr"] for t in tuning.draw(space, 4, study=study, seed=1)]
        np.testing.assert_allclose(drawn, 1e-4 * 1e3**u, rtol=1e-12)
    # The draw depends on the space alone: optimizers with the same default α try the same α.
    assert tuning.trials_for("adamw", "external", 4, study=0, seed=1) == a
    # Quasi-random: 4 scrambled base-2 points lie one in each quarter of log α
    # (random points would cluster).
    u = [math.log(lr / 1e-4) / math.log(1e3) for lr in lrs]
    assert sorted(int(4 * x) for x in u) == [0, 1, 2, 3]
    assert tuning.trials_for("adam", "self", 4, study=0, seed=1) == [{}]
    with pytest.raises(ValueError, match="external, self"):
        tuning.trials_for("adam", "grid", 4, study=0, seed=1)
    with pytest.raises(ValueError, match="positive integer"):
        tuning.draw(space, 0, study=0, seed=1)
    text = tuning.budget_text("external", 4, 3, ["sgd", "adam"])
    assert "4 quasi-random" in text and "× 3 studies" in text and "sgd: lr ~ logU" in text
