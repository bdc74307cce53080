"""The PyTorch suites' trials as Ray tasks: the same records as the local engine's (wall
seconds aside), saved by the driver one atomic file per trial, resumed like a local run.
One local Ray runtime (2 CPUs, no dashboard, a small object store) serves the module."""

from __future__ import annotations

import json
import shutil

import pytest

from steplab.benchmark import algoperf, dispatch
from steplab.benchmark.algoperf import Settings

ray = pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("mnist1d")
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

TINY = dict(
    optimizers=["sgd", "adamw"],
    workloads=["mnist1d_mlp", "digits_autoencoder"],
    settings=Settings(trials=2, studies=2, steps=6),
    log=lambda line: None,
)


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",  # a runtime of its own, even where another one is running
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


def _without_seconds(results):
    return [
        (r.name, opt, m, j, {k: v for k, v in t.items() if k != "seconds"})
        for r in results
        for opt in r.optimizers
        for m, study in enumerate(r.trials[opt])
        for j, t in enumerate(study)
    ]


@pytest.mark.slow  # a Ray runtime and 2 × 16 tiny trials
def test_ray_trials_equal_local_ones_and_resume(tmp_path, cluster):
    here = algoperf.run(tmp_path / "local", **TINY)
    there = algoperf.run(tmp_path / "ray", engine="ray", **TINY)
    assert json.dumps(_without_seconds(there)) == json.dumps(_without_seconds(here))
    files = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*"))
    assert files == sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*")
    )
    assert not list((tmp_path / "ray").rglob("*.tmp"))
    # Resuming: 5 trials saved by a local run, the other 11 run as Ray tasks.
    saved = sorted((tmp_path / "local" / "trials").rglob("*.json"))[:5]
    for path in saved:
        target = tmp_path / "part" / path.relative_to(tmp_path / "local")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    lines: list[str] = []
    resumed = algoperf.run(tmp_path / "part", engine="ray", **{**TINY, "log": lines.append})
    assert "11 of 16 trials to run (ray)" in lines
    for path in saved:  # untouched, seconds included
        assert (tmp_path / "part" / path.relative_to(tmp_path / "local")).read_text() == (
            path.read_text()
        )
    assert json.dumps(_without_seconds(resumed)) == json.dumps(_without_seconds(here))
    lines.clear()
    algoperf.run(tmp_path / "part", engine="ray", **{**TINY, "log": lines.append})
    assert not any("to run" in line for line in lines)  # nothing left to run


def test_bad_engines_and_addresses_are_refused_before_anything_runs(tmp_path):
    for kwargs, message in [
        ({"engine": "dask"}, "engine must be one of local, ray"),
        ({"address": "10.0.0.1:6379"}, "an address is for engine='ray'"),
        ({"engine": "ray", "address": 6379}, "address must be 'HOST:PORT'"),
    ]:
        with pytest.raises(ValueError, match=message):
            algoperf.run(tmp_path, optimizers=["adamw"], **kwargs)
    assert not any(tmp_path.iterdir())
    assert dispatch.ENGINES == ("local", "ray")


@pytest.mark.slow  # a few tiny trials through the command, here and as Ray tasks
def test_the_command_runs_the_small_suite_on_ray(tmp_path, cluster, capsys):
    from steplab.cli import main

    args = ["benchmark", "--suite", "small", "--problems", "digits_autoencoder"]
    args += ["--optimizers", "adam", "adamw", "--trials", "2", "--studies", "2", "--steps", "4"]
    assert main([*args, "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert "8 of 8 trials to run (ray)" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    tables = [(tmp_path / d / "table.txt").read_text().splitlines() for d in ("ray", "local")]
    steps = [[line.split()[:6] for line in table[2:4]] for table in tables]
    assert steps[0] == steps[1]  # the same steps to target
    ray_records, local_records = (
        [
            {k: v for k, v in json.loads(p.read_text())["record"].items() if k != "seconds"}
            for p in sorted((tmp_path / d / "trials").rglob("*.json"))
        ]
        for d in ("ray", "local")
    )
    assert ray_records == local_records and len(ray_records) == 8


def test_an_unreachable_cluster_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys):
    from steplab.cli import main

    out = tmp_path / "bench"
    args = ["benchmark", "--suite", "small", "--problems", "digits_autoencoder", "--steps", "2"]
    assert main([*args, "--engine", "ray", "--address", "127.0.0.1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("steplab benchmark: error: cannot reach a Ray cluster at")
    assert not out.exists()
