"""Modifiers in the web lab (issue 23): ``adamw`` + ``cautious`` is the command line's
``adamw+cautious``, step for step; unknown modifiers and settings get the command line's
own messages ("did you mean"); EMA's run is shown at its evaluation point, as
:func:`steplab.minimize` judges it."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab.cli.spec import parse
from steplab.optim.registry import WRAPPER_SETTINGS, WRAPPERS
from steplab.web import models

BOWL = {"expression": "x**2 + 10*y**2"}
ROSENBROCK = {"name": "rosenbrock"}


def post(client, path, body, status=200):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def run_one(client, optimizer, problem=ROSENBROCK, steps=60, status=200):
    body = {"problem": problem, "optimizers": [optimizer], "steps": steps}
    return post(client, "/api/run", body, status)


def by_hand(spec: str, problem, steps: int):
    """The CLI's parsed optimizer stepped through its own init/step from the problem's x0."""
    optimizer = parse(spec).optimizer
    theta = problem.x0.copy()
    state = optimizer.init(theta)
    path = [theta.copy()]
    for _ in range(steps):
        optimizer.step(theta, problem.value_and_grad(theta)[1], state)
        path.append(theta.copy())
    return np.array(path)


def test_meta_lists_every_modifier_with_its_settings(client):
    meta = client.get("/api/meta").json()
    listed = {
        m["name"]: {s["name"]: s["interval"] for s in m["settings"]} for m in meta["modifiers"]
    }
    assert listed == WRAPPER_SETTINGS and list(listed) == list(WRAPPERS)
    assert meta["limits"]["modifiers"] == models.MAX_MODIFIERS
    ema = next(m for m in meta["modifiers"] if m["name"] == "ema")["settings"]
    defaults = {s["name"]: s["default"] for s in ema}
    wrapped = parse("sgd+ema").optimizer  # the command line's defaults
    assert defaults == {"decay": wrapped.decay, "debias": wrapped.debias}


def test_adamw_cautious_is_the_command_lines_adamw_plus_cautious_bit_for_bit(client):
    hyper = {"lr": 0.02, "weight_decay": 0.01}
    data = run_one(
        client, {"name": "adamw", "hyperparameters": hyper, "modifiers": [{"name": "cautious"}]}
    )
    run = data["runs"][0]
    assert run["label"].startswith("adamw+cautious")
    expected = by_hand(
        "adamw+cautious:lr=0.02,weight_decay=0.01", sl.problems.get("rosenbrock"), 60
    )
    assert np.array_equal(np.array(run["path"]), expected)  # bit for bit
    plain = run_one(client, {"name": "adamw", "hyperparameters": hyper})["runs"][0]
    assert not np.array_equal(np.array(plain["path"]), expected)  # the mask changed the run


def test_ema_run_is_shown_at_its_evaluation_point_as_minimize_records_it(client):
    data = run_one(
        client,
        {
            "name": "adam",
            "hyperparameters": {"lr": 0.05},
            "modifiers": [{"name": "ema", "settings": {"decay": 0.9}}],
        },
    )
    run = data["runs"][0]
    problem = sl.problems.get("rosenbrock")
    record = sl.minimize(
        problem, parse("adam+ema:lr=0.05,decay=0.9").optimizer, steps=60, x0=problem.x0
    )
    x = np.array(record.history["x"], dtype=np.float64)
    loss = np.array(record.history["loss"], dtype=np.float64)
    assert np.array_equal(np.array(run["path"]), x)  # the averaged point, bit for bit
    assert np.array_equal(np.array(run["loss"]), loss)
    # ... which is not where Adam itself is
    assert not np.allclose(np.array(run["path"]), by_hand("adam:lr=0.05", problem, 60))


def test_chain_piece_and_setting(client):
    body = {
        "name": "sgd",
        "hyperparameters": {"lr": 0.002},
        "modifiers": [{"name": "clip_by_global_norm", "settings": {"clip_norm": 1}}],
    }
    run = run_one(client, body, steps=20)["runs"][0]
    expected = by_hand(
        "sgd+clip_by_global_norm:lr=0.002,clip_norm=1", sl.problems.get("rosenbrock"), 20
    )
    assert np.array_equal(np.array(run["path"]), expected)


def test_unknown_modifier_is_422_naming_them_with_did_you_mean(client):
    data = run_one(client, {"name": "adamw", "modifiers": [{"name": "cautios"}]}, status=422)
    with pytest.raises(ValueError) as cli:
        parse("adamw+cautios")
    assert "did you mean 'cautious'?" in data["message"]
    for name in WRAPPERS:
        assert name in data["message"]
    assert data["message"].endswith(str(cli.value).split(";", 1)[1])  # the CLI's own words
    assert data["detail"][0]["loc"] == ["body", "optimizers", 0, "modifiers", 0, "name"]


def test_unknown_setting_is_named_with_did_you_mean(client):
    bad = {"name": "adam", "modifiers": [{"name": "ema", "settings": {"decy": 0.9}}]}
    message = run_one(client, bad, status=422)["message"]
    expected = "ema has no setting 'decy' (did you mean 'decay'?); its settings: decay, debias"
    assert expected in message


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"decay": 1.5}, "decay"),  # out of [0, 1): the wrapper's own check
        ({"decay": True}, "decay must be a number"),
        ({"debias": 0.5}, "debias must be true or false"),
    ],
)
def test_bad_setting_is_named(client, settings, words):
    bad = {"name": "adam", "modifiers": [{"name": "ema", "settings": settings}]}
    message = run_one(client, bad, status=422)["message"]
    assert words in message and "ema" in message


def test_modifiers_are_bounded_and_not_repeated(client):
    many = [{"name": name} for name in list(WRAPPERS)[: models.MAX_MODIFIERS + 1]]
    run_one(client, {"name": "adam", "modifiers": many}, status=422)
    twice = [{"name": "cautious"}, {"name": "cautious"}]
    message = run_one(client, {"name": "adam", "modifiers": twice}, status=422)["message"]
    assert "given twice" in message


def test_existing_requests_without_modifiers_are_unchanged(client):
    a = run_one(client, {"name": "adam", "hyperparameters": {"lr": 0.1}}, problem=BOWL)
    b = run_one(
        client, {"name": "adam", "hyperparameters": {"lr": 0.1}, "modifiers": []}, problem=BOWL
    )
    assert a == b


def test_sweep_with_a_modifier_runs_each_step_size(client):
    body = {
        "problem": BOWL,
        "steps": 30,
        "points": 4,
        "lr_min": 0.01,
        "lr_max": 0.3,
        "optimizers": [{"name": "adamw", "modifiers": [{"name": "cautious"}]}],
    }
    data = post(client, "/api/sweep", body)
    problem = sl.problems.expression(BOWL["expression"], dim=2)
    for lr, final in zip(data["lrs"], data["results"][0]["final_loss"], strict=True):
        path = by_hand(f"adamw+cautious:lr={lr!r}", problem, 30)
        assert final == problem.value(path[-1])


def test_the_modifier_limit_docs_weblab_md_quotes():
    from pathlib import Path

    text = " ".join((Path(__file__).parents[2] / "docs" / "weblab.md").read_text().split())
    assert models.MAX_MODIFIERS == 4
    assert "≤ 4 modifiers per optimizer" in text and "At most 4 modifiers per optimizer" in text
    assert "of which ≤ 50 000 for optimizers with a schedule or modifiers" in text


def test_schedule_free_is_shown_at_its_evaluation_point_as_minimize_records_it(client):
    # Not a modifier, but the same rule: a registered optimizer with eval_params (x, not y).
    data = run_one(client, {"name": "schedule_free_adamw", "hyperparameters": {"lr": 0.05}})
    problem = sl.problems.get("rosenbrock")
    optimizer = parse("schedule_free_adamw:lr=0.05").optimizer
    record = sl.minimize(problem, optimizer, steps=60, x0=problem.x0)
    x = np.array(record.history["x"], dtype=np.float64)
    assert np.array_equal(np.array(data["runs"][0]["path"]), x)
    assert not np.allclose(x, by_hand("schedule_free_adamw:lr=0.05", problem, 60))
