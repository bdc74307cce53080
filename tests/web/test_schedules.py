"""Step-size schedules in the web lab's API: a run or sweep with a schedule gives the
numbers of the Python API with that schedule, and a bad schedule is a 422 whose message
names the allowed schedules or parameters."""

from __future__ import annotations

import time

import numpy as np
import pytest

import steplab as sl
from steplab import schedules
from steplab.web import models
from steplab.web.app import Limits, create_app

ROSENBROCK = {"name": "rosenbrock"}


def post(client, path, body, status=200):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def adam(schedule, lr=0.05):
    return {"name": "adam", "hyperparameters": {"lr": lr}, "schedule": schedule}


# (the request's schedule, the Python API's with α = 0.05, the legend label's ending)
CASES = [
    ({"name": "inverse_sqrt"}, schedules.inverse_sqrt_schedule(0.05), "/√t"),
    (
        {"name": "step", "transition_steps": 10, "decay_rate": 0.5},
        schedules.exponential_decay(0.05, transition_steps=10, decay_rate=0.5, staircase=True),
        " ×0.5 every 10 steps",
    ),
    (
        {"name": "step", "transition_steps": 7},  # decay_rate defaults to 0.5
        schedules.exponential_decay(0.05, transition_steps=7, decay_rate=0.5, staircase=True),
        " ×0.5 every 7 steps",
    ),
    (
        {"name": "cosine", "decay_steps": 40},
        schedules.cosine_decay_schedule(0.05, 40),
        " cosine over 40 steps",
    ),
    (
        {"name": "cosine", "decay_steps": 30, "alpha": 0.1},
        schedules.cosine_decay_schedule(0.05, 30, alpha=0.1),
        " cosine to 0.1α over 30 steps",
    ),
    (
        {"name": "warmup_cosine", "warmup_steps": 5, "decay_steps": 40, "alpha": 0.2},
        schedules.warmup_cosine_decay_schedule(0.0, 0.05, 5, 40, end_value=0.2 * 0.05),
        " warm-up 5 + cosine to 0.2α to step 40",
    ),
]


def test_meta_lists_the_schedules_and_their_parameters(client):
    meta = client.get("/api/meta").json()
    listed = {s["name"]: s for s in meta["schedules"]}
    assert list(listed) == ["constant", "inverse_sqrt", "step", "cosine", "warmup_cosine"]
    assert [s["label"] for s in meta["schedules"]] == [
        "constant",
        "1/√t",
        "step decay",
        "cosine",
        "warm-up + cosine",
    ]
    step = {p["name"]: p for p in listed["step"]["parameters"]}
    assert step["transition_steps"] == {
        "name": "transition_steps",
        "title": "every",
        "doc": "steps between two decays",
        "kind": "int",
        "default": None,
        "of_steps": 0.25,
        "ge": 1,
        "le": models.MAX_SCHEDULE_STEPS,
    }
    assert step["decay_rate"]["default"] == 0.5 and step["decay_rate"]["gt"] == 0
    warmup = {p["name"]: p for p in listed["warmup_cosine"]["parameters"]}
    assert warmup["warmup_steps"]["ge"] == 0 and warmup["alpha"]["le"] == 1
    assert listed["constant"]["parameters"] == [] and "``" not in listed["step"]["doc"]
    assert meta["limits"]["scheduled_sweep_work"] == models.MAX_SCHEDULED_SWEEP_WORK


@pytest.mark.parametrize(("request_schedule", "schedule", "ending"), CASES, ids=repr)
def test_a_run_with_a_schedule_is_the_python_apis_run(client, request_schedule, schedule, ending):
    body = {"problem": ROSENBROCK, "optimizers": [adam(request_schedule)], "steps": 60}
    run = post(client, "/api/run", body)["runs"][0]
    expected = sl.minimize(
        sl.problems.get("rosenbrock"),
        sl.Adam(lr=schedule),
        steps=60,
        record_every=1,
        record_dim=2,
    )
    np.testing.assert_array_equal(run["path"], expected.history["x"])  # to the last bit
    np.testing.assert_array_equal(run["loss"], expected.history["loss"])
    assert run["config"] == sl.Adam(lr=schedule).config()  # lr: the schedule's config
    assert run["label"] == f"adam α=0.05{ending}"
    # The effective step size follows the schedule: Adam's is lr(t)/(√r̂ + ε) per coordinate.
    optimizer = sl.Adam(lr=schedule)
    theta = np.array([-1.2, 1.0])
    state = optimizer.init(theta)
    problem = sl.problems.get("rosenbrock")
    for t in range(1, 4):
        optimizer.step(theta, problem.grad(theta), state)
        np.testing.assert_array_equal(run["step_size"][t - 1], optimizer.step_size(state))
    constant = post(client, "/api/run", {**body, "optimizers": [adam(None)]})["runs"][0]
    assert constant["path"] != run["path"]  # the schedule changed the run


def test_constant_is_the_same_as_no_schedule(client):
    body = {"problem": ROSENBROCK, "steps": 30}
    plain = post(client, "/api/run", {**body, "optimizers": [adam(None)]})["runs"][0]
    constant = post(client, "/api/run", {**body, "optimizers": [adam({"name": "constant"})]})
    assert constant["runs"][0] == plain and plain["label"] == "adam α=0.05"
    assert plain["config"]["lr"] == 0.05


def test_a_sweep_with_a_schedule_varies_its_scale(client):
    request_schedule = {"name": "cosine", "decay_steps": 30, "alpha": 0.1}
    body = {
        "problem": ROSENBROCK,
        "optimizers": [adam(request_schedule), {"name": "adam"}],
        "steps": 30,
        "lr_min": 1e-3,
        "lr_max": 30.0,
        "points": 6,
    }
    data = post(client, "/api/sweep", body)
    scheduled, constant = (r["final_loss"] for r in data["results"])
    assert data["results"][0]["label"] == "adam α=0.05 cosine to 0.1α over 30 steps"
    for lr, value in zip(data["lrs"], scheduled, strict=True):
        run = sl.minimize(
            "rosenbrock",
            sl.Adam(lr=schedules.cosine_decay_schedule(lr, 30, alpha=0.1)),
            steps=30,
            x0=[-1.2, 1.0],
        )
        assert (value is None) == (run.status == "diverged")
        if value is not None:
            assert value == run.final_loss  # the same run, to the last bit
    assert scheduled != constant  # the schedule reached the sweep


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        (
            {"name": "cosin", "decay_steps": 10},
            "optimizers.0.schedule",
            "'name' is one of 'constant', 'inverse_sqrt', 'step', 'cosine', 'warmup_cosine'",
        ),
        ({"decay_steps": 10}, "optimizers.0.schedule", "'name' is one of 'constant'"),
        ("cosine", "optimizers.0.schedule", "'name' is one of 'constant'"),
        ({"name": "cosine"}, "optimizers.0.schedule.cosine.decay_steps", "Field required"),
        (
            {"name": "cosine", "decay_steps": 10, "warmup_steps": 2},
            "optimizers.0.schedule.cosine",
            "schedule 'cosine' has no parameter 'warmup_steps'; it takes: decay_steps, alpha",
        ),
        (
            {"name": "inverse_sqrt", "alpha": 0.5},
            "optimizers.0.schedule.inverse_sqrt",
            "has no parameter 'alpha'; it takes: no parameters",
        ),
        (
            {"name": "cosine", "decay_steps": 10.5},
            "optimizers.0.schedule.cosine.decay_steps",
            "valid integer",
        ),
        (
            {"name": "cosine", "decay_steps": "10"},
            "optimizers.0.schedule.cosine.decay_steps",
            "valid integer",
        ),
        (
            {"name": "cosine", "decay_steps": 0},
            "optimizers.0.schedule.cosine.decay_steps",
            "greater than or equal to 1",
        ),
        (
            {"name": "cosine", "decay_steps": 10, "alpha": -0.5},
            "optimizers.0.schedule.cosine.alpha",
            "greater than or equal to 0",
        ),
        (
            {"name": "step", "transition_steps": 10, "decay_rate": 2},
            "optimizers.0.schedule.step.decay_rate",
            "less than or equal to 1",
        ),
        (
            {"name": "step", "transition_steps": 10, "decay_rate": 0},
            "optimizers.0.schedule.step.decay_rate",
            "greater than 0",
        ),
        (
            {"name": "warmup_cosine", "warmup_steps": 20, "decay_steps": 20},
            "optimizers.0.schedule.warmup_cosine",
            "decay_steps (20) must be above warmup_steps (20)",
        ),
        (
            {"name": "warmup_cosine", "warmup_steps": -1, "decay_steps": 20},
            "optimizers.0.schedule.warmup_cosine.warmup_steps",
            "greater than or equal to 0",
        ),
    ],
)
def test_a_bad_schedule_is_a_422_naming_what_is_allowed(client, schedule, field, words):
    for path in ("/api/run", "/api/sweep"):
        body = {"problem": ROSENBROCK, "optimizers": [adam(schedule)], "steps": 10}
        data = post(client, path, body, status=422)
        assert data["message"].startswith(f"{field}: "), data["message"]
        assert words in data["message"]
        assert "\n" not in data["message"]


def test_scheduled_sweeps_have_their_own_work_limit(client):
    cosine = adam({"name": "cosine", "decay_steps": 100})
    points = 40
    steps = models.MAX_SCHEDULED_SWEEP_WORK // points  # exactly at the limit: allowed
    assert points * steps == models.MAX_SCHEDULED_SWEEP_WORK
    body = {"problem": ROSENBROCK, "steps": steps, "points": points, "lr_min": 1e-3}
    assert models.SweepRequest.model_validate({**body, "optimizers": [cosine, {"name": "sgd"}]})
    data = post(client, "/api/sweep", {**body, "optimizers": [cosine, cosine]}, status=422)
    assert data["message"].startswith("sweep too large: optimizers with a schedule run one")
    assert f"= {2 * points * steps} > {models.MAX_SCHEDULED_SWEEP_WORK}" in data["message"]
    # A constant schedule is a constant step size: the vectorized sweep, the general limit.
    constant = adam({"name": "constant"})
    assert models.SweepRequest.model_validate({**body, "optimizers": [constant] * 4})


def test_a_scheduled_sweep_stops_at_the_budget():
    from fastapi.testclient import TestClient

    heavy = {
        "problem": ROSENBROCK,
        "optimizers": [adam({"name": "inverse_sqrt"})],
        "steps": 2000,
        "points": 25,  # 50 000 steps run one by one: seconds of work
    }
    with TestClient(create_app(limits=Limits(budget_s=0.3)), base_url="http://127.0.0.1") as c:
        started = time.monotonic()
        response = c.post("/api/sweep", json=heavy)
        assert response.status_code == 422
        assert "more than the 0.3 s budget" in response.json()["message"]
        assert time.monotonic() - started < 3  # stopped near its budget


def test_the_limits_docs_weblab_md_quotes():
    from pathlib import Path

    text = " ".join((Path(__file__).parents[2] / "docs" / "weblab.md").read_text().split())
    assert models.MAX_SWEEP_WORK == 200_000 and "≤ 200 000 optimizer steps in all" in text
    assert models.MAX_SCHEDULED_SWEEP_WORK == 50_000
    assert "of which ≤ 50 000 for optimizers with a schedule" in text
