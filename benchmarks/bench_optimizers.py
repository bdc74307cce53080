"""Every optimizer: one fused step on d parameters and one sweep, with default settings.

Uses only the public API that every steplab version has (``sl.make``, ``opt.step``,
``steplab.fast.sweep``), so the same command times two checkouts side by side::

    PYTHONPATH=<old checkout>/src python benchmarks/bench_optimizers.py
    PYTHONPATH=src python benchmarks/bench_optimizers.py

Prints one Markdown table: medians of ``--repeats`` of one ``opt.step`` (float32,
``nonfinite="propagate"``, the given threads), of one ``opt.step`` on 2 float64 parameters
(default settings: the NumPy path, where Python's per-step work is the time), and of one
sweep of K configurations × steps on Rosenbrock (1 thread).
"""

from __future__ import annotations

import argparse

import numpy as np

import steplab as sl
from steplab import fast

try:
    from steplab.cli.bench_measure import median_time as median
except ImportError:  # a checkout from before issue 11 kept its bench helpers in steplab.fast
    from steplab.fast.bench import median_time as median  # type: ignore[no-redef]


def small_step_seconds(name: str, repeats: int) -> float:
    """Median seconds of one default ``opt.step`` on 2 float64 parameters."""
    opt, theta, grad = sl.make(name), np.array([1.0, -1.0]), np.array([1e-3, -2e-3])
    state = opt.init(theta)
    return median(lambda: [opt.step(theta, grad, state) for _ in range(200)], repeats) / 200


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--K", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(args.size).astype(np.float32)
    grad = (rng.standard_normal(args.size) * 1e-3).astype(np.float32)
    X0 = np.tile([-1.2, 1.0], (args.K, 1))
    lr = np.geomspace(1e-4, 1e-2, args.K)
    print(f"| optimizer | step ms ({args.size:.0e} float32, {args.threads} thr) "
          f"| step µs (2 float64) | sweep s ({args.K:,} × {args.steps}, 1 thr) |")  # fmt: skip
    print("|---|---|---|---|")
    # Small steps first: once a parallel kernel has run, its idle worker threads still
    # spin for a while and slow the Python of a tiny step on a machine with few cores.
    small = {name: small_step_seconds(name, args.repeats) for name in sl.OPTIMIZERS}
    for name in sl.OPTIMIZERS:
        fast.set_threads(args.threads)
        opt = sl.make(name, nonfinite="propagate")
        theta = theta0.copy()
        state = opt.init(theta)
        step = median(lambda o=opt, s=state, x=theta: o.step(x, grad, s), args.repeats)
        fast.set_threads(1)
        swept = sl.make(name, lr=lr) if name != "adadelta" else sl.make(name)
        sweep = median(
            lambda o=swept: fast.sweep("rosenbrock", o, X0, args.steps), max(3, args.repeats // 3)
        )
        print(f"| {name} | {1e3 * step:.3f} | {1e6 * small[name]:.1f} | {sweep:.4f} |", flush=True)


if __name__ == "__main__":
    main()
