"""The runner's fixes, on hand-computed cases: the edge flag for higher-is-better metrics,
the summary naming chosen step sizes at the grid's edge, the axis label, bootstrap
intervals and the paired sign-flip test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steplab.benchmark import stats
from steplab.benchmark.protocol import Metric, ProblemResult
from steplab.benchmark.report import format_table, metric_label, summary_rows
from steplab.benchmark.suites import BenchmarkProblem
from steplab.run.records import Table, best_at_edge


def test_best_at_edge_respects_higher_is_better():
    accuracies = [0.1, 0.3, 0.5, 0.4, 0.2]
    assert best_at_edge(accuracies, maximize=True) == []  # the best, 0.5, is inside
    assert best_at_edge(accuracies) == ["axis 0"]  # as losses, the best 0.1 is first
    assert best_at_edge([0.2, 0.3, 0.9], maximize=True) == ["axis 0"]
    assert best_at_edge([np.nan, 0.3, 0.2], maximize=True) == []  # diverged is not best


def test_metric_label_never_says_final_twice():
    assert metric_label("final_loss") == "final loss"
    assert metric_label("val_accuracy") == "final val accuracy"


def _result(select_rows, grid, maximize):
    """A two-optimizer ProblemResult built by hand (no training)."""
    metric = (
        Metric("val_accuracy", True, "test_loss", "test_accuracy")
        if maximize
        else Metric("final_loss", False, "final_loss", None)
    )
    tuning, best = [], {}
    for name, values in select_rows.items():
        for v in values:
            tuning.append({"status": "ok", metric.select: v, "test_loss": 1.0})
        pick = int(np.argmax(values) if maximize else np.argmin(values))
        best[name] = grid[pick]
    reruns = []
    for _name in select_rows:
        for loss, acc in [(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)]:
            reruns.append(
                {"status": "ok", "final_loss": loss, "test_loss": loss, "test_accuracy": acc}
            )
    return ProblemResult(
        spec=BenchmarkProblem("p", "rosenbrock"),
        info={},
        metric=metric,
        optimizers=list(select_rows),
        lr_grid=np.asarray(grid),
        tuning=Table(tuning),
        best_lr=best,
        reruns=Table(reruns),
        seconds=0.0,
    )


def test_summary_names_chosen_step_sizes_at_the_edge():
    grid = [0.01, 0.1, 1.0]
    acc = _result({"a": [0.1, 0.5, 0.3], "b": [0.2, 0.3, 0.9]}, grid, maximize=True)
    rows = summary_rows([acc])
    assert [r["lr_at_edge"] for r in rows] == [False, True]
    text = format_table(rows)
    assert "1 of 2 chosen step sizes are at the grid's edge" in text and "p/b" in text
    assert "1 (edge)" in text
    loss = _result({"a": [3.0, 1.0, 2.0], "b": [4.0, 5.0, 6.0]}, grid, maximize=False)
    assert [r["lr_at_edge"] for r in summary_rows([loss])] == [False, True]


def test_table_entries_carry_the_bootstrap_interval():
    rows = summary_rows([_result({"a": [0.1, 0.5, 0.3]}, [0.01, 0.1, 1.0], maximize=True)])
    row = rows[0]
    assert row["loss_mean"] == pytest.approx(2.0)
    lo, hi = stats.bootstrap_ci([1.0, 2.0, 3.0])
    assert (row["loss_ci_low"], row["loss_ci_high"]) == (lo, hi)
    # Means of 3 resampled values of {1, 2, 3} lie in [1, 3] in steps of 1/3.
    assert 1.0 <= lo < 2.0 < hi <= 3.0
    assert f"2 [{lo:.3g}, {hi:.3g}]" in format_table(rows)


def test_bootstrap_ci_by_hand():
    assert stats.bootstrap_ci([5.0]) == (5.0, 5.0)
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    # Two values {0, 1}: the resampled mean is 0, 1/2 or 1 with probabilities 1/4, 1/2,
    # 1/4, so the 2.5 % and 97.5 % quantiles are 0 and 1.
    assert stats.bootstrap_ci([0.0, 1.0], resamples=4000) == (0.0, 1.0)
    a = np.random.default_rng(1).normal(10.0, 1.0, size=200)
    lo, hi = stats.bootstrap_ci(a)
    half = 1.96 / math.sqrt(200)  # the normal-theory interval of the mean, σ = 1
    assert lo == pytest.approx(a.mean() - half, abs=0.05)
    assert hi == pytest.approx(a.mean() + half, abs=0.05)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        stats.bootstrap_ci([])


def test_paired_test_by_hand():
    # Differences (−1, −2, −3): of the 8 sign patterns only all-minus and all-plus reach
    # |mean| 2, so p = 2/8; with 3 seeds nothing is significant at 5 %.
    r = stats.paired_test([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert r.p_value == pytest.approx(0.25) and r.mean_difference == pytest.approx(-2.0)
    assert not r.significant and r.verdict().startswith("not significant (p=0.25, n=3)")
    # Six seeds all better by about 1: p = 2/64 < 0.05, lower is better.
    a, b = np.arange(6.0), np.arange(6.0) + [1.0, 1.1, 0.9, 1.2, 1.0, 0.8]
    r = stats.paired_test(a, b)
    assert r.p_value == pytest.approx(2 / 64) and r.significant
    assert r.verdict("lower") == "better" and r.verdict("higher") == "worse"
    # A failed pair is dropped; no pairs at all is not significant.
    assert stats.paired_test([1.0, math.inf], [2.0, 3.0]).n == 1
    assert not stats.paired_test([math.inf], [1.0]).significant
