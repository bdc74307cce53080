"""The PyTorch workloads: every one trains a few steps through steplab.torch, the same seed
gives the same curve, data that are missing offline say how to get them in one line."""

from __future__ import annotations

import hashlib
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("mnist1d")

from steplab.benchmark import workloads  # noqa: E402
from steplab.benchmark.workloads import shakespeare  # noqa: E402


@pytest.mark.parametrize("name", workloads.NAMES)
def test_each_workload_trains_and_is_deterministic(name):
    w = workloads.get(name)
    a = workloads.train(w, "small", "adamw", {"lr": 3e-3}, seed=5, steps=6)
    b = workloads.train(w, "small", "adamw", {"lr": 3e-3}, seed=5, steps=6)
    c = workloads.train(w, "small", "adamw", {"lr": 3e-3}, seed=6, steps=6)
    assert a["status"] == "ok" and a["steps"] == [0, 6]
    assert len(a["seconds"]) == 2 and a["seconds"][1] > 0
    assert a["values"] == b["values"] and a["train_loss"] == b["train_loss"]  # same seed
    assert a["values"] != c["values"]  # another seed: another initialization
    assert all(math.isfinite(v) for v in a["values"])
    assert workloads.target(name, "small") > 0


def test_a_diverging_trial_stops_and_says_so():
    w = workloads.get("mnist1d_mlp")
    record = workloads.train(w, "small", "sgd", {"lr": 1e6}, seed=0, steps=40)
    assert record["status"] == "diverged" and record["steps"][-1] < 40


def test_the_bundled_text_is_public_domain_shakespeare_package_data():
    text = shakespeare.sample_text()
    assert 4000 < len(text) < 20000 and "To be, or not to be" in text


def test_missing_tiny_shakespeare_offline_is_one_line(tmp_path, monkeypatch):
    import urllib.request

    monkeypatch.setenv("STEPLAB_CACHE", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as info:
        shakespeare.tiny_shakespeare()
    message = str(info.value)
    assert "\n" not in message and shakespeare.URL in message and str(tmp_path) in message
    with pytest.raises(FileNotFoundError, match="download"):
        shakespeare.tiny_shakespeare(download=False)


def test_a_download_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    import io
    import urllib.request

    monkeypatch.setenv("STEPLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"not it"))
    digest = hashlib.sha256(b"not it").hexdigest()
    with pytest.raises(ValueError, match=digest):
        shakespeare.tiny_shakespeare()
    assert not shakespeare.tiny_shakespeare_path().exists()  # nothing half-written kept


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="mnist1d_mlp"):
        workloads.get("imagenet")
    with pytest.raises(ValueError, match="small, full"):
        workloads.get("mnist1d_mlp").budget("huge")


@pytest.mark.parametrize("name", workloads.NAMES)
def test_a_size_builds_everything_on_its_device(name, monkeypatch):
    """The full sizes train on CUDA: checked here with PyTorch's meta device, which every
    tensor that the build makes (data, parameters) must land on."""
    import dataclasses

    from steplab.benchmark.workloads import base

    w = workloads.get(name)
    monkeypatch.setitem(base.DEVICES, "small", "meta")
    seen = set()

    class Built(Exception):
        pass

    def build(size, seed):
        task = w.build(size, seed)
        seen.update(str(t.device) for t in [*task.model.parameters(), task.x_train, task.y_train])
        raise Built

    with pytest.raises(Built):
        workloads.train(dataclasses.replace(w, build=build), "small", "adamw", {}, 0, steps=1)
    assert seen == {"meta"}


def test_the_full_sizes_refuse_a_machine_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA GPU") as info:
        workloads.train(workloads.get("mnist1d_mlp"), "full", "adamw", {}, 0, steps=1)
    assert "\n" not in str(info.value) and "--suite small" in str(info.value)
    workloads.require_device("small")  # the CPU sizes need nothing


def test_setting_full_size_targets_without_cuda_is_one_line(monkeypatch, capsys, tmp_path):
    import torch

    from steplab.benchmark import targets

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "targets.json"
    assert targets.main(["--size", "full", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
