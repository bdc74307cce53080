"""Errors and interruptions at the command line: user mistakes are one line (exit 2), bugs
keep their traceback, --out is checked before any work, and Ctrl+C keeps what was computed
without ever leaving a truncated file under its final name."""

from __future__ import annotations

import csv

import pytest

import steplab as sl
from steplab.cli import UserError, common, main


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"steplab {command}: error: ")
    return err


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch):
    def buggy(*args, **kwargs):
        raise TypeError("unsupported operand type(s)")  # e.g. a real bug deep inside

    monkeypatch.setattr(common, "run_specs", buggy)
    with pytest.raises(TypeError, match="unsupported operand"):  # Python prints its traceback
        main(["run", "adam", "--steps", "2", "--out", "unused"])


def test_keyerror_is_a_bug_too(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "run_specs", lambda *a, **k: {}["missing"])
    with pytest.raises(KeyError):
        main(["run", "adam", "--out", str(tmp_path)])


def test_user_error_class_is_one_line_and_traceback_flag_shows_more(tmp_path, capsys):
    assert issubclass(UserError, ValueError)
    target = tmp_path / "occupied"
    target.write_text("a file")
    assert main(["run", "adam", "--out", str(target)]) == 2
    assert "is a file, not a folder" in one_line_error(capsys, "run")
    assert main(["--traceback", "run", "adam", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "UserError" in err
    assert err.strip().splitlines()[-1].startswith("steplab run: error: --out")


@pytest.mark.parametrize("command", ["run", "compare", "sweep", "animate", "demo"])
def test_out_that_cannot_be_a_folder_fails_before_any_work(command, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    def no_work(*args, **kwargs):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(sl, "minimize", no_work)
    monkeypatch.setattr(sl, "sweep", no_work)
    argv = {
        "run": ["run", "adam"],
        "compare": ["compare", "adam", "sgd"],
        "sweep": ["sweep", "adam", "--grid", "lr=0.1,0.2"],
        "animate": ["animate", "adam"],
        "demo": ["demo", "--only", "saddle"],
    }[command]
    assert main([*argv, "--out", str(blocker / "sub")]) == 2
    assert "cannot create --out" in one_line_error(capsys, command)


def test_nan_tolerance_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "adam", "--tol", "nan"])
    assert exc.value.code == 2
    assert "argument --tol: must be a number, got nan" in capsys.readouterr().err


def interrupting_problem(after: int):
    problem = sl.problems.get("rosenbrock")
    original, calls = problem.value_and_grad, [0]

    def value_and_grad(*args, **kwargs):
        calls[0] += 1
        if calls[0] == after + 1:  # one Ctrl+C
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    problem.value_and_grad = value_and_grad
    return problem


def test_ctrl_c_in_compare_writes_the_runs_so_far(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "problem_from", lambda args: interrupting_problem(150))
    rc = main(["compare", "adam", "adagrad", "--steps", "100", "--out", str(tmp_path)])
    assert rc == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err
    with open(tmp_path / "history_adam.csv", newline="") as handle:
        rows = [r for r in csv.reader(line for line in handle if not line.startswith("#"))]
    assert len(rows) == 1 + 101  # adam finished (header + 101 rows)
    with open(tmp_path / "history_adagrad.csv", newline="") as handle:
        rows = [r for r in csv.reader(line for line in handle if not line.startswith("#"))]
    assert len(rows) == 1 + 49  # adagrad stopped by Ctrl+C after 49 rows
    assert "interrupted" in captured.out and (tmp_path / "index.html").exists()


def test_ctrl_c_in_sweep_writes_the_rows_so_far(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "problem_from", lambda args: interrupting_problem(30))
    argv = ["sweep", "adam", "--grid", "lr=0.01,0.1", "--seeds", "1", "--steps", "50"]
    assert main([*argv, "--out", str(tmp_path)]) == 130
    with open(tmp_path / "sweep_adam.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["interrupted", "interrupted"]
    assert "steplab sweep: interrupted" in capsys.readouterr().err


def test_interrupted_figure_save_leaves_no_file(tmp_path, monkeypatch):
    """`steplab demo` interrupted left truncated PNGs under their final names; now a figure
    appears under its name complete or not at all (the previous version stays)."""
    from matplotlib.figure import Figure

    from steplab.viz import save

    fig = Figure()
    fig.gca().plot([0, 1], [1, 0])
    save(fig, tmp_path / "figure")
    good = (tmp_path / "figure.png").read_bytes()

    def interrupted_savefig(self, stream, **kwargs):
        stream.write(good[:100])  # half a PNG, then Ctrl+C
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted_savefig)
    fig = Figure()
    with pytest.raises(KeyboardInterrupt):
        save(fig, tmp_path / "figure")
    with pytest.raises(KeyboardInterrupt):
        save(Figure(), tmp_path / "other")
    assert (tmp_path / "figure.png").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png"]


@pytest.mark.slow
def test_ctrl_c_during_demo_leaves_only_complete_files(tmp_path):
    """A real `steplab demo --quick` process gets SIGINT after a few seconds: it exits 130,
    and every file under --out is complete (PNGs decode, JSON parses), no temporaries."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from PIL import Image

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "steplab", "demo", "--quick", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)  # interrupt while figures are being written
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    files = list(tmp_path.iterdir())
    assert not [f.name for f in files if f.name.startswith(".")]  # no temporary files
    for path in files:
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()  # a truncated PNG raises here
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            assert path.read_text().endswith("\n")
