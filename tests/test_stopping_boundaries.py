"""The stopping rules at their boundaries, as their docstring states them: loss ≤
``target_loss``, |loss change over ``window`` steps| ≤ ``ftol`` from row ``window`` on,
``time_budget`` seconds elapsed. (Mutation study, issue 27: ``<=`` → ``<`` and ``>=`` →
``>`` at these three places survived the suite.)"""

from __future__ import annotations

import numpy as np

from steplab.run.stopping import StoppingRules


def reasons(rules: StoppingRules, *, t: int, loss, recent=None, elapsed: float = 0.0):
    loss = np.asarray(loss, dtype=np.float64)
    window = rules.window + 1
    return list(
        rules.reasons(
            t=t,
            loss=loss,
            grad_norm=np.ones_like(loss),
            finite=np.ones(loss.shape, dtype=bool),
            limits=np.full(loss.shape, 1e300),
            recent=np.zeros((window, *loss.shape)) if recent is None else recent,
            elapsed=elapsed,
        )
    )


def test_a_loss_equal_to_the_target_has_reached_it():
    rules = StoppingRules(max_steps=100, target_loss=0.5)
    assert reasons(rules, t=3, loss=[0.5, 0.5000001, 0.4]) == [
        "target_reached",
        "",
        "target_reached",
    ]


def test_ftol_applies_from_row_window_on_with_the_oldest_loss_in_the_buffer():
    rules = StoppingRules(max_steps=100, ftol=0.1, window=3)
    recent = np.zeros((4, 2))
    recent[0] = [1.0, 1.0]  # row 0 is the oldest at row 3 (at (3 + 1) mod 4)
    # |1.05 - 1| <= 0.1 converges; |2 - 1| does not
    assert reasons(rules, t=3, loss=[1.05, 2.0], recent=recent) == ["converged", ""]
    assert reasons(rules, t=2, loss=[1.05, 2.0], recent=recent) == ["", ""]  # too early


def test_the_time_budget_is_spent_when_exactly_that_much_has_elapsed():
    rules = StoppingRules(max_steps=100, time_budget=2.0)
    assert reasons(rules, t=1, loss=[1.0], elapsed=2.0) == ["time_budget"]
    assert reasons(rules, t=1, loss=[1.0], elapsed=1.999) == [""]
