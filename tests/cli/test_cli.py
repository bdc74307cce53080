"""The command line: the optimizer spec syntax, each subcommand's outputs, and the exit
codes and messages of user errors (exit 2, one line, no stack trace)."""

import csv
import json

import numpy as np
import pytest

import steplab as sl
from steplab.cli import main
from steplab.cli.spec import parse
from steplab.cli.sweep_cmd import parse_grid

# -- the spec syntax ----------------------------------------------------------------------


def test_spec_plain_name_gives_the_seed_defaults():
    spec = parse("adam")
    assert spec.name == "adam" and spec.preset == "seed"
    assert spec.optimizer.config() == sl.Adam().config()


def test_spec_with_hyperparameters_preset_and_bools():
    spec = parse("adam@torch:lr=0.01,rho1=0.8,amsgrad=true")
    expected = sl.Adam.like("torch", lr=0.01, rho1=0.8, amsgrad=True)
    assert spec.optimizer.config() == expected.config()
    assert spec.optimizer.eps == 1e-8 and spec.optimizer.eps_root == 0.0  # torch's convention
    assert parse(" RMSProp : centered=false ").optimizer.centered is False
    assert parse("sgd:nonfinite=skip").optimizer.nonfinite == "skip"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adm", "unknown optimizer 'adm' in 'adm'; choose one of: sgd, momentum"),
        ("adam:lr", "bad hyperparameter 'lr' in 'adam:lr'; write NAME"),
        ("adam:lr=", "bad hyperparameter 'lr='"),
        (
            "adam:foo=1",
            "adam has no hyperparameter 'foo' .*its hyperparameters are: lr, rho1, rho2",
        ),
        ("adam:lr=-1", r"lr must be in \(0, inf\), got -1.0 \(in 'adam:lr=-1'\)"),
        ("adam:lr=fast", r"lr must be a number in \(0, inf\), got 'fast'"),
        ("adam:amsgrad=maybe", "amsgrad must be true or false, got 'maybe'"),
        ("adam@pytorch", "adam has no preset 'pytorch'; available: seed, torch, optax, keras"),
        ("adam:lr=1,lr=2", "lr is given twice"),
        ("", "empty optimizer spec"),
    ],
)
def test_spec_errors_name_the_problem_and_the_allowed_values(text, message):
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_grid_syntax():
    key, values = parse_grid("lr=1e-4..1:5")
    assert key == "lr"
    np.testing.assert_allclose(values, [1e-4, 1e-3, 1e-2, 1e-1, 1])
    assert parse_grid("rho1=0,0.5,0.9")[1].tolist() == [0, 0.5, 0.9]
    for bad in ("lr", "lr=1..0.1:3", "lr=0..1:3", "lr=1e-3..1:1", "lr=a,b"):
        with pytest.raises(ValueError, match="bad --grid"):
            parse_grid(bad)


# -- subcommands ---------------------------------------------------------------------------


def test_list_shows_optimizers_problems_and_experiments(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in (
        "adam",
        "presets: @seed, @torch",
        "rosenbrock",
        "saddle",
        "bias_correction",
        "NAME[@PRESET]",
    ):
        assert word in out
    assert main(["list", "experiments"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[0] == "saddle"


def test_compare_writes_config_histories_figures_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(
        [
            "compare",
            "sgd:lr=0.001",
            "adam@torch:lr=0.05",
            "--problem",
            "rosenbrock",
            "--steps",
            "40",
            "--seed",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["optimizer", "steps", "to"]
    assert table[2].startswith("sgd:lr=0.001") and table[3].startswith("adam@torch:lr=0.05")
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "compare" and config["steps"] == 40 and config["seed"] == 3
    assert [o["spec"] for o in config["optimizers"]] == ["sgd:lr=0.001", "adam@torch:lr=0.05"]
    assert config["optimizers"][1]["eps"] == 1e-8 and "numpy" in config["versions"]
    rows = list(
        csv.reader(
            line for line in open(out / "history_sgd-lr-0.001.csv") if not line.startswith("#")
        )
    )
    assert rows[0][:2] == ["step", "loss"] and len(rows) == 42  # header + steps 0..40
    # The CSV's first loss is Rosenbrock at its start (−1.2, 1): 100·(1 − 1.44)² + 2.2² = 24.2.
    assert float(rows[1][1]) == pytest.approx(24.2)
    for name in ("trajectories.png", "curves.png", "index.html"):
        assert (out / name).exists()
    assert 'src="trajectories.png"' in (out / "index.html").read_text()


def test_run_on_an_ml_problem_reports_accuracy_and_a_validation_figure(tmp_path, capsys):
    rc = main(
        [
            "run",
            "adam:lr=0.01",
            "--problem",
            "logistic_regression",
            "--steps",
            "30",
            "--batch-size",
            "64",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert 0.5 < float(row[3]) <= 1.0  # final accuracy column
    assert (tmp_path / "validation.png").exists()
    assert not (tmp_path / "trajectories.png").exists()  # 30-D: no contour plot


def test_animate_writes_a_gif_with_the_asked_frames(tmp_path):
    from steplab.viz import ffmpeg_available, gif_frames

    rc = main(
        [
            "animate",
            "sgd:lr=0.05",
            "adam:lr=0.05",
            "--steps",
            "30",
            "--frames",
            "6",
            "--out",
            str(tmp_path),
            "--no-mp4",
        ]
    )
    assert rc == 0
    assert gif_frames(tmp_path / "animation.gif") == 6
    assert not (tmp_path / "animation.mp4").exists()
    assert ffmpeg_available() in (True, False)


def test_sweep_one_axis_and_two_axes(tmp_path, capsys):
    rc = main(
        [
            "sweep",
            "sgd",
            "adam",
            "--grid",
            "lr=1e-3..1:4",
            "--steps",
            "50",
            "--out",
            str(tmp_path / "a"),
        ]
    )
    assert rc == 0
    assert (tmp_path / "a" / "sweep.png").exists()
    assert (tmp_path / "a" / "sweep_sgd.csv").exists()
    out = capsys.readouterr().out
    assert "sgd (best lr=0.001)" in out  # Rosenbrock: SGD diverges for the larger α
    rc = main(
        [
            "sweep",
            "adam",
            "--grid",
            "lr=1e-3..1:3",
            "--grid",
            "rho1=0,0.9",
            "--steps",
            "30",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert rc == 0 and (tmp_path / "b" / "heatmap_adam.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "adam:lr=0"], "lr must be in (0, inf), got 0.0"),
        (["compare", "sgd", "nope"], "unknown optimizer 'nope'"),
        (["run", "adam", "--problem", "nope"], "unknown problem 'nope'; known: quadratic"),
        (["run", "adam", "--steps", "0"], "--steps must be a positive integer"),
        (
            ["run", "adam", "--problem-option", "dimension=3", "--problem", "quadratic"],
            "--problem-option for quadratic",
        ),
        (["compare", "sgd", "sgd"], "optimizer 'sgd' is given twice"),
        (
            ["animate", "sgd", "--problem", "quadratic", "--problem-option", "dim=3"],
            "animate needs a 2-D problem",
        ),
        (["sweep", "adam", "--grid", "lr=fast"], "bad --grid 'lr=fast'"),
        (["sweep", "sgd", "--grid", "rho1=0.1,0.2"], "sgd has no hyperparameter 'rho1'"),
        (["demo", "--only", "nope"], "unknown experiment 'nope'"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_traceback(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"steplab {argv[0]}: error: ")


def test_argparse_errors_also_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["list", "everything"])
    assert exc.value.code == 2
    assert "invalid choice: 'everything'" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_demo_writes_every_figure_and_an_index(tmp_path, capsys):
    rc = main(["demo", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    page = (tmp_path / "index.html").read_text()
    from steplab import experiments

    for name in experiments.LESSONS:
        assert name.split("_")[0] in page
    import re

    sources = re.findall(r'<(?:img|video) src="([^"]+)"', page)
    assert len(sources) == 14
    assert all((tmp_path / s).exists() for s in sources)
    assert "saddle_animation.gif" in sources
    # The data behind the figures: one CSV per lesson, and the configuration.
    history = (tmp_path / "saddle_histories.csv").read_text().splitlines()
    assert history[0].startswith("run,step,time,loss,grad_norm,x_0,x_1")
    assert history[1].startswith("sgd,0,") and ",1.0,0.001," in history[1]  # the start (1, 1e-3)
    assert len(list(tmp_path.glob("*.csv"))) == 8
    assert json.loads((tmp_path / "config.json").read_text())["quick"] is True
    assert "✗" not in out and out.count("✓") >= 20
    assert "experiment" in out.splitlines()[0] and "final loss" in out.splitlines()[0]
