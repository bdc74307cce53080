"""What the run, compare, animate and sweep subcommands share: options, the problem, the
output folder (configuration JSON, histories CSV, figures, index page) and the summary table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from steplab._extras import requires
from steplab._io import write_text
from steplab.cli import UserError, outputs
from steplab.cli.spec import (
    FALSE,
    TRUE,
    OptimizerSpec,
    _auto,
    _did_you_mean,
    parse,
    parse_key_values,
)

DEFAULT_OUT = "steplab-out"


def plain(text: str) -> str:
    """A docstring as plain text for ``--help``: no reStructuredText markup (````code````,
    ``:func:`name```), paragraphs and indented examples kept."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks (its examples) and shows defaults as written."""


TABLE_COLUMNS = ("optimizer", "steps to tol", "final loss", "final acc", "status", "time [s]")


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------


def add_problem_options(parser, default_problem: str = "rosenbrock") -> None:
    parser.add_argument(
        "--problem",
        default=None,
        help=f"a problem name (see `steplab list problems`; default {default_problem}) or a "
        'formula in x, y (or x1..xn), e.g. "x**2 + 10*y**2"',
    )
    parser.add_argument(
        "--problem-option",
        action="append",
        metavar="KEY=VALUE",
        help="option for the problem, e.g. dim=10 or hidden=100,100 (repeatable; a wrong "
        "name lists the allowed ones)",
    )
    parser.add_argument(
        "--data",
        metavar="CSV",
        default=None,
        help="your own data: a CSV file with a header row (needs --target); the problem "
        "defaults to linear, logistic or softmax regression by the target",
    )
    parser.add_argument("--target", default=None, help="the CSV column to predict (with --data)")
    parser.set_defaults(default_problem=default_problem)


def add_run_options(parser, steps: int = 500) -> None:
    parser.add_argument(
        "--steps", type=int, default=steps, help=f"optimizer steps (default {steps})"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="minibatch size for data problems (default: full batch)",
    )
    parser.add_argument(
        "--tol",
        type=_tolerance,
        default=None,
        help="loss tolerance for the 'steps to tol' column (default: "
        "1e-6 above the known minimum, if any)",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT}/)"
    )


def _tolerance(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("must be a number, got nan")
    return value


def prepare_out(text: str | os.PathLike) -> Path:
    """The ``--out`` folder, created and checked writable before anything is computed.

    A path that is a file, lies under a file, or cannot be created or written is a
    :class:`UserError` (one line, exit 2), raised now rather than after a long run.
    """
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; give a folder name")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"cannot create --out {out}: a part of the path is a file") from None
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    try:  # a real write: permissions alone do not tell (read-only mounts, root)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UserError(f"cannot write into --out {out}: {exc.strerror or exc}") from None
    outputs.begin(out)  # finish() removes what an earlier command left here
    return out


def _schedule_epilog() -> str:
    from steplab.cli.spec import SCHEDULES

    lines = [
        "lr may be a schedule of the step t = 1, 2, … (quote it for the shell):",
        "  'adam:lr=cosine(0.01,1000)'    cosine decay from 0.01 to 0 over 1000 steps",
        "  'adam:lr=inverse_sqrt(0.01)'   0.01/√t",
        "  'sgd:lr=step(0.1,100,0.5)'     0.1, halved every 100 steps",
        "Schedules (arguments positional, or NAME=VALUE; *_steps are integers):",
    ]
    for syntax in SCHEDULES.values():
        signature = syntax.signature()
        if len(signature) <= 47:
            lines.append(f"  {signature:<49}{syntax.summary}")
        else:
            lines += [f"  {signature}", f"  {'':<49}{syntax.summary}"]
    return "\n".join(lines)


def add_spec_argument(parser, nargs="+") -> None:
    parser.add_argument(
        "optimizers",
        nargs=nargs,
        metavar="OPTIMIZER",
        help="NAME[@PRESET][:KEY=VALUE,...], e.g. adam:lr=0.01 or adam@torch; lr may be a "
        "schedule, e.g. 'adam:lr=cosine(0.01,1000)' (see below)",
    )
    parser.epilog = _schedule_epilog()


def problem_from(args):
    """The problem the options name: a catalogue name, a formula, or an ML problem on
    ``--data``; unknown names, options and values raise ValueError naming the allowed ones."""
    from steplab import problems

    name = args.problem
    data = None
    if getattr(args, "data", None) is not None or getattr(args, "target", None) is not None:
        if not (args.data and args.target):
            raise ValueError("--data and --target go together: --data FILE.csv --target COLUMN")
        data = problems.from_csv(args.data, args.target)
        name = name or _regression_for(data)
        if name not in ML_PROBLEMS:
            raise ValueError(
                f"--data needs a problem that learns from data: {', '.join(ML_PROBLEMS)}; "
                f"got {name!r}"
            )
    name = name or args.default_problem
    texts = args.problem_option
    if name not in problems.CATALOGUE:
        if texts:
            raise ValueError("--problem-option applies to a named problem, not a formula")
        return _formula(name)
    options = problem_options(name, parse_key_values(texts, "--problem-option"), data is None)
    check_fits("--problem-option", problem_bytes(name, options), f"problem {name}")
    if data is not None:
        options["data"] = data
    return problems.get(name, **options)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (a very large number where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 2**62


def _gib(nbytes: float) -> str:
    return f"{nbytes / 1024**3:,.1f} GiB"


def check_fits(option: str, nbytes: float, what: str) -> None:
    """Refuse, before allocating anything, work whose estimated memory (``nbytes``) exceeds
    the machine's physical memory: one line naming ``option`` (a ``MemoryError`` part way
    through is a traceback, and may come only after minutes of swapping)."""
    limit = memory_bytes()
    if nbytes > limit:
        raise ValueError(
            f"{option}: {what} would need about {_gib(nbytes)} of memory, more than this "
            f"machine's {_gib(limit)}; ask for less"
        )


def problem_bytes(name: str, options: dict) -> float:
    """The memory a catalogue problem takes, roughly, from the options that scale it: a
    quadratic keeps its dim×dim Hessian (and rotation) in float64; an MLP its weights and
    a run's copies of them (θ, gradient, two moments), for each pair of hidden layers."""
    if name.startswith("quadratic") and "dim" in options:
        dim = float(options["dim"])
        return 2 * 8 * dim * dim
    hidden = options.get("hidden")
    if hidden is not None:
        widths = [float(w) for w in np.atleast_1d(hidden)]
        weights = sum(a * b for a, b in zip(widths, widths[1:], strict=False)) + sum(widths)
        return 4 * 8 * weights
    return 0.0


ML_PROBLEMS = ("linear_regression", "logistic_regression", "softmax_regression", "mlp")


def _regression_for(data) -> str:
    if data.task == "regression":
        return "linear_regression"
    return "logistic_regression" if data.n_classes == 2 else "softmax_regression"


def _formula(text: str):
    from steplab import problems

    try:
        return problems.expression(text)
    except ValueError as exc:
        if any(c in text for c in "*+-/()^ ") or not text.isidentifier():
            raise ValueError(f"--problem {text!r} is no formula steplab can read: {exc}") from None
        raise ValueError(
            f"unknown problem {text!r}{_did_you_mean(text, problems.CATALOGUE)}; known: "
            f'{", ".join(problems.CATALOGUE)} (or a formula such as "x**2 + 10*y**2")'
        ) from None


def _keywords(function) -> dict:
    """A function's keyword parameters and their defaults (no ``*args``/``**options``)."""
    import inspect

    return {
        p.name: p.default
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def allowed_problem_options(name: str, data: str | None = None) -> dict:
    """What ``--problem-option`` may set for the catalogue problem ``name``: option → default.
    For ML problems this includes the dataset's options (split fractions, its generator's)."""
    from steplab.problems import CATALOGUE, datasets, noise

    if name.startswith("two_d_"):
        allowed = _keywords(noise.two_d_noisy)
        allowed.pop("name")
        return allowed
    allowed = _keywords(CATALOGUE[name].factory)
    if name in ML_PROBLEMS:
        data = data if data is not None else allowed.get("data")
        split = _keywords(datasets.make_dataset)
        for internal in ("name", "X", "y", "task", "X_test", "y_test", "feature_names"):
            split.pop(internal)
        allowed.update(split)
        if data == "mnist1d":
            allowed.update(_keywords(datasets.load_mnist1d))
        elif data == "synthetic_linear":
            allowed.update(_keywords(datasets.synthetic_linear))
    return allowed


def problem_options(name: str, options: dict, data_by_name: bool = True) -> dict:
    """``options`` checked against what problem ``name`` takes and converted to the type of
    each option's default (``hidden=100,100`` → ``(100, 100)``)."""
    allowed = allowed_problem_options(name, options.get("data") if data_by_name else None)
    if not data_by_name:
        allowed.pop("data", None)
    out = {}
    for key, text in options.items():
        if key not in allowed:
            shown = ", ".join(allowed) if allowed else "none"
            raise ValueError(
                f"{name} has no option {key!r}{_did_you_mean(key, allowed)}; its options are: "
                f"{shown}"
            )
        out[key] = _typed(key, text, allowed[key])
    return out


def _typed(key: str, text: str, default):
    """``text`` as the type of ``default``; a clear error when it does not fit."""
    raw = str(text).strip()
    try:
        if isinstance(default, bool):
            return _boolean(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(int(v) for v in raw.split(",") if v.strip())
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(
            type(default), "comma-separated integers, e.g. 100,100"
        )
        raise ValueError(f"--problem-option {key} must be {kind}, got {raw!r}") from None
    if isinstance(default, str):
        return raw
    if "," in raw:  # a list of numbers, e.g. eigenvalues=1,100
        return tuple(_auto(v.strip()) for v in raw.split(","))
    return _auto(raw)


def _boolean(raw: str) -> bool:
    if raw.lower() in TRUE + ("1",):
        return True
    if raw.lower() in FALSE + ("0",):
        return False
    raise ValueError(raw)


def specs_from(texts: list[str]) -> list[OptimizerSpec]:
    specs = [parse(t) for t in texts]
    labels = [s.label for s in specs]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise ValueError(f"optimizer {duplicated[0]!r} is given twice")
    return specs


def check_positive(name: str, value) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


# --------------------------------------------------------------------------------------
# Running and writing
# --------------------------------------------------------------------------------------


def run_specs(problem, specs, args, *, progress: bool = True) -> dict:
    """``sl.minimize`` for every spec; returns ``{label: Run}``."""
    import steplab as sl

    check_positive("--steps", args.steps)
    check_positive("--batch-size", args.batch_size)
    runs = {}
    for spec in _progress(specs, "optimizers", progress):
        runs[spec.label] = sl.minimize(
            problem,
            spec.optimizer,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            # A per-step bar on a terminal when the run is long (minimize decides); off in
            # pipes and logs.
            progress=None if progress else False,
        )
        if runs[spec.label].status == "interrupted":
            break  # Ctrl+C: the caller writes what was computed, then exits with 130
    return runs


def interrupted(runs: dict) -> bool:
    return any(run.status == "interrupted" for run in runs.values())


def _progress(items, desc: str, enabled: bool):
    """``items``, saying which one runs now: a bar naming the current item on a terminal,
    else one line per item on stderr (a long first item must not look like a hang)."""
    if not enabled or len(items) < 2:
        return items
    return _announced(list(items), desc)


def _announced(items: list, desc: str):
    if not sys.stderr.isatty():
        for i, item in enumerate(items, 1):
            name = getattr(item, "label", item)
            print(f"{desc} {i}/{len(items)}: {name} …", file=sys.stderr, flush=True)
            yield item
        return
    with requires("viz", "progress bars"):
        from tqdm import tqdm

    with tqdm(total=len(items), desc=desc, leave=False) as bar:
        for item in items:
            bar.set_postfix_str(str(getattr(item, "label", item)))
            yield item
            bar.update(1)


def slug(label: str) -> str:
    """A file-name-safe version of a spec label: ``adam@torch:lr=0.01`` → ``adam-torch-lr-0.01``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")


def tolerance(problem, args) -> float | None:
    if args.tol is not None:
        return args.tol
    f_min = getattr(problem, "f_min", None)
    if f_min is not None and np.isfinite(f_min):
        return float(f_min) + 1e-6
    return None


def steps_to(history, tol: float | None):
    if tol is None:
        return None
    hits = np.flatnonzero(np.asarray(history["loss"]) <= tol)
    return int(history["step"][hits[0]]) if hits.size else None


def final_accuracy(run):
    for key in ("test_accuracy", "val_accuracy", "train_accuracy"):
        if key in run.metrics:
            return float(run.metrics[key])
    return None


def summary_rows(runs: dict, tol: float | None) -> list[dict]:
    rows = []
    for label, run in runs.items():
        rows.append(
            {
                "optimizer": label,
                # "never" when the tolerance was not reached; no value when there is none
                "steps to tol": "never"
                if tol is not None and steps_to(run.history, tol) is None
                else steps_to(run.history, tol),
                "final loss": run.final_loss,
                "final acc": final_accuracy(run),
                "status": run.status,
                "time [s]": run.wall_time,
            }
        )
    return rows


def format_cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[dict], columns=TABLE_COLUMNS) -> str:
    """A plain-text table: one header, aligned columns."""
    cells = [[format_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, rule, *body])


def html_table(rows: list[dict], columns=TABLE_COLUMNS) -> str:
    import html

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(format_cell(r.get(c)))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_config(out: Path, config: dict) -> Path:
    """``out/config.json``: the exact command, problem, optimizers and library versions."""
    from steplab.run import versions

    path = out / "config.json"
    write_text(path, json.dumps({**config, "versions": versions()}, indent=2, default=_json))
    return path


def _json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_histories(out: Path, runs: dict) -> list[Path]:
    return [run.to_csv(out / f"history_{slug(label)}.csv") for label, run in runs.items()]


def run_figures(out: Path, problem, runs: dict) -> list:
    """The general figures for any set of runs: contours + trajectories (2-D problems),
    loss and gradient norm against step and wall time, validation metric (ML problems)."""
    from steplab.viz import CurvePanel, Panel, contour_figure, curves_figure, save
    from steplab.viz.palette import readable
    from steplab.viz.report import FigureEntry

    entries = []
    title = figure_title(problem)
    histories = {label: run.history for label, run in runs.items()}
    bounds = None
    if problem.dim == 2 and all("x" in h for h in histories.values()):
        bounds = _view(problem, histories)
    if bounds is not None:
        fig = contour_figure(
            lambda xy: problem.value(np.atleast_2d(xy)),
            {k: h["x"] for k, h in histories.items()},
            [Panel(title, bounds, points=problem.minima, points_label="minimum")],
            log_levels=(problem.f_min is not None and np.isfinite(problem.f_min)),
        )
        save(fig, out / "trajectories")
        entries.append(
            FigureEntry(
                "trajectories.png", "Trajectories", "Iterates on the contours of the objective."
            )
        )

    def series(x_key, y_key):
        return {k: (h[x_key], h[y_key]) for k, h in histories.items()}

    panels = [
        CurvePanel("Loss per step", "step", "loss", series("step", "loss"), logy=_positive(runs)),
        CurvePanel(
            "Loss over wall time", "time [s]", "loss", series("time", "loss"), logy=_positive(runs)
        ),
        CurvePanel("Gradient norm", "step", "‖g‖", series("step", "grad_norm"), logy=True),
    ]
    save(curves_figure(panels, title=title), out / "curves")
    entries.append(
        FigureEntry(
            "curves.png",
            "Loss and gradient norm",
            "Against the step and the wall time (log scales).",
        )
    )
    metric = next(
        (m for m in ("val_accuracy", "val_loss") if all(m in h for h in histories.values())), None
    )
    if metric:
        data = {}
        for k, h in histories.items():
            keep = np.isfinite(h[metric])
            data[k] = (h["step"][keep], h[metric][keep])
        save(
            curves_figure(
                [CurvePanel(readable(metric).capitalize(), "step", readable(metric), data)],
                title=title,
            ),
            out / "validation",
        )
        entries.append(
            FigureEntry(
                "validation.png",
                "Validation metric",
                f"{readable(metric).capitalize()} on held-out data, evaluated during training.",
            )
        )
    return entries


def figure_title(problem) -> str:
    """A figure's title for ``problem``: its readable name, or a typed formula itself
    (``f = x**2 + 10*y**2``, not "Expression")."""
    from steplab.viz.palette import readable

    text = getattr(problem, "text", "")
    return f"f = {text}" if text else readable(problem.name)


def applicable_columns(rows: list[dict], columns=TABLE_COLUMNS) -> tuple:
    """The columns with a value in some row: "steps to tol" without a tolerance, or "final
    acc" on a test function, would be "—" in every row and say nothing."""
    return tuple(c for c in columns if any(format_cell(r.get(c)) != "—" for r in rows)) or columns


def _positive(runs) -> bool:
    return all(np.nanmin(run.history["loss"]) > 0 for run in runs.values())


def _view(problem, histories) -> tuple | None:
    """The problem's box, widened to hold every finite iterate (to a limit). A problem
    without a box (a 2-parameter regression: one feature and the bias) gets the iterates'
    own box, a tenth wider on each side; None if no iterate is finite."""
    if problem.bounds is None:
        finite = [x[np.all(np.isfinite(x), axis=1)] for x in (h["x"] for h in histories.values())]
        points = np.concatenate([np.reshape(x, (-1, 2)) for x in finite])
        if not len(points):
            return None
        low, high = points.min(axis=0), points.max(axis=0)
        margin = np.maximum(0.1 * (high - low), 1e-3 * np.maximum(1.0, np.abs(high)))
        return tuple(zip(low - margin, high + margin, strict=True))
    low, high = problem.bounds[:, 0].copy(), problem.bounds[:, 1].copy()
    for h in histories.values():
        x = h["x"][np.all(np.isfinite(h["x"]), axis=1)]
        if len(x):
            span = high - low
            low = np.maximum(np.minimum(low, x.min(axis=0)), low - span)
            high = np.minimum(np.maximum(high, x.max(axis=0)), high + span)
    return tuple(zip(low, high, strict=True))


def finish(out: Path, title: str, entries: list, rows: list[dict], config: dict) -> None:
    """Write config and index page, print the table and where everything went."""
    from steplab.viz.report import write_index

    write_config(out, config)
    columns = applicable_columns(rows)
    write_index(out, entries, title=title, table_html=html_table(rows, columns))
    print(format_table(rows, columns))
    removed = outputs.settle(out)  # the previous command's files that this one replaced
    if removed:
        print(
            f"removed {len(removed)} file(s) an earlier command wrote into {out}/", file=sys.stderr
        )
    print(f"\nwrote {out}/ (index.html, config.json, histories, figures)", file=sys.stderr)
