"""A sweep of a chain that clips by global norm against the same sweep without the clip.

    python benchmarks/bench_sweep_norm.py --configurations 8192 --steps 500 --repeats 9

Each configuration of a sweep is its own parameter vector, so the sweep's kernel takes
each one's ‖ĝ‖ in its lane loop (two products, a sum, a root, a comparison) before the
step. This times ``steplab.fast.sweep`` of ``fuse(clip_by_global_norm(c), AdamW(lr=…))``
against ``AdamW(lr=…)`` over the same starting points on Rosenbrock, alternating the two
in each round, and prints the median of the per-round time ratios (and the load average:
the ratio is the figure that survives a loaded machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from steplab import fast
from steplab.optim import AdamW
from steplab.optim import transforms as T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--clip-norm", type=float, default=20.0)
    args = parser.parse_args()
    K = args.configurations
    lrs = np.geomspace(1e-3, 0.1, K)
    plain = AdamW(lr=lrs, weight_decay=0.01)
    clipped = T.fuse(T.clip_by_global_norm(args.clip_norm), plain)
    rng = np.random.default_rng(0)
    X0 = np.array([-1.2, 1.0]) + rng.uniform(-0.5, 0.5, (K, 2))
    for opt in (plain, clipped):  # compile outside the timing
        fast.sweep("rosenbrock", opt, X0, 2)
    times: dict[str, list[float]] = {"plain": [], "clipped": []}
    for _ in range(args.repeats):
        for name, opt in (("plain", plain), ("clipped", clipped)):
            start = time.perf_counter()
            fast.sweep("rosenbrock", opt, X0, args.steps)
            times[name].append(time.perf_counter() - start)
    ratios = [c / p for c, p in zip(times["clipped"], times["plain"], strict=True)]
    steps = K * args.steps
    print(f"{K} configurations x {args.steps} steps, {args.repeats} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:8s} median {median * 1e3:8.1f} ms  ({median / steps * 1e9:.2f} ns "
              "per configuration-step)")  # fmt: skip
    print(
        f"  clip_by_global_norm + AdamW / AdamW: median per-round ratio "
        f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
