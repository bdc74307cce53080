"""lr schedules on the command line: ``adam:lr=cosine(0.01,1000)`` parses to the schedule
the Python API builds, every command that takes optimizer specs runs it to the same
numbers as the Python API, and every mistake is one line naming the schedules."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import steplab as sl
from steplab import schedules
from steplab.cli import main
from steplab.cli.spec import SCHEDULES, format_schedule, parse, parse_schedule

# One of each kind, with its Python construction.
EVERY_KIND = [
    schedules.constant_schedule(0.05),
    schedules.inverse_sqrt_schedule(0.2),
    schedules.exponential_decay(0.1, transition_steps=100, decay_rate=0.5, staircase=True),
    schedules.exponential_decay(0.1, transition_steps=7, decay_rate=0.9),
    schedules.cosine_decay_schedule(0.01, 1000),
    schedules.cosine_decay_schedule(0.01, 1000, alpha=0.1),
    schedules.linear_schedule(0.1, 0.001, 50),
    schedules.linear_warmup(0.3, 20),
    schedules.warmup_cosine_decay_schedule(0.0, 0.01, 100, 1000),
    schedules.warmup_cosine_decay_schedule(0.001, 0.01, 0, 10, end_value=1e-4),
]


def test_every_schedule_kind_has_a_spec_name():
    kinds = {type(s) for s in EVERY_KIND}
    assert kinds == set(schedules.Schedule.__subclasses__())  # none left out
    assert {format_schedule(s).partition("(")[0] for s in EVERY_KIND} == set(SCHEDULES)


@pytest.mark.parametrize("schedule", EVERY_KIND, ids=repr)
def test_format_and_parse_round_trip(schedule):
    text = format_schedule(schedule)
    assert parse_schedule(text) == schedule
    spec = parse(f"adam@torch:lr={text},rho1=0.8")
    assert spec.optimizer.lr == schedule
    assert spec.optimizer.config() == sl.Adam.like("torch", lr=schedule, rho1=0.8).config()
    assert spec.config()["lr"] == schedule.config()  # config.json records the schedule
    assert spec.label == f"adam@torch:lr={text},rho1=0.8"  # the text as written


@pytest.mark.parametrize(
    ("text", "schedule"),
    [
        ("cosine(0.01,1000)", schedules.cosine_decay_schedule(0.01, 1000)),
        (" cosine( 0.01 , 1e3 , alpha=0.1 ) ", schedules.cosine_decay_schedule(0.01, 1000, 0.1)),
        ("cosine(decay_steps=1000,init_value=0.01)", schedules.cosine_decay_schedule(0.01, 1000)),
        ("cosine_decay_schedule(0.01,1000)", schedules.cosine_decay_schedule(0.01, 1000)),
        ("inverse_sqrt(0.01)", schedules.inverse_sqrt_schedule(0.01)),
        (
            "step(0.1,100,0.5)",
            schedules.exponential_decay(0.1, transition_steps=100, decay_rate=0.5, staircase=True),
        ),
        (
            "exponential_decay(0.1,100,0.5)",
            schedules.exponential_decay(0.1, transition_steps=100, decay_rate=0.5),
        ),
        ("warmup(0.1,10)", schedules.linear_warmup(0.1, 10)),
        (
            "Warmup_Cosine(0,0.01,100,1000)",
            schedules.warmup_cosine_decay_schedule(0, 0.01, 100, 1000),
        ),
    ],
)
def test_positional_keyword_and_python_names(text, schedule):
    assert parse(f"sgd:lr={text}").optimizer.lr == schedule


def test_commas_inside_parentheses_do_not_split_hyperparameters():
    spec = parse("adam:rho1=0.8,lr=cosine(0.01,1000,0.1),amsgrad=true")
    assert spec.overrides == {
        "rho1": 0.8,
        "lr": schedules.cosine_decay_schedule(0.01, 1000, 0.1),
        "amsgrad": True,
    }


HELP = r"lr schedules: constant\(value\); inverse_sqrt\(init_value\); step\(init_value, "
COSINE = r"cosine\(init_value, decay_steps\[, alpha\]\)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "adam:lr=cosin(0.1,10)",
            r"unknown lr schedule 'cosin' \(did you mean 'cosine'\?\); " + HELP,
        ),
        ("adam:lr=cosine(0.1)", COSINE + r" needs decay_steps \(got 'cosine\(0.1\)'\)"),
        ("adam:lr=cosine()", COSINE + " needs init_value, decay_steps"),
        ("adam:lr=cosine(0.1,10,0,4)", COSINE + " takes at most 3 arguments, got 4"),
        ("adam:lr=cosine(-0.1,10)", COSINE + ": init_value must be a finite number >= 0, got -0.1"),
        ("adam:lr=cosine(0.1,10,alpha=-1)", COSINE + ": alpha must be a finite number >= 0"),
        ("adam:lr=cosine(0.1,10.5)", COSINE + ": decay_steps must be an integer, got '10.5'"),
        ("adam:lr=cosine(0.1,0)", COSINE + ": decay_steps must be an integer >= 1, got 0"),
        ("adam:lr=cosine(0.1,x)", COSINE + ": decay_steps must be a number, got 'x'"),
        ("adam:lr=cosine(nan,10)", COSINE + ": init_value must be a finite number >= 0, got nan"),
        (
            "adam:lr=cosine(0.1,decay=10)",
            r"has no argument 'decay' \(did you mean 'decay_steps'\?\)",
        ),
        ("adam:lr=cosine(alpha=0,0.1,10)", "positional argument '0.1' after a NAME=VALUE one"),
        ("adam:lr=cosine(0.1,10,init_value=1)", "init_value is given twice"),
        ("adam:lr=step(0.1,10,0)", r"step\(.*\): decay_rate must be a finite number > 0"),
        ("adam:lr=warmup_cosine(0,0.1,100,50)", "decay_steps must be an integer >= 101, got 50"),
        ("adam:lr=cosine(0.1,10", r"unbalanced parentheses in 'adam:lr=cosine\(0.1,10'; " + HELP),
        ("adam:lr=cosine(0.1,10))", "unbalanced parentheses"),
        (
            "adam:lr=cosine",
            r"lr must be a number in \(0, inf\), got 'cosine'; or a schedule.*" + HELP,
        ),
        ("adam:lr=(0.1)", r"'\(0.1\)' is no schedule; write NAME\(ARG,...\); " + HELP),
        (
            "adam:rho1=cosine(0.1,10)",
            r"only lr takes a schedule; rho1 must be a number in \[0, 1\)",
        ),
        ("adam:amsgrad=cosine(1,1)", "only lr takes a schedule; amsgrad must be true or false"),
    ],
)
def test_schedule_errors_name_the_schedules_and_their_arguments(text, message):
    with pytest.raises(ValueError, match=message) as error:
        parse(text)
    assert "\n" not in str(error.value)


def test_a_bad_schedule_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["run", "adam:lr=cosin(0.1,10)", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steplab run: error: unknown lr schedule 'cosin'")
    assert "warmup_cosine(init_value, peak_value, warmup_steps, decay_steps[, end_value])" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- the commands run the schedule as the Python API does ---------------------------------


def history(path):
    rows = list(csv.DictReader(line for line in open(path) if not line.startswith("#")))
    return np.array([[float(r["loss"]), float(r["x_0"]), float(r["x_1"])] for r in rows])


@pytest.mark.parametrize("command", ["run", "compare", "animate"])
def test_a_command_with_a_schedule_gives_the_python_apis_numbers(command, tmp_path, capsys):
    text = "adam:lr=warmup_cosine(0,0.05,5,40)"
    schedule = schedules.warmup_cosine_decay_schedule(0.0, 0.05, 5, 40)
    extra = ["--frames", "3", "--no-mp4"] if command == "animate" else []
    argv = [command, text, "--problem", "rosenbrock", "--steps", "40", "--out", str(tmp_path)]
    assert main(argv + extra) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith(text)  # the table's label
    expected = sl.minimize("rosenbrock", sl.Adam(lr=schedule), steps=40, seed=0, record_dim=2)
    got = history(tmp_path / "history_adam-lr-warmup-cosine-0-0.05-5-40.csv")
    want = np.column_stack([expected.history["loss"], expected.history["x"]])
    np.testing.assert_array_equal(got, want)  # the same steps, to the last bit
    # ... and not the constant step size's: the schedule reached the run.
    constant = sl.minimize("rosenbrock", sl.Adam(lr=0.05), steps=40, seed=0)
    assert constant.final_loss != expected.final_loss
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optimizers"][0]["spec"] == text
    assert config["optimizers"][0]["lr"] == {
        "schedule": "warmup_cosine_decay_schedule",
        "init_value": 0.0,
        "peak_value": 0.05,
        "warmup_steps": 5,
        "decay_steps": 40,
        "end_value": 0.0,
    }


def test_sweep_keeps_the_schedule_and_refuses_a_grid_over_lr(tmp_path, capsys):
    text = "adam:lr=cosine(0.05,30)"
    argv = ["sweep", text, "--grid", "rho1=0,0.5,0.9", "--steps", "30"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "a" / "sweep_adam-lr-cosine-0.05-30.csv").open()))
    expected = sl.sweep(
        "rosenbrock",
        {sl.Adam(lr=schedules.cosine_decay_schedule(0.05, 30)): {"rho1": [0, 0.5, 0.9]}},
        steps=30,
    )
    assert [float(r["final_loss"]) for r in rows] == [r["final_loss"] for r in expected]
    constant = sl.sweep("rosenbrock", {sl.Adam(lr=0.05): {"rho1": [0, 0.5, 0.9]}}, steps=30)
    assert [r["final_loss"] for r in constant] != [r["final_loss"] for r in expected]
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["optimizers"][0]["lr"]["schedule"] == "cosine_decay_schedule"

    assert main(["sweep", text, "--grid", "lr=1e-3..1:3", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "'adam:lr=cosine(0.05,30)' sets lr by a schedule, which --grid lr would replace" in err
    assert len(err.strip().splitlines()) == 1


def test_help_and_docs_list_every_schedule(capsys):
    from steplab.cli import spec

    for command in ("run", "compare", "animate", "sweep"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "'adam:lr=cosine(0.01,1000)'" in text, command
        for syntax in SCHEDULES.values():
            assert syntax.signature() in text, (command, syntax.name)
    for syntax in SCHEDULES.values():
        assert syntax.signature() in (spec.__doc__ or ""), syntax.name
    assert main(["list", "optimizers"]) == 0
    assert "lr may be a schedule, e.g. 'adam:lr=cosine(0.01,1000)'" in capsys.readouterr().out


def test_the_error_examples_in_docs_figures_md_are_what_the_cli_prints(tmp_path, capsys):
    import shlex
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "figures.md").read_text()
    lines = text.splitlines()
    examples = [
        (line[2:], lines[i + 1])
        for i, line in enumerate(lines[:-1])
        if line.startswith("$ steplab ") and lines[i + 1].startswith("steplab ")
    ]
    assert sum("cosin" in command for command, _ in examples) >= 3  # the schedules' ones
    for command, printed in examples:
        argv = shlex.split(command)[1:]
        assert main([*argv, "--out", str(tmp_path)]) == 2, command
        assert capsys.readouterr().err.strip() == printed, command
