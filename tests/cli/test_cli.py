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
        (
            "adm",
            r"unknown optimizer 'adm' in 'adm' \(did you mean 'adam'\?\); choose one of: sgd, mom",
        ),
        ("adam:rho=0.9", r"adam has no hyperparameter 'rho' .*\(did you mean 'rho1' or 'rho2'\?\)"),
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
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    at = header.index("final acc")  # the table keeps only columns that apply
    assert 0.5 < float(row[at:].split()[0]) <= 1.0
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


def test_animate_shows_the_mp4_as_a_video_with_controls(tmp_path):
    from steplab.viz import ffmpeg_available

    assert ffmpeg_available(), "CI installs ffmpeg (.ci/run)"
    args = ["animate", "sgd:lr=0.05", "adam:lr=0.05", "--steps", "20", "--frames", "4"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert '<video src="animation.mp4" controls' in page
    assert 'href="animation.gif"' in page  # the GIF is linked beside it


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
    # Rosenbrock: SGD diverges for the larger α, so its best is the grid's smallest: flagged.
    assert "sgd (best lr=0.001 — at the grid's edge: widen it (lr))" in out
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
            "quadratic has no option 'dimension'; its options are: eigenvalues, condition, dim",
        ),
        (
            ["run", "adam", "--problem-option", "foo=1"],
            "rosenbrock has no option 'foo'; its options are: dim, a, b",
        ),
        (
            ["run", "adam", "--problem", "mlp", "--problem-option", "hidden=abc"],
            "--problem-option hidden must be comma-separated integers",
        ),
        (
            ["run", "adam", "--problem", "mlp", "--problem-option", "hiden=10"],
            "mlp has no option 'hiden' (did you mean 'hidden'?)",
        ),
        (
            ["run", "adam", "--problem-option", "dim=2.5"],
            "--problem-option dim must be an integer, got '2.5'",
        ),
        (["run", "adam", "--problem", "rosenbrok"], "(did you mean 'rosenbrock'?)"),
        (["run", "adam", "--problem", "x**2 + $"], "is no formula steplab can read"),
        (["run", "adam", "--data", "x.csv"], "--data and --target go together"),
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
    assert len(sources) == 14  # --quick: GIF only (no MP4), no 3-D surface; saddle ranking
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


def test_problem_as_formula_and_as_csv_data(tmp_path, capsys):
    rc = main(
        ["compare", "sgd:lr=0.05", "adam:lr=0.1", "--problem", "x**2 + 10*y**2"]
        + ["--steps", "200", "--out", str(tmp_path / "f")]
    )
    assert rc == 0
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert config["problem"]["description"] == "f = x**2 + 10*y**2"
    assert (tmp_path / "f" / "trajectories.png").exists()  # a 2-D formula: contours drawn
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    rows = ["a,b,label"] + [f"{a},{b},{t}" for (a, b), t in zip(X, labels, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    rc = main(
        ["run", "adam:lr=0.1", "--data", str(tmp_path / "d.csv"), "--target", "label"]
        + ["--steps", "100", "--out", str(tmp_path / "c")]
    )
    assert rc == 0
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["problem"]["name"].startswith("logistic_regression")  # two classes
    history = (tmp_path / "c" / "history_adam-lr-0.1.csv").read_text()
    assert "val_accuracy" in history


def test_sweep_reports_wall_time_and_one_seed_on_a_deterministic_problem(tmp_path, capsys):
    import time

    from steplab.run.sweep import default_seeds

    started = time.perf_counter()
    rc = main(
        ["sweep", "adam", "--grid", "lr=1e-3..1:5", "--steps", "100"] + ["--out", str(tmp_path)]
    )
    elapsed = time.perf_counter() - started
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "sweep_adam.csv").open()))
    assert len(rows) == 5  # one seed per setting: Rosenbrock is deterministic
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("adam"))
    shown = float(line.split()[-1])
    assert 0 < shown < elapsed  # the sweep's real wall time, not a sum over its rows
    assert default_seeds(sl.problems.get("rosenbrock")) == [0]
    noisy = sl.problems.with_gradient_noise(sl.problems.get("rosenbrock"), 0.1)
    assert default_seeds(noisy) == list(range(10))
    assert default_seeds(sl.problems.get("two_d_beale")) == [0]  # full batch: deterministic
    assert default_seeds(sl.problems.get("two_d_beale"), batch_size=32) == list(range(10))
    assert default_seeds(sl.problems.get("logistic_regression"), batch_size=32) == list(range(10))


def test_help_is_plain_text_and_reproduce_lists_every_reproduction(capsys):
    from steplab import reproductions

    for command in ("run", "compare", "animate", "sweep", "demo", "reproduce"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text, command
        if command == "reproduce":
            for name in reproductions.REPRODUCTIONS:
                assert f"  {name}  " in text or f"  {name} " in text, name


def test_animate_zoom_keeps_the_saddle_point_in_view():
    from steplab.cli.animate_cmd import early_view

    view = ((-1.5, 1.5), (-1.5, 1.5))
    start_only = [np.array([[1.0, 1e-3], [0.98, 1.1e-3]])]
    (x0, x1), (y0, y1) = early_view(view, start_only, [(0.0, 0.0)])
    assert x0 < 0 < x1 and y0 < 0 < y1  # the saddle at the origin is inside
    assert x1 - x0 < 3 and x1 >= 1.0  # zoomed in, and the start inside too


def test_one_seed_prints_no_spread_and_titles_read_as_words():
    from steplab.reproductions._common import pm
    from steplab.viz.palette import readable

    assert pm([0.5]) == "0.500 (1 seed)"  # --quick with one seed: no "± 0.000"
    assert pm([0.5, 0.7]) == "0.600 ± 0.141"
    assert readable("logistic_regression:breast_cancer") == "Logistic regression, breast cancer"
    assert readable("val_accuracy") == "validation accuracy"
    assert readable("softmax_regression:mnist1d") == "Softmax regression, MNIST-1D"


def test_outputs_never_mix_a_second_command_removes_what_the_first_wrote(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not steplab's: never touched
    args = ["--problem", "x**2 + 10*y**2", "--steps", "20", "--out", str(out)]
    assert main(["compare", "sgd:lr=0.05", "adam:lr=0.1", *args]) == 0
    assert (out / "history_sgd-lr-0.05.csv").exists() and (out / "trajectories.png").exists()
    assert main(["sweep", "sgd", "--grid", "lr=1e-3..0.1:3", *args]) == 0
    left = {p.name for p in out.iterdir()}
    assert "history_sgd-lr-0.05.csv" not in left and "trajectories.png" not in left
    assert {"sweep_sgd.csv", "index.html", "config.json", "notes.txt"} <= left
    assert "removed" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["command"].startswith("sweep")


def test_compared_configurations_differ_in_colour_marker_and_line(tmp_path):
    from steplab.viz.palette import marker, styles, variants

    labels = ["adam:lr=0.05", "adam:lr=cosine(0.05,500)", "sgd", "adam:lr=0.1"]
    style, variant = styles(labels), variants(labels)
    adams = labels[:2] + labels[3:]
    assert len({style[a]["color"] for a in adams}) == 3
    assert len({style[a]["linestyle"] for a in adams}) == 3
    assert len({marker(a, variant[a]) for a in adams}) == 3
    assert style["sgd"]["linestyle"] == "-" and marker("sgd", variant["sgd"]) == marker("sgd")


def test_table_shows_only_columns_that_apply_and_formula_titles(tmp_path, capsys):
    args = ["--problem", "x**2 + 10*y**2", "--steps", "20", "--out", str(tmp_path)]
    assert main(["compare", "sgd:lr=0.05", "adam:lr=0.1", *args]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "final acc" not in header and "steps to tol" not in header  # no tolerance, no data
    assert "final loss" in header and "status" in header
    from steplab.cli.common import figure_title
    from steplab.problems import expression

    assert figure_title(expression("x**2 + 10*y**2")) == "f = x**2 + 10*y**2"
    assert figure_title(sl.problems.get("rosenbrock")) == "Rosenbrock"
    assert (
        main(
            ["compare", "sgd:lr=0.001", "--problem", "rosenbrock", "--steps", "5"]
            + ["--out", str(tmp_path / "r")]
        )
        == 0
    )
    assert "steps to tol" in capsys.readouterr().out.splitlines()[0]  # Rosenbrock has f_min
