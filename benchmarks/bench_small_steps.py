"""One ``opt.step`` on 2 float64 parameters, every optimizer: two checkouts, taking turns.

On a tiny array a step is Python and a dozen small NumPy calls, so its time is the
library's per-step overhead. Machines here drift by up to ~1.7× over minutes, so the two
versions run in alternating subprocesses (``--rounds`` each) and the table gives, per
optimizer, the median time of each and the median of the per-round ratios::

    python benchmarks/bench_small_steps.py --before <old checkout>/src [--after src]

``--instructions`` counts instead what the CPU executes per step, under valgrind's
callgrind (deterministic, so one run each; needs ``valgrind``; a few minutes): the
difference between 0 and 2,000 steps, per optimizer.

Uses only ``sl.make``, ``sl.OPTIMIZERS`` and ``opt.step`` (every steplab version has them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


COUNT_STEPS = """
import sys
import numpy as np
import steplab as sl

name, steps = sys.argv[1], int(sys.argv[2])
for each in sl.OPTIMIZERS:  # the same imports and set-up whatever the count
    opt = sl.make(each)
    theta, grad = np.array([1.0, -1.0]), np.array([1e-3, -2e-3])
    state = opt.init(theta)
    opt.step(theta, grad, state)
    if each == name:
        for _ in range(steps):
            opt.step(theta, grad, state)
"""


def instructions(source: str, name: str, steps: int) -> int:
    """Instructions valgrind's callgrind counts for COUNT_STEPS (hash seed fixed)."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(source), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-c", COUNT_STEPS, name, str(steps)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def per_step_instructions(source: str, names: list[str], steps: int = 2000) -> dict[str, float]:
    base = instructions(source, "", 0)
    return {name: (instructions(source, name, steps) - base) / steps for name in names}


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
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under valgrind instead of timing")  # fmt: skip
    args = parser.parse_args(argv)
    if args.instructions:
        names = list(one_round(args.after))
        old = per_step_instructions(args.before, names)
        new = per_step_instructions(args.after, names)
        print("Instructions per opt.step on 2 float64 parameters (callgrind), thousands")
        print("| optimizer | before | after | after/before |")
        print("|---|---|---|---|")
        for name in names:
            print(f"| {name} | {old[name] / 1e3:.0f} | {new[name] / 1e3:.0f} "
                  f"| {new[name] / old[name]:.2f} |")  # fmt: skip
        return
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
