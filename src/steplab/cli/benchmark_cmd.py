"""``steplab benchmark``: DeepOBS' protocol over a suite of problems.

    steplab benchmark                                   # small suite (docs/distributed.md)
    steplab benchmark --suite full --engine ray --address HEAD:6379
    steplab benchmark --optimizers sgd adam --problems rosenbrock mlp_digits

Per problem and optimizer: the step size tuned on a log grid (one seed), the best rerun
with several seeds; then the summary table (final test loss/accuracy, mean ± std), a
sensitivity plot per problem and a Dolan–Moré performance profile. Results are stored as
they finish (OUT/stores/*.sqlite): the same command started again resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from steplab.cli.sweep_cmd import GRID_SYNTAX, parse_grid


def register(subparsers) -> None:
    from steplab import benchmark

    parser = subparsers.add_parser(
        "benchmark",
        help="DeepOBS-style benchmark: tune α, rerun over seeds, table and profiles",
        description=__doc__.split("\n\n", 1)[0],
    )
    parser.add_argument(
        "--suite",
        default="small",
        choices=list(benchmark.SUITES),
        help="; ".join(f"{s.name}: {s.description}" for s in benchmark.SUITES.values()),
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=list(benchmark.DEFAULT_OPTIMIZERS),
        metavar="NAME",
        help=f"optimizers to compare (default: {' '.join(benchmark.DEFAULT_OPTIMIZERS)})",
    )
    parser.add_argument(
        "--problems", nargs="+", metavar="LABEL", help="only these problems of the suite"
    )
    parser.add_argument("--seeds", type=int, help="rerun seeds (default: the suite's)")
    parser.add_argument(
        "--grid",
        metavar="lr=VALUES",
        help=f"step sizes to try instead of the suite's: {GRID_SYNTAX}",
    )
    parser.add_argument(
        "--engine", default="local", choices=list(benchmark.ENGINES), help="where sweeps run"
    )
    parser.add_argument(
        "--address", help="Ray cluster to join (HOST:PORT); default: a local Ray runtime"
    )
    parser.add_argument("--out", default="out/benchmark", help="output folder")
    parser.add_argument("--list", action="store_true", help="list the suite's problems and exit")
    parser.set_defaults(func=main)


def main(args) -> int:
    from steplab import benchmark
    from steplab.run.store import StoreError

    suite = benchmark.get(args.suite)
    if args.list:
        for p in suite.problems:
            options = ", ".join(f"{k}={v}" for k, v in {**p.build, **p.options}.items())
            print(f"{p.label:<22} {p.problem} ({options})")
        return 0
    lr_grid = None
    if args.grid is not None:
        key, lr_grid = parse_grid(args.grid)
        if key != "lr":
            raise ValueError(f"--grid tunes the step size: write lr=..., got {key!r}")
    out = Path(args.out)
    try:
        results = benchmark.run(
            suite,
            out,
            optimizers=args.optimizers,
            problems=args.problems,
            engine=args.engine,
            address=args.address,
            seeds=args.seeds,
            lr_grid=lr_grid,
            log=lambda line: print(line, file=sys.stderr),
        )
    except StoreError as exc:
        raise ValueError(f"{exc} (or give another --out)") from None
    except ConnectionError as exc:
        raise ValueError(str(exc)) from None
    config = {
        "command": "benchmark",
        "suite": suite.name,
        "optimizers": args.optimizers,
        "problems": [r.spec.label for r in results],
        "seeds": args.seeds or suite.seeds,
        "lr_grid": (suite.lr_grid if lr_grid is None else lr_grid).tolist(),
        "engine": args.engine,
        "seconds": {r.spec.label: round(r.seconds, 2) for r in results},
    }
    print(benchmark.report.write(results, out, config))
    print(f"\nwrote {out}/ (summary.csv, figures, index.html, stores/)", file=sys.stderr)
    return 0
