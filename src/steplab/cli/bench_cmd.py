"""``steplab bench``: how fast is one optimizer step on this machine?

    steplab bench adam rmsprop --size 10000000 --dtype float32 --threads 1 2

For each optimizer: milliseconds per step of the fused kernel, GB/s moved, the fraction
of what a plain kernel with the same memory traffic reaches (the memory system's limit
for that access pattern), and the ratio to torch.optim's fastest implementation when
torch is installed. Needs numba (``pip install 'steplab[fast]'``).
"""

from __future__ import annotations

import sys

from steplab.cli import common


def register(subparsers) -> None:
    from steplab.optim import OPTIMIZERS

    parser = subparsers.add_parser(
        "bench",
        help="measure optimizer steps: ms, GB/s, fraction of memory bandwidth, vs torch",
        description=__doc__.split("\n\n", 1)[0],
    )
    parser.add_argument(
        "optimizers", nargs="*", default=["adam"], metavar="OPTIMIZER",
        help=f"optimizers to time (default: adam); any of: {', '.join(OPTIMIZERS)}, or all",
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=10_000_000, help="parameters (10,000,000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts (1)")
    parser.add_argument("--repeats", type=int, default=15, help="steps timed; medians shown")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch comparison")
    parser.set_defaults(func=main)


def main(args) -> int:
    from steplab.fast import _numba
    from steplab.optim import OPTIMIZERS

    names = list(OPTIMIZERS) if args.optimizers == ["all"] else args.optimizers
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        choices = ", ".join(OPTIMIZERS)
        raise ValueError(f"unknown optimizer {unknown[0]!r}; choose from {choices}, all")
    if args.size < 1 or args.repeats < 1 or min(args.threads) < 1:
        raise ValueError("--size, --repeats and --threads must be positive integers")
    # θ, gradient and up to three moments, for steplab and again for torch.optim
    itemsize = {"float32": 4, "float64": 8}[args.dtype]
    common.check_fits("--size", 10 * itemsize * args.size, f"{args.size:,} {args.dtype} parameters")
    if not _numba.available():
        print(
            f"steplab bench: numba is not available ({_numba.UNAVAILABLE_REASON}); "
            "install it with: pip install 'steplab[fast]'",
            file=sys.stderr,
        )
        return 1
    from steplab.cli.bench_measure import measure

    header = (
        f"{'optimizer':<10} {'thr':>3} {'ms/step':>8} {'GB/s':>6} {'of limit':>8} "
        f"{'torch ms':>9} {'torch/steplab':>13}"
    )
    print(f"one step on {args.size:,} {args.dtype} parameters, medians of {args.repeats}")
    print(header)
    for threads in args.threads:
        for name in names:
            m = measure(name, args.size, args.dtype, threads, args.repeats, torch=not args.no_torch)
            torch_ms = "–" if m["torch_ms"] is None else f"{m['torch_ms']:.2f}"
            ratio = "–" if m["vs_torch"] is None else f"{m['vs_torch']:.2f}"
            print(
                f"{name:<10} {threads:>3} {m['ms']:>8.2f} {m['gbps']:>6.1f} "
                f"{m['fraction']:>8.0%} {torch_ms:>9} {ratio:>13}",
                flush=True,
            )
    print("of limit: time of a plain kernel moving the same arrays / time of the step")
    return 0
