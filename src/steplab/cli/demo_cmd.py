"""``steplab demo``: the lecture's comparisons and lessons, all figures, one index page.

Runs every experiment of the lecture's set (``steplab list experiments``) into ``--out``
(default ``steplab-out/``), writes ``index.html`` with each figure and its caption, prints
the summary table and checks each experiment's numerical claims (exit code 1 if one fails).
"""

from __future__ import annotations

import sys
import time

from steplab.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="reproduce the lecture's figures and lessons into one folder",
        description=common.plain(__doc__),
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument(
        "--out", default=common.DEFAULT_OUT, help=f"output folder (default {common.DEFAULT_OUT}/)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a reduced version (fewer steps and frames, PNG only) for tests",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="EXPERIMENT",
        help="run only this experiment (repeatable)",
    )
    parser.set_defaults(func=main)


def main(args) -> int:
    from steplab import experiments
    from steplab.experiments import SUMMARY_COLUMNS
    from steplab.viz.report import write_index

    lessons = [n for n, e in experiments.EXPERIMENTS.items() if e.lesson]
    names = [n for n in experiments.LESSONS if n in lessons]
    names += [n for n in lessons if n not in names]  # lessons registered later
    if args.only:
        for name in args.only:
            experiments.get(name)  # unknown names: ValueError listing the known ones
        names = [n for n in experiments.EXPERIMENTS if n in args.only]
    out = common.prepare_out(args.out)
    start = time.perf_counter()
    reports = []
    for name in common._progress(names, "experiments", True):
        reports.append(experiments.run(name, out, quick=args.quick))
    elapsed = time.perf_counter() - start

    rows = [row for r in reports for row in r.rows]
    claims = {f"{r.name}: {text}": ok for r in reports for text, ok in r.claims.items()}
    entries = [entry for r in reports for entry in r.figures]
    claims_html = (
        "<ul>"
        + "".join(f"<li>{'✓' if ok else '✗'} {text}</li>" for text, ok in claims.items())
        + "</ul>"
    )
    write_index(
        out,
        entries,
        title="steplab demo: Adam and friends",
        intro="The lecture's comparisons (saddle point, quadratic form) and lessons "
        "(adaptive step sizes, AdaGrad's decay, bias correction, step-size "
        f"sensitivity), reproduced in {elapsed:.0f} s.",
        table_html=common.html_table(rows, SUMMARY_COLUMNS)
        + "<h3>Claims checked</h3>"
        + claims_html,
    )
    common.write_config(out, {"command": "demo", "quick": args.quick, "experiments": names})
    print(common.format_table(rows, SUMMARY_COLUMNS))
    print()
    for text, ok in claims.items():
        print(f"{'✓' if ok else '✗'} {text}")
    failed = [t for t, ok in claims.items() if not ok]
    print(f"\n{len(entries)} figures in {out}/index.html ({elapsed:.1f} s)", file=sys.stderr)
    return 1 if failed else 0
