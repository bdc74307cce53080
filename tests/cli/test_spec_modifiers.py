"""Optimizer specs name the registered newcomers and the cautious modifier
(``'adamw+cautious:lr=1e-3'``, ``'schedule_free_adamw'``), with the same validation and
"did you mean" errors as every other spec."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab.cli import spec
from steplab.optim.modifiers import Cautious


def _run(optimizer, steps=6):
    theta = np.linspace(-1.0, 1.0, 9)
    state = optimizer.init(theta)
    for t in range(steps):
        optimizer.step(theta, np.cos(3 * theta + t) + 0.5 * theta, state)
    return theta


def test_a_modifier_wraps_the_optimizer_the_spec_names():
    parsed = spec.parse("adamw+cautious@torch:lr=1e-3,rho1=0.8")
    assert isinstance(parsed.optimizer, Cautious)
    assert parsed.name == "adamw+cautious" and parsed.optimizer.name == "adamw+cautious"
    expected = Cautious(base=sl.AdamW.like("torch", lr=1e-3, rho1=0.8))
    np.testing.assert_array_equal(_run(parsed.optimizer), _run(expected))
    assert parsed.config()["base"]["lr"] == 1e-3


@pytest.mark.parametrize("name", ["adopt", "ademamix", "schedule_free_sgd", "schedule_free_adamw"])
def test_the_registered_newcomers_are_named_like_every_optimizer(name):
    parsed = spec.parse(f"{name}:lr=0.01")
    assert type(parsed.optimizer) is sl.OPTIMIZERS[name] and parsed.optimizer.lr == 0.01


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adamw+cautios:lr=1e-3", "unknown modifier 'cautios'.*did you mean 'cautious'"),
        ("adamx+cautious", "unknown optimizer 'adamx'.*did you mean"),
        ("adamw+cautious:lrr=1", "adamw has no hyperparameter 'lrr'.*did you mean 'lr'"),
        ("adamw+cautious:lr=-1", r"lr must be in \(0, inf\).*adamw\+cautious:lr=-1"),
        ("adamw+cautious@nope", "adamw has no preset 'nope'"),
        ("shedule_free_adamw", "did you mean 'schedule_free_adamw'"),
        ("schedule_free_adamw:rho1=1", r"rho1 must be in \(0, 1\)"),
        ("adamw+", "unknown modifier ''"),
    ],
)
def test_bad_specs_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        spec.parse(text)


def test_element_wise_paths_refuse_a_whole_array_modifier_by_name():
    from steplab import fast

    cautious = spec.parse("adamw+cautious").optimizer
    with pytest.raises(ValueError, match="adamw\\+cautious: its rule is whole_array"):
        fast.sweep("rosenbrock", cautious, np.zeros((2, 2)), 3)


def test_the_run_loop_refuses_a_whole_array_modifier_by_name():
    cautious = spec.parse("adamw+cautious").optimizer
    with pytest.raises(ValueError, match="adamw\\+cautious: its rule is whole_array"):
        sl.minimize("rosenbrock", cautious, 3)
