"""``steplab benchmark``: DeepOBS' protocol over NumPy problems, or AlgoPerf's over PyTorch
workloads.

    steplab benchmark                                   # quick suite (docs/distributed.md)
    steplab benchmark --suite full --engine ray --address HEAD:6379
    steplab benchmark --optimizers sgd adam --problems rosenbrock mlp_digits
    steplab benchmark --suite small                     # PyTorch workloads (docs/benchmark.md)
    steplab benchmark --suite small --tuning self --studies 5
    steplab benchmark --suite small --engine ray        # trials as Ray tasks (--address)

DeepOBS (quick, full): per problem and optimizer the step size tuned on a log grid (one
seed), the best rerun with several seeds; the summary table (final test loss/accuracy, mean
with a bootstrap interval), a sensitivity plot per problem and a Dolan–Moré profile. Results
are stored as they finish (OUT/stores/*.sqlite): the same command started again resumes.

AlgoPerf (small, gpu): per workload and optimizer, M studies of N trials drawn from the
optimizer's search space (or its defaults, --tuning self); the time to the validation target
in steps and seconds, median over studies with a bootstrap interval, a paired verdict against
AdamW, learning curves, profiles to τ = 4, sensitivity plots, one HTML report. Each trial is
saved as it finishes (OUT/trials/): the same command started again resumes; with --engine
ray the trials run as Ray tasks and give the same results.

Every flag is checked before PyTorch is imported: a bad value is one line naming the allowed
ones.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from steplab.benchmark.tuning import MODES
from steplab.cli.sweep_cmd import GRID_SYNTAX, parse_grid


def register(subparsers) -> None:
    from steplab import benchmark

    parser = subparsers.add_parser(
        "benchmark",
        help="DeepOBS-style benchmark: tune α, rerun over seeds, table and profiles",
        description=__doc__.split("\n\n", 1)[0],
    )
    suites: list[Any] = [*benchmark.SUITES.values(), *benchmark.TORCH_SUITES.values()]
    parser.add_argument(
        "--suite",
        default="quick",
        metavar="{" + ",".join(s.name for s in suites) + "}",
        help="; ".join(f"{s.name}: {s.description}" for s in suites),
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        metavar="NAME",
        help=f"optimizers to compare (default: {' '.join(benchmark.DEFAULT_OPTIMIZERS)}; "
        "plus adamw for the PyTorch suites)",
    )
    parser.add_argument(
        "--problems", nargs="+", metavar="LABEL", help="only these problems (workloads)"
    )
    parser.add_argument("--seeds", metavar="N", help="rerun seeds (default: the suite's)")
    parser.add_argument(
        "--tuning",
        default="external",
        metavar="{" + ",".join(MODES) + "}",
        help="PyTorch suites: external tuning (N drawn trials per study) or self-tuning "
        "(defaults only)",
    )
    parser.add_argument("--trials", metavar="N", help="PyTorch suites: trials per study (N)")
    parser.add_argument("--studies", metavar="M", help="PyTorch suites: studies (M)")
    parser.add_argument(
        "--steps", metavar="N", help="PyTorch suites: override every workload's step budget"
    )
    parser.add_argument(
        "--grid",
        metavar="lr=VALUES",
        help=f"step sizes to try instead of the suite's: {GRID_SYNTAX}",
    )
    parser.add_argument(
        "--engine",
        default="local",
        metavar="{" + ",".join(benchmark.ENGINES) + "}",
        help="where sweeps (DeepOBS) or trials (PyTorch) run: here, or as Ray tasks",
    )
    parser.add_argument(
        "--address",
        help="with --engine ray: the Ray cluster to join (HOST:PORT); default: a local runtime",
    )
    parser.add_argument("--out", default="out/benchmark", help="output folder")
    parser.add_argument("--list", action="store_true", help="list the suite's problems and exit")
    parser.set_defaults(func=main)


def check(args) -> None:
    """Every flag checked before anything heavy is imported (torch above all): a bad value
    is one line naming the allowed ones, and nothing is written."""
    from steplab import benchmark, optim
    from steplab.benchmark import workloads

    deepobs, pytorch = list(benchmark.SUITES), list(benchmark.TORCH_SUITES)
    _one_of("--suite", args.suite, [*deepobs, *pytorch])
    _one_of("--engine", args.engine, list(benchmark.ENGINES))
    _one_of("--tuning", args.tuning, list(MODES))
    for flag in ("seeds", "trials", "studies", "steps"):
        setattr(args, flag, _positive(flag, getattr(args, flag)))
    if args.address is not None and args.engine != "ray":
        raise ValueError("--address is for --engine ray")
    if args.suite in deepobs:
        for flag in ("trials", "studies", "steps"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} is for the PyTorch suites ({', '.join(pytorch)})")
        if args.tuning != "external":
            raise ValueError(f"--tuning is for the PyTorch suites ({', '.join(pytorch)})")
        return
    for flag in ("grid", "seeds"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} is for the DeepOBS suites ({', '.join(deepobs)})")
    for name in args.optimizers or ():
        _one_of("optimizer", name, list(optim.OPTIMIZERS), what="unknown optimizer")
    if args.optimizers is not None and len(set(args.optimizers)) < len(args.optimizers):
        raise ValueError("give each optimizer once")
    for name in args.problems or ():
        _one_of("workload", name, list(workloads.NAMES), what="unknown workload")


def _one_of(flag: str, value: str, allowed: list[str], what: str = "") -> None:
    if value not in allowed:
        raise ValueError(f"{what or flag} {value!r}; choose from {', '.join(allowed)}")


def _positive(flag: str, text: str | int | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != str(text).strip():
        raise ValueError(f"--{flag} must be a positive integer, got {text!r}")
    return value


def main(args) -> int:
    from steplab import benchmark
    from steplab.run.store import StoreError

    check(args)
    if args.suite in benchmark.TORCH_SUITES:
        return torch_main(args)
    if args.optimizers is None:
        args.optimizers = list(benchmark.DEFAULT_OPTIMIZERS)
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


def torch_main(args) -> int:
    """The AlgoPerf-style protocol on the PyTorch workloads."""
    import time

    from steplab import benchmark
    from steplab.benchmark import algoperf, algoperf_report, workloads

    suite = benchmark.TORCH_SUITES[args.suite]
    if args.list:
        for name in workloads.NAMES:
            w = workloads.get(name)
            b = w.budget(suite.size)
            recorded = workloads.targets().get(suite.size, {})
            target = recorded[name]["target"] if name in recorded else "—"
            print(
                f"{name:<20} {w.metric} target {target}, {b.steps} steps of {b.batch_size}: "
                f"{w.description}"
            )
        return 0
    workloads.require_device(suite.size)  # the full sizes train on a CUDA GPU
    for name in args.problems or workloads.NAMES:
        workloads.target(name, suite.size)  # none recorded: one line naming the command
    settings = algoperf.Settings(
        size=suite.size,
        mode=args.tuning,
        trials=suite.trials if args.trials is None else args.trials,
        studies=suite.studies if args.studies is None else args.studies,
        steps=args.steps,
    )
    optimizers = args.optimizers or list(benchmark.TORCH_OPTIMIZERS)
    out = Path(args.out)
    start = time.perf_counter()
    results = algoperf.run(
        out,
        optimizers=optimizers,
        workloads=args.problems,
        settings=settings,
        engine=args.engine,
        address=args.address,
        log=lambda line: print(line, file=sys.stderr),
    )
    config = {
        "command": "benchmark",
        "suite": suite.name,
        "size": settings.size,
        "tuning": settings.mode,
        "trials_per_study": settings.per_study,
        "studies": settings.studies,
        "steps": settings.steps,
        "optimizers": optimizers,
        "engine": args.engine,
        "workloads": [r.name for r in results],
        "targets": {r.name: r.target for r in results},
        "seconds_this_run": round(time.perf_counter() - start, 1),
    }
    print(algoperf_report.write(results, out, settings, config))
    print(f"\nwrote {out}/ (table.txt, table.csv, figures, index.html, trials/)", file=sys.stderr)
    return 0
