"""Errors and interruptions at the command line: user mistakes are one line (exit 2), bugs
keep their traceback, --out is checked before any work, and Ctrl+C keeps what was computed
without ever leaving a truncated file under its final name."""

from __future__ import annotations

import csv

import numpy as np
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


def blocking_child(tmp_path, setup: str, argv: list[str]):
    """A real ``steplab`` process in which ``setup`` (Python) has patched a function to
    print "ready" and then sleep: the parent interrupts it exactly there, on that line
    (a condition, not a guess at timing)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "def block(*args, **kwargs):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(600)\n"
        f"{setup}\n"
        "from steplab.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def interrupt_when_ready(process) -> tuple[int, str]:
    import signal

    for line in process.stdout:
        if line == "ready\n":
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_ctrl_c_during_start_up_exits_130_in_one_line(tmp_path):
    """Before: building the parser (importing every command, ~2 s) was outside main's
    handler: a traceback, and death by SIGINT."""
    process = blocking_child(
        tmp_path,
        # block where the parser imports its first command (steplab.cli.*), not in the
        # imports that `import steplab` itself makes
        "import importlib\n"
        "real_import = importlib.import_module\n"
        "def gate(name, *args, **kwargs):\n"
        "    if name.startswith('steplab.cli.'): block()\n"
        "    return real_import(name, *args, **kwargs)\n"
        "importlib.import_module = gate",
        ["list", "optimizers"],
    )
    code, err = interrupt_when_ready(process)
    assert code == 130, err
    assert err == "steplab: interrupted\n"


@pytest.mark.slow
def test_ctrl_c_during_demo_leaves_only_complete_files(tmp_path):
    """A real `steplab demo --quick` process gets SIGINT inside the sensitivity lesson's
    sweep, after the saddle lesson has written its files: it exits 130, writes nothing of
    the sensitivity lesson, and every file under --out is complete (PNGs decode, JSON
    parses), no temporaries. (Before: the test sent SIGINT after a fixed time and raced
    the demo; the sensitivity step swallowed Ctrl+C and finished, or wrote a different
    sensitivity_final_losses.csv.)"""
    import json

    from PIL import Image

    out = tmp_path / "out"
    process = blocking_child(
        tmp_path,
        "import steplab.run.sweep\n"
        "s = sys.modules['steplab.run.sweep']\n"
        "run_chunk = s._run_chunk\n"
        "calls = []\n"
        "def third(*args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3: block()\n"
        "    return run_chunk(*args, **kwargs)\n"
        "s._run_chunk = third",
        ["demo", "--quick", "--only", "saddle", "--only", "sensitivity", "--out", str(out)],
    )
    code, err = interrupt_when_ready(process)
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    files = list(out.iterdir())
    assert any(f.name.startswith("saddle") and f.suffix == ".png" for f in files)
    assert not [f.name for f in files if f.name.startswith("sensitivity")]
    assert not [f.name for f in files if f.name.startswith(".")]  # no temporary files
    for path in files:
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()  # a truncated PNG raises here
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            assert path.read_text().endswith("\n")


def test_ctrl_c_inside_a_lesson_sweep_stops_the_demo(tmp_path, monkeypatch, capsys):
    """sl.sweep turns Ctrl+C into a table marked interrupted; the sensitivity lesson passes
    it on (before: it went on with the next sweep, or reshaped the partial rows)."""
    from steplab.experiments import sensitivity

    real_sweep = sl.sweep

    def interrupted_sweep(*args, **kwargs):
        table = real_sweep(*args, **{**kwargs, "steps": 2})
        table.interrupted = True
        return table

    monkeypatch.setattr(sensitivity.sl, "sweep", interrupted_sweep)
    assert main(["demo", "--quick", "--only", "sensitivity", "--out", str(tmp_path)]) == 130
    assert "steplab demo: interrupted" in capsys.readouterr().err
    assert not list(tmp_path.glob("sensitivity*"))


def test_ctrl_c_inside_a_lesson_run_stops_the_demo(tmp_path, monkeypatch, capsys):
    """minimize keeps Ctrl+C's partial run (status "interrupted"); a lesson's trace stops."""
    from steplab.experiments import _trace

    real_minimize = _trace.minimize

    def interrupted_minimize(*args, **kwargs):
        run = real_minimize(*args, **{**kwargs, "steps": 2})
        run.status = "interrupted"
        return run

    monkeypatch.setattr(_trace, "minimize", interrupted_minimize)
    assert main(["demo", "--quick", "--only", "saddle", "--out", str(tmp_path)]) == 130
    assert "steplab demo: interrupted" in capsys.readouterr().err
    assert not list(tmp_path.glob("saddle*"))


@pytest.mark.parametrize("command", ["run"])  # compare draws through the same run_figures
def test_a_single_feature_csv_runs(command, tmp_path, capsys):
    """One feature plus the bias is a 2-parameter problem without a box: its contour view
    comes from the iterates (before: TypeError in common._view)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=40)
    data = tmp_path / "one.csv"
    data.write_text("x,y\n" + "".join(f"{a},{2 * a + 1}\n" for a in x))
    out = tmp_path / "out"
    argv = [command, "adam", *(["sgd"] if command == "compare" else [])]
    argv += ["--data", str(data), "--target", "y", "--steps", "20", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / "trajectories.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (
            ["run", "adam", "--problem", "quadratic", "--problem-option", "dim=100000"],
            "--problem-option: problem quadratic",
        ),
        (
            ["run", "adam", "--problem", "mlp", "--problem-option", "hidden=100000,100000"],
            "--problem-option: problem mlp",
        ),
        (["sweep", "adam", "--grid", "lr=1e-3..1:1000000000"], "--grid: a sweep of 1,000,000,000"),
        (["animate", "adam", "--frames", "1000000"], "--frames: 1,000,000 frames"),
        (["bench", "adam", "--size", "1000000000000"], "--size: 1,000,000,000,000 float32"),
    ],
)
def test_sizes_that_cannot_fit_are_refused_before_allocating(argv, option, tmp_path, capsys):
    """Before: MemoryError tracebacks (a dense 74.5 GiB matrix for dim=100000), after
    minutes of swapping for some. Now one line naming the option, before any work."""
    import tracemalloc

    if argv[0] != "bench":
        argv = [*argv, "--out", str(tmp_path / "out")]
    tracemalloc.start()
    assert main(argv) == 2
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    err = one_line_error(capsys, argv[0])
    assert option in err and "of memory, more than this machine's" in err
    assert peak < 200 * 1024**2


def test_the_memory_check_lets_what_fits_through(monkeypatch):
    monkeypatch.setattr(common, "memory_bytes", lambda: 1000)
    common.check_fits("--x", 1000, "this")
    with pytest.raises(ValueError, match="--x: this would need about 0.0 GiB"):
        common.check_fits("--x", 1001, "this")
    assert common.problem_bytes("quadratic", {"dim": 1000}) == 2 * 8 * 1000**2
    assert common.problem_bytes("mlp", {"hidden": (10, 20)}) == 4 * 8 * (10 * 20 + 30)


def test_the_contour_view_widens_the_box_to_the_iterates_or_makes_one():
    """common._view: a problem's box widened to every finite iterate, by at most its own
    span on each side; without a box, the iterates' box and a tenth; None if none is
    finite."""
    from types import SimpleNamespace

    boxed = SimpleNamespace(bounds=np.array([[-1.0, 1.0], [-1.0, 1.0]]))
    histories = {"a": {"x": np.array([[3.0, 0.5], [-0.5, -5.0], [np.nan, 0.0]])}}
    assert common._view(boxed, histories) == ((-1.0, 3.0), (-3.0, 1.0))
    free = SimpleNamespace(bounds=None)
    histories = {"a": {"x": np.array([[0.0, 0.0], [1.0, 2.0]])}, "b": {"x": np.zeros((1, 2))}}
    view = common._view(free, histories)
    np.testing.assert_allclose(view, ((-0.1, 1.1), (-0.2, 2.2)))
    assert common._view(free, {"a": {"x": np.full((3, 2), np.nan)}}) is None
