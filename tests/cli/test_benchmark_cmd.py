"""``steplab benchmark``: DeepOBS' protocol, checked against sweeps made by hand; the
Dolan–Moré profile against hand-derived values; resuming; bad input."""

from __future__ import annotations

import csv
import hashlib
import math
import sqlite3

import numpy as np
import pytest

import steplab as sl
from steplab.benchmark import profile
from steplab.benchmark.suites import TUNING_SEED
from steplab.cli import main

ARGS = [
    "benchmark",
    "--problems",
    "rosenbrock",
    "logreg_breast_cancer",
    "--optimizers",
    "sgd",
    "adam",
    "--grid",
    "lr=1e-3..1:4",
    "--seeds",
    "2",
]
GRID = np.geomspace(1e-3, 1, 4)


def test_profile_matches_hand_derived_values():
    costs = [[1.0, 2.0], [3.0, 3.0], [math.inf, 4.0]]
    # ratios: [[1, 2], [1, 1], [inf, 1]]
    np.testing.assert_array_equal(profile.ratios(costs), [[1, 2], [1, 1], [math.inf, 1]])
    rho = profile.profile(costs, [1.0, 1.5, 2.0, 100.0])
    np.testing.assert_allclose(rho[0], [2 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho[1], [2 / 3, 2 / 3, 1, 1])
    # A problem that every solver failed counts against all of them.
    np.testing.assert_array_equal(profile.profile([[math.inf, math.nan]], [1e9]), [[0], [0]])
    with pytest.raises(ValueError, match="> 0"):
        profile.ratios([[0.0, 1.0]])
    taus = profile.tau_range(costs)
    assert taus[0] == 1 and taus[-1] >= 10


def read_summary(out):
    with (out / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # two problems through the whole protocol, then again by hand
def test_benchmark_follows_the_protocol(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main([*ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = read_summary(out)
    assert [(r["problem"], r["optimizer"]) for r in rows] == [
        ("rosenbrock", "sgd"),
        ("rosenbrock", "adam"),
        ("logreg_breast_cancer", "sgd"),
        ("logreg_breast_cancer", "adam"),
    ]
    # The same protocol by hand: tune with seed 42, pick the best final metric, rerun.
    for label, problem, options, metric, best in [
        ("rosenbrock", sl.problems.get("rosenbrock"), {"steps": 500}, "final_loss", np.argmin),
        (
            "logreg_breast_cancer",
            sl.problems.get("logistic_regression", data="breast_cancer"),
            {"epochs": 10, "batch_size": 32},
            "val_accuracy",
            np.argmax,
        ),
    ]:
        for name in ("sgd", "adam"):
            tuning = sl.sweep(problem, {name: {"lr": GRID}}, seeds=[TUNING_SEED], **options)
            scores = [
                r[metric] if r["status"] != "diverged" else math.inf * (1 - 2 * (best is np.argmax))
                for r in tuning
            ]
            lr = GRID[int(best(scores))]
            reruns = sl.sweep(problem, {name: {"lr": [lr]}}, seeds=[42, 43], **options)
            loss = "final_loss" if metric == "final_loss" else "test_loss"
            row = next(r for r in rows if r["problem"] == label and r["optimizer"] == name)
            assert float(row["best_lr"]) == pytest.approx(lr, rel=1e-12)
            assert float(row["loss_mean"]) == pytest.approx(np.mean([r[loss] for r in reruns]))
            assert float(row["loss_std"]) == pytest.approx(
                np.std([r[loss] for r in reruns], ddof=1)
            )
            if metric == "val_accuracy":
                assert float(row["accuracy_mean"]) == pytest.approx(
                    np.mean([r["test_accuracy"] for r in reruns])
                )
    for name in (
        "sensitivity_rosenbrock",
        "sensitivity_logreg_breast_cancer",
        "performance_profile",
    ):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "performance_profile.png" in (out / "index.html").read_text()
    assert "logreg_breast_cancer" in printed and "percentile-bootstrap interval" in printed

    # Started again, everything comes from the stores: same summary, no trial twice.
    before = {p.name: _count(p) for p in (out / "stores").iterdir()}
    assert before == {
        "rosenbrock-tune.sqlite": 8,
        "rosenbrock-rerun.sqlite": 4,
        "logreg_breast_cancer-tune.sqlite": 8,
        "logreg_breast_cancer-rerun.sqlite": 4,
    }
    summary = (out / "summary.txt").read_text()
    assert main([*ARGS, "--out", str(out)]) == 0
    assert (out / "summary.txt").read_text() == summary
    assert {p.name: _count(p) for p in (out / "stores").iterdir()} == before

    # Other settings into the same folder: a clear error, the stores untouched.
    digests = {p.name: _digest(p) for p in (out / "stores").iterdir()}
    changed = [a if a != "lr=1e-3..1:4" else "lr=1e-3..1:5" for a in ARGS]
    assert main([*changed, "--out", str(out)]) == 2
    assert "another sweep" in capsys.readouterr().err
    assert {p.name: _digest(p) for p in (out / "stores").iterdir()} == digests


def _count(path) -> int:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_corrupt_store_is_reported_and_left_alone(tmp_path, capsys):
    stores = tmp_path / "bench" / "stores"
    stores.mkdir(parents=True)
    bad = stores / "rosenbrock-tune.sqlite"
    bad.write_bytes(b"not a database at all")
    assert main([*ARGS[:3], *ARGS[4:], "--out", str(tmp_path / "bench")]) == 2
    err = capsys.readouterr().err
    assert "not a steplab results store" in err and "Traceback" not in err
    assert bad.read_bytes() == b"not a database at all"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--optimizers", "sgd", "nonsense"], "nonsense"),
        (["--problems", "nowhere"], "has no problem 'nowhere'"),
        (["--seeds", "0"], "seeds must be a positive integer"),
        (["--grid", "rho=0.1,0.2"], "tunes the step size"),
        (["--address", "127.0.0.1:1"], "--address is for --engine ray"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, extra, message):
    out = tmp_path / "bench"
    assert main(["benchmark", *extra, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_list_names_the_suites_problems(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", "--list"]) == 0
    labels = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert labels == [
        "rosenbrock",
        "two_d_beale",
        "quadratic_deep",
        "logreg_breast_cancer",
        "mlp_digits",
        "mlp_mnist1d",
    ]
    assert main(["benchmark", "--suite", "full", "--list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 11
    assert not any(tmp_path.iterdir())  # --list writes nothing


@pytest.mark.slow  # the PyTorch suite end to end on two workloads, a few steps each
def test_the_small_pytorch_suite_writes_its_report(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("mnist1d")
    out = tmp_path / "small"
    args = [
        "benchmark",
        "--suite",
        "small",
        "--problems",
        "mnist1d_cnn",
        "shakespeare_char",
        "--optimizers",
        "adam",
        "adamw",
        "--trials",
        "2",
        "--studies",
        "2",
        "--steps",
        "10",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Tuning budget: external tuning: 2 quasi-random (scrambled Halton) trials" in printed
    assert "adam: lr ~ logU[0.0001, 0.1]" in printed
    for name in (
        "profiles",
        "curves_mnist1d_cnn",
        "curves_shakespeare_char",
        "sensitivity_mnist1d_cnn",
        "sensitivity_shakespeare_char",
    ):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{name}.png" in (out / "index.html").read_text()
    assert len(list((out / "trials").rglob("*.json"))) == 2 * 2 * 2 * 2
    table = (out / "table.txt").read_text()
    assert main([*args[:-2], "--tuning", "self", "--out", str(tmp_path / "self")]) == 0
    assert "self-tuning: defaults only" in capsys.readouterr().out
    assert main(args) == 0  # resumed from the saved trials: the same table in steps
    assert (out / "table.txt").read_text().splitlines()[2].split()[:4] == (
        table.splitlines()[2].split()[:4]
    )


BAD_PYTORCH_INPUT = [
    (["--suite", "tiny"], "--suite 'tiny'; choose from quick, full, small, gpu"),
    (["--engine", "dask"], "--engine 'dask'; choose from local, ray"),
    (["--tuning", "grid"], "--tuning 'grid'; choose from external, self"),
    (["--grid", "lr=0.1,0.2"], "--grid is for the DeepOBS suites (quick, full)"),
    (["--seeds", "3"], "--seeds is for the DeepOBS suites"),
    (["--trials", "0"], "--trials must be a positive integer, got '0'"),
    (["--studies", "two"], "--studies must be a positive integer, got 'two'"),
    (["--steps", "1.5"], "--steps must be a positive integer, got '1.5'"),
    (["--problems", "imagenet"], "unknown workload 'imagenet'; choose from mnist1d_mlp,"),
    (["--optimizers", "nonsense"], "unknown optimizer 'nonsense'; choose from sgd,"),
    (["--optimizers", "adam", "adam"], "give each optimizer once"),
    (["--address", "10.0.0.1:6379"], "--address is for --engine ray"),
]


@pytest.mark.parametrize("extra, message", BAD_PYTORCH_INPUT)
def test_bad_input_to_the_pytorch_suite(tmp_path, capsys, extra, message):
    out = tmp_path / "bench"
    args = ["benchmark", "--suite", "small", *extra, "--out", str(out)]
    if extra[0] == "--suite":
        args = ["benchmark", *extra, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_input_is_refused_before_torch_is_imported(tmp_path):
    """Checked in a fresh interpreter: none of the bad inputs imports torch."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from steplab.cli import main\n"
        f"cases = {[e for e, _ in BAD_PYTORCH_INPUT]!r}\n"
        "for extra in cases:\n"
        "    suite = [] if extra[0] == '--suite' else ['--suite', 'small']\n"
        f"    assert main(['benchmark', *suite, *extra, '--out', {str(tmp_path / 'b')!r}]) == 2\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
    assert not (tmp_path / "b").exists()


def test_deepobs_suites_refuse_pytorch_flags(tmp_path, capsys):
    assert main(["benchmark", "--trials", "3", "--out", str(tmp_path / "b")]) == 2
    assert "--trials is for the PyTorch suites" in capsys.readouterr().err


def test_list_the_small_suites_workloads(capsys):
    pytest.importorskip("torch")
    assert main(["benchmark", "--suite", "small", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "mnist1d_mlp",
        "mnist1d_cnn",
        "digits_autoencoder",
        "digits_resnet",
        "shakespeare_char",
    ]
    assert all("target" in line for line in lines)


def test_the_gpu_suite_refuses_without_cuda_then_without_targets(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    out = tmp_path / "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["benchmark", "--suite", "gpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trains on a CUDA GPU and torch sees none here" in err and "--suite small" in err
    assert len(err.strip().splitlines()) == 1
    # With a GPU, the next thing missing is the full sizes' targets: the command to set them.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert main(["benchmark", "--suite", "gpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no validation target recorded" in err
    assert "python -m steplab.benchmark.targets --size full" in err
    assert not out.exists()
