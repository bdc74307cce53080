"""The loop judges an optimizer with an evaluation point there by itself: Schedule-Free's
x, the average of EMA/SWA, Lookahead's slow weights. The recorded losses, the metrics, the
stopping rules and run.x are at that point (computed here by hand from the NumPy core);
the gradients stay at the point it trains at."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab.cli import spec
from steplab.optim import EMA, SGD, Lookahead, ScheduleFreeAdamW, ScheduleFreeSGD


def by_hand(problem, optimizer, steps):
    """The losses at the evaluation point and at the training point, row by row, and the
    last evaluation point: the NumPy core stepped by hand."""
    theta = problem.initial_point(0).astype(np.float64)
    state = optimizer.init(theta)
    at_eval, at_train = [], []
    for t in range(steps + 1):
        loss, grad = problem.value_and_grad(theta)
        x = optimizer.eval_params(theta, state)
        at_eval.append(float(problem.value(x)))
        at_train.append(float(loss))
        if t < steps:
            optimizer.step(theta, grad, state)
    return np.array(at_eval), np.array(at_train), x, theta


def BOWL():  # noqa: N802 - a constant made fresh
    return sl.problems.expression("x**2 + 10*y**2 + x*y")


OPTIMIZERS = {
    "schedule_free_sgd": ScheduleFreeSGD(lr=0.02, rho=0.9),
    "schedule_free_adamw": ScheduleFreeAdamW(lr=0.05),
    "sgd+ema": EMA(base=SGD(lr=0.02), decay=0.9),
    "sgd+lookahead": Lookahead(base=SGD(lr=0.02), sync_period=3, slow_step_size=0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_recorded_losses_and_x_are_at_the_evaluation_point(name):
    problem = BOWL()
    optimizer = OPTIMIZERS[name]
    at_eval, at_train, x, _ = by_hand(problem, optimizer, 40)
    assert np.max(np.abs(at_eval - at_train)) > 1e-3  # the two points differ: the test can fail
    run = sl.minimize(problem, optimizer, steps=40)
    np.testing.assert_allclose(run.history["loss"], at_eval, rtol=1e-14)
    np.testing.assert_allclose(run.x, x, rtol=1e-14)
    assert run.final_loss == pytest.approx(at_eval[-1], rel=1e-14)


def test_the_stopping_rules_look_at_the_evaluation_point():
    problem, optimizer = BOWL(), OPTIMIZERS["schedule_free_sgd"]
    at_eval, at_train, _, _ = by_hand(problem, optimizer, 200)
    target = float(np.quantile(at_eval, 0.3))
    first = int(np.argmax(at_eval <= target))
    assert first != int(np.argmax(at_train <= target))  # the training point would stop elsewhere
    run = sl.minimize(problem, optimizer, steps=200, target_loss=target)
    assert (run.status, run.steps) == ("target_reached", first)


def test_metrics_of_a_data_problem_are_at_the_evaluation_point():
    problem = sl.problems.get("logistic_regression")
    optimizer = ScheduleFreeAdamW(lr=0.05)
    _, _, x, y = by_hand(problem, optimizer, 10)
    at_x, at_y = problem.evaluate(x), problem.evaluate(y)
    assert abs(at_x["val_loss"] - at_y["val_loss"]) > 1e-4  # the test can fail
    run = sl.minimize(problem, optimizer, steps=10, eval_every=5)
    assert run.metrics == pytest.approx({k: float(v) for k, v in at_x.items()}, rel=1e-12)
    last = list(run.history["step"]).index(10)
    assert run.history["val_loss"][last] == pytest.approx(at_x["val_loss"], rel=1e-12)


def test_a_spec_with_an_averaging_modifier_runs_in_the_loop():
    problem = BOWL()
    parsed = spec.parse("sgd+ema:decay=0.9,lr=0.02").optimizer
    at_eval, *_ = by_hand(problem, parsed, 25)
    run = sl.minimize(problem, parsed, steps=25, seed=[0, 1])  # K runs by seeds
    for each in run:
        np.testing.assert_allclose(each.history["loss"], at_eval, rtol=1e-14)
        assert each.optimizer["name"] == "sgd+ema" and each.optimizer["decay"] == 0.9


def test_a_wrapper_with_hyperparameter_arrays_is_refused():
    wrapper = EMA(base=SGD(lr=np.array([0.01, 0.02])), decay=0.9)
    with pytest.raises(ValueError, match="without hyperparameter arrays"):
        sl.minimize(BOWL(), wrapper, steps=3)
