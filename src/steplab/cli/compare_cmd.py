"""``steplab compare``: several optimizers on one problem, side by side.

    steplab compare sgd momentum adam:lr=0.05 --problem rosenbrock --steps 500
    steplab compare adam:lr=0.05 'adam:lr=cosine(0.05,500)' --problem rosenbrock --steps 500

Writes into ``--out``: config.json, one history CSV per optimizer, figures (trajectories on
2-D problems, loss and gradient norm against step and time, validation metric for ML
problems) and index.html; prints the summary table.
"""

from __future__ import annotations

import sys

from steplab.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="run several optimizers on one problem and compare them",
        description=common.plain(__doc__),
        formatter_class=common.HelpFormatter,
    )
    common.add_spec_argument(parser)
    common.add_problem_options(parser)
    common.add_run_options(parser)
    parser.set_defaults(func=main)


def compare(args, command: str) -> int:
    specs = common.specs_from(args.optimizers)
    problem = common.problem_from(args)
    out = common.prepare_out(args.out)
    runs = common.run_specs(problem, specs, args)
    common.write_histories(out, runs)
    entries = common.run_figures(out, problem, runs)
    rows = common.summary_rows(runs, common.tolerance(problem, args))
    config = {
        "command": command,
        "problem": problem.info(),
        "problem_options": args.problem_option or [],
        "optimizers": [s.config() for s in specs],
        "steps": args.steps,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "tol": common.tolerance(problem, args),
    }
    common.finish(out, f"steplab {command}: {problem.name}", entries, rows, config)
    if common.interrupted(runs):
        print(f"steplab {command}: interrupted; {out}/ holds the runs so far", file=sys.stderr)
        return 130
    return 0


def main(args) -> int:
    return compare(args, "compare")
