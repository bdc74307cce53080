"""One ``opt.step`` on 2 float64 parameters, every optimizer: two checkouts, taking turns.

On a tiny array a step is Python and a dozen small NumPy calls, so its time is the
library's per-step overhead. Machines here drift by up to ~1.7× over minutes, so the two
versions run in alternating subprocesses (``--rounds`` each) and the table gives, per
optimizer, the median time of each and the median of the per-round ratios::

    python benchmarks/bench_small_steps.py --before <old checkout>/src [--after src]

Uses only ``sl.make``, ``sl.OPTIMIZERS`` and ``opt.step`` (every steplab version has them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ONE_ROUND = """
import json, timeit
import numpy as np
import steplab as sl

times = {}
for name in sl.OPTIMIZERS:
    opt = sl.make(name)
    theta, grad = np.array([1.0, -1.0]), np.array([1e-3, -2e-3])
    state = opt.init(theta)
    runs = timeit.repeat(lambda: opt.step(theta, grad, state), number=5000, repeat=3)
    times[name] = min(runs) / 5000
print(json.dumps(times))
"""


def one_round(source: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(source)}
    done = subprocess.run(
        [sys.executable, "-c", ONE_ROUND], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="src folder of the older checkout")
    parser.add_argument("--after", default="src", help="src folder of the newer checkout")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    before, after = [], []
    for _ in range(args.rounds):
        before.append(one_round(args.before))
        after.append(one_round(args.after))
    print(f"One opt.step on 2 float64 parameters (default settings), µs; {args.rounds} "
          "alternating rounds, medians")  # fmt: skip
    print("| optimizer | before µs | after µs | after/before |")
    print("|---|---|---|---|")
    for name in after[0]:
        if name not in before[0]:
            continue
        b = [r[name] for r in before]
        a = [r[name] for r in after]
        ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
        print(f"| {name} | {1e6 * statistics.median(b):.1f} | {1e6 * statistics.median(a):.1f} "
              f"| {ratio:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
