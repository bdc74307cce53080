"""``steplab run``: one optimizer on one problem.

steplab run adam@torch:lr=0.01 --problem logistic_regression --steps 300 --batch-size 32
"""

from __future__ import annotations

from steplab.cli import common
from steplab.cli.compare_cmd import compare


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run one optimizer on one problem",
        description=common.plain(__doc__)
        + "\nWrites its history, figures and configuration into --out and prints a summary.",
        formatter_class=common.HelpFormatter,
    )
    common.add_spec_argument(parser, nargs=1)
    common.add_problem_options(parser)
    common.add_run_options(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    return compare(args, "run")
