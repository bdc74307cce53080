"""The AlgoPerf-style protocol: scoring of hand-made trials, resuming equals not being
interrupted, other settings in the same folder are refused, and the command's report."""

from __future__ import annotations

import json
import math

import pytest

from steplab.benchmark import algoperf
from steplab.benchmark.algoperf import Settings, WorkloadResult


def _trial(steps, values, seconds=None, status="ok", lr=1e-3):
    return {
        "steps": steps,
        "seconds": seconds or [s / 100 for s in steps],
        "values": values,
        "train_loss": [math.nan] * len(steps),
        "status": status,
        "hyperparameters": {"lr": lr},
    }


def test_hand_made_trials_are_scored_as_by_hand():
    steps = [0, 10, 20, 30]
    r = WorkloadResult("w", "d", "val_accuracy", True, 0.5, 30, ["sgd", "adamw"])
    r.trials["adamw"] = [  # study times: 15 (interpolated), 10, 20
        [_trial(steps, [0.1, 0.4, 0.6, 0.7]), _trial(steps, [0.1, 0.2, 0.3, 0.4])],
        [_trial(steps, [0.1, 0.5, 0.6, 0.7]), _trial(steps, [0.1, 0.3, 0.5, 0.9])],
        [_trial(steps, [0.1, 0.3, 0.5, 0.6]), _trial(steps, [0.0, math.nan, 0.9, 0.9])],
    ]
    r.trials["sgd"] = [  # reached in one study of three: no score
        [_trial(steps, [0.1, 0.2, 0.3, 0.4]), _trial(steps, [0.1, 0.2, 0.3, 0.6])],
        [_trial(steps, [0.1, 0.2, 0.3, 0.4]), _trial(steps, [0.1, 0.2, 0.3, 0.4])],
        [_trial(steps, [0.1, 0.2, 0.3, 0.4], status="diverged"), _trial(steps, [0.1] * 4)],
    ]
    assert list(r.study_times("adamw")) == [15.0, 10.0, 20.0]
    assert r.score("adamw") == 15.0 and r.score("adamw", "seconds") == pytest.approx(0.15)
    assert r.score("sgd") == math.inf
    # The chosen trial of a study: the fastest to target, else the best final value.
    assert r.best_trial("adamw", 0)["values"][1] == 0.4
    assert r.best_trial("sgd", 1)["values"][-1] == 0.4
    rows = algoperf.table_rows([r], Settings(trials=2))
    sgd, adamw = rows
    assert adamw["reached"] == 3 and sgd["reached"] == 1
    assert adamw["steps_median"] == 15.0 and 10.0 <= adamw["steps_ci"][0] <= 15.0
    assert adamw["vs_adamw"] == "—"
    assert sgd["vs_adamw"].endswith("2 unpaired") and "not significant" in sgd["vs_adamw"]
    text = algoperf.format_table(rows, "BUDGET")
    assert "not reached" in text and "Tuning budget: BUDGET" in text
    assert "15 [" in text and "3/3" in text and "1/3" in text


SMALL = dict(
    optimizers=["sgd", "adamw"],
    workloads=["mnist1d_mlp", "digits_autoencoder"],
    settings=Settings(trials=2, studies=2, steps=8),
    log=lambda line: None,
)


def _curves(results):
    return [
        (r.name, opt, m, j, t["values"], t["steps"], t["train_loss"], t["hyperparameters"])
        for r in results
        for opt in r.optimizers
        for m, study in enumerate(r.trials[opt])
        for j, t in enumerate(study)
    ]


@pytest.mark.slow  # 2 × 16 tiny trials
def test_an_interrupted_benchmark_resumes_to_the_same_result(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("mnist1d")
    from steplab.benchmark import workloads

    whole = algoperf.run(tmp_path / "whole", **SMALL)
    real = workloads.train
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(workloads, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        algoperf.run(tmp_path / "part", **SMALL)
    saved = list((tmp_path / "part" / "trials").rglob("*.json"))
    assert len(saved) == 5 and not list((tmp_path / "part").rglob("*.tmp"))
    calls.clear()
    monkeypatch.setattr(workloads, "train", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    resumed = algoperf.run(tmp_path / "part", **SMALL)
    assert len(calls) == 16 - 5  # only the missing trials ran
    assert json.dumps(_curves(resumed)) == json.dumps(_curves(whole))  # same seeds, curves
    rows = [
        {k: v for k, v in row.items() if not k.startswith("seconds")}
        for row in algoperf.table_rows(resumed, SMALL["settings"])
    ]
    assert rows == [
        {k: v for k, v in row.items() if not k.startswith("seconds")}
        for row in algoperf.table_rows(whole, SMALL["settings"])
    ]
    # Other settings into the same folder: refused, nothing overwritten.
    path = next((tmp_path / "part" / "trials").rglob("*.json"))
    before = path.read_text()
    other = {**SMALL, "settings": Settings(trials=2, studies=2, steps=9)}
    with pytest.raises(ValueError, match="another benchmark"):
        algoperf.run(tmp_path / "part", **other)
    assert path.read_text() == before
    assert json.loads(before)["key"]["steps"] == 8


def test_bad_settings_are_clear_errors(tmp_path):
    for settings, message in [
        (Settings(trials=0), "trials must be a positive integer"),
        (Settings(mode="grid"), "external, self"),
        (Settings(size="huge"), "small, full"),
    ]:
        with pytest.raises(ValueError, match=message):
            algoperf.run(tmp_path, optimizers=["adamw"], settings=settings)
    with pytest.raises(ValueError, match="unknown optimizer 'nonsense'"):
        algoperf.run(tmp_path, optimizers=["nonsense"])
    with pytest.raises(ValueError, match="unknown workload"):
        algoperf.run(tmp_path, optimizers=["adamw"], workloads=["imagenet"])
    assert not any(tmp_path.iterdir())
