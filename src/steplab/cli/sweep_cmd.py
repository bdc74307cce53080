"""``steplab sweep``: final loss over a grid of one or two hyperparameters.

    steplab sweep sgd adam --grid lr=1e-5..1:16 --problem rosenbrock --steps 300
    steplab sweep adam --grid lr=1e-4..1:9 --grid rho1=0,0.5,0.9,0.99
    steplab sweep 'adam:lr=cosine(0.1,300)' --grid rho1=0,0.5,0.9,0.99

``LOW..HIGH:N`` gives N log-spaced values; ``A,B,C`` lists them. One grid axis draws final
loss against it (one line per optimizer); two draw a heatmap per optimizer. Each
optimizer's grid runs as one vectorized sweep (``steplab.sweep``). An lr schedule stays
while another hyperparameter is swept; a grid over lr would replace it and is refused.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from steplab.cli import common
from steplab.cli.spec import _did_you_mean
from steplab.optim.schedules import Schedule

GRID_SYNTAX = "KEY=LOW..HIGH:N (log-spaced) or KEY=A,B,C, e.g. lr=1e-5..1:16"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="final loss over a grid of hyperparameters (line plot or heatmap)",
        description=common.plain(__doc__),
        formatter_class=common.HelpFormatter,
    )
    common.add_spec_argument(parser)
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="KEY=VALUES",
        help=GRID_SYNTAX + " (give once or twice)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per setting (default, as steplab.sweep: 1 on a deterministic problem, "
        "10 with minibatches or noise)",
    )
    common.add_problem_options(parser)
    common.add_run_options(parser, steps=300)
    parser.set_defaults(func=main)


def _split_grid(text: str) -> tuple[str, tuple[float, float, int] | list[float]]:
    """``--grid`` text → (key, (low, high, n)) or (key, [values]); nothing allocated."""
    key, eq, values = text.partition("=")
    key = key.strip()
    if not eq or not key or not values.strip():
        raise ValueError(f"bad --grid {text!r}; write {GRID_SYNTAX}")
    try:
        if ".." in values:
            span, _, count = values.partition(":")
            low_text, _, high_text = span.partition("..")
            low, high, n = float(low_text), float(high_text), int(count or 10)
            if not (0 < low < high) or n < 2:
                raise ValueError
            return key, (low, high, n)
        return key, [float(v) for v in values.split(",")]
    except ValueError:
        raise ValueError(
            f"bad --grid {text!r}; write {GRID_SYNTAX} (LOW..HIGH needs 0 < LOW < HIGH and N ≥ 2)"
        ) from None


def grid_count(text: str) -> int:
    """How many values a ``--grid`` text names, without making them."""
    spec = _split_grid(text)[1]
    return spec[2] if isinstance(spec, tuple) else len(spec)


def parse_grid(text: str) -> tuple[str, np.ndarray]:
    """``"lr=1e-4..1:5"`` → ``("lr", [1e-4, 1e-3, …, 1])``; ``"rho1=0,0.9"`` → values."""
    key, spec = _split_grid(text)
    if isinstance(spec, tuple):
        low, high, n = spec
        return key, np.geomspace(low, high, n)
    return key, np.array(spec)


#: Memory per configuration of a sweep, roughly: its table row (a dict of a dozen
#: entries), plus per parameter θ, gradient, up to three moments and a spare, in float64.
ROW_BYTES, PARAMETER_BYTES = 2048, 6 * 8


def main(args) -> int:
    import steplab as sl
    from steplab.run.records import EDGE_NOTE, best_at_edge
    from steplab.run.sweep import default_seeds
    from steplab.viz import heatmap_figure, log_norm_for, save, sweep_figure
    from steplab.viz.palette import pretty, readable
    from steplab.viz.report import FigureEntry

    specs = common.specs_from(args.optimizers)
    if len(args.grid) > 2:
        raise ValueError(f"--grid may be given once or twice, got {len(args.grid)} times")
    counts = [grid_count(g) for g in args.grid]  # checked before making any value
    common.check_positive("--seeds", args.seeds)
    common.check_positive("--steps", args.steps)
    common.check_positive("--batch-size", args.batch_size)
    problem = common.problem_from(args)
    if args.seeds is None:
        args.seeds = len(default_seeds(problem, args.batch_size))
    configurations = math.prod(counts) * args.seeds
    common.check_fits(
        "--grid",
        configurations * (ROW_BYTES + PARAMETER_BYTES * problem.dim),
        f"a sweep of {configurations:,} configurations (grid points × seeds)",
    )
    grid = dict(parse_grid(g) for g in args.grid)
    if len(grid) < len(args.grid):
        raise ValueError("--grid names the same hyperparameter twice")
    out = common.prepare_out(args.out)
    keys = list(grid)
    tables, finals, wall = {}, {}, {}
    for spec in common._progress(specs, "sweeps", True):
        for key in keys:
            if key not in spec.optimizer.hyperparameters():
                raise ValueError(
                    f"{spec.name} has no hyperparameter {key!r}"
                    f"{_did_you_mean(key, spec.optimizer.hyperparameters())}; its "
                    f"hyperparameters are: {', '.join(spec.optimizer.hyperparameters())}"
                )
            if key == "lr" and isinstance(spec.optimizer.lr, Schedule):
                raise ValueError(
                    f"{spec.label!r} sets lr by a schedule, which --grid lr would replace by "
                    "constants; sweep another hyperparameter, or give lr as a number"
                )
        started = time.perf_counter()
        table = sl.sweep(
            problem,
            {spec.optimizer: grid},
            seeds=range(args.seed, args.seed + args.seeds),
            steps=args.steps,
            batch_size=args.batch_size,
        )
        wall[spec.label] = time.perf_counter() - started  # the rows share one vectorized run
        table.to_csv(out / f"sweep_{common.slug(spec.label)}.csv")
        if table.interrupted:  # Ctrl+C: its rows so far are written; stop here (exit 130)
            raise KeyboardInterrupt
        tables[spec.label] = table
        loss = np.array([np.inf if r["status"] == "diverged" else r["final_loss"] for r in table])
        shape = [len(v) for v in grid.values()] + [args.seeds]
        finals[spec.label] = np.median(loss.reshape(shape), axis=-1)  # median over seeds
    entries = []
    if len(keys) == 1:
        values = grid[keys[0]]
        fig = sweep_figure(
            {k: (values, v, ~np.isfinite(v)) for k, v in finals.items()},
            xlabel=readable(keys[0]),
            title=f"{common.figure_title(problem)}: final loss after {args.steps} steps"
            + (f" (median of {args.seeds} seeds)" if args.seeds > 1 else " (1 seed)"),
        )
        save(fig, out / "sweep")
        entries.append(FigureEntry("sweep.png", "Final loss against " + keys[0], ""))
    else:
        for label, values in finals.items():
            fig = heatmap_figure(
                values.T,
                grid[keys[0]],
                grid[keys[1]],
                xlabel=readable(keys[0]),
                ylabel=readable(keys[1]),
                title=f"{pretty(label)} on {common.figure_title(problem)}",
                norm=log_norm_for(*finals.values()),  # one color scale for all optimizers
            )
            name = f"heatmap_{common.slug(label)}"
            save(fig, out / name)
            entries.append(
                FigureEntry(
                    f"{name}.png",
                    f"{label}: {keys[0]} × {keys[1]}",
                    "Gray: diverged; red box: best. Every heatmap uses the same color scale.",
                )
            )
    rows = []
    for label, values in finals.items():
        best = np.unravel_index(int(np.argmin(values)), values.shape)
        setting = ", ".join(f"{k}={grid[k][i]:.3g}" for k, i in zip(keys, best, strict=True))
        edges = best_at_edge(values, keys)
        if edges:
            setting += f" — {EDGE_NOTE} ({', '.join(edges)})"
            print(
                f"steplab sweep: {label}: the best setting is {EDGE_NOTE} ({', '.join(edges)})",
                file=sys.stderr,
            )
        rows.append(
            {
                "optimizer": f"{label} (best {setting})",
                "steps to tol": None,
                "final loss": float(values[best]),
                "final acc": None,
                "status": f"{int(np.sum(~np.isfinite(values)))}/{values.size} diverged",
                "time [s]": wall[label],
            }
        )
    config = {
        "command": "sweep",
        "problem": problem.info(),
        "optimizers": [s.config() for s in specs],
        "grid": {k: v.tolist() for k, v in grid.items()},
        "steps": args.steps,
        "seeds": list(range(args.seed, args.seed + args.seeds)),
    }
    common.finish(out, f"steplab sweep: {problem.name}", entries, rows, config)
    return 0
