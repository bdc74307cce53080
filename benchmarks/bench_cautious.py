"""The cautious mask's fused step (two passes) against plain AdamW's fused step, same run.

The mask's rescaling n/(Σmask + 1) sums over this step's update, so the fused Cautious
makes two passes built from AdamW's rule: pass 1 reads θ, ĝ, s, r (16 bytes per float32
parameter) and counts the mask; pass 2 reads them again and writes θ, s, r (28 bytes).
Plain AdamW's fused step moves 28 bytes (``nonfinite="propagate"``), or 32 with the default
finiteness check of ĝ (``"raise"``). Memory-bound bounds: 44/28 ≈ 1.57× and 44/32 ≈ 1.38×.

At ``--size`` float32 parameters (default 10⁷), timed interleaved in rounds (medians; the
ratio is taken round by round against plain AdamW with ``"propagate"``, with quartiles).
``adamw+cautious (NumPy)`` is the unfused whole-array step, for scale. Usage::

    python benchmarks/bench_cautious.py [--size 10000000] [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse

import numpy as np

import steplab.fast  # noqa: F401 - registers the fused step backend
from steplab.cli.bench_measure import interleaved_rounds as rounds
from steplab.fast import set_threads
from steplab.optim import AdamW
from steplab.optim.modifiers import Cautious

try:
    from benchmarks._timing import print_table
except ImportError:  # run as a script from the benchmarks folder
    from _timing import print_table

#: bytes per float32 parameter each contender moves (see the module doc)
BYTES = {"adamw (propagate)": 28, "adamw (raise)": 32, "adamw+cautious (fused)": 44}


def contenders(size: int, with_slow: bool) -> dict:
    """name -> a call that takes one step on its own copy of the parameters."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(np.float32)
    grad = (rng.standard_normal(size) * 1e-3).astype(np.float32)
    adamw = AdamW.like("torch", lr=1e-3, weight_decay=0.01, impl="fused")
    optimizers = {
        "adamw (propagate)": adamw.replace(nonfinite="propagate"),
        "adamw (raise)": adamw.replace(nonfinite="raise"),
        "adamw+cautious (fused)": Cautious(base=adamw),
    }
    if with_slow:
        optimizers["adamw+cautious (NumPy)"] = Cautious(base=adamw.replace(impl="numpy"))
    calls = {}
    for name, opt in optimizers.items():
        x = theta.copy()
        state = opt.init(x)
        calls[name] = lambda opt=opt, x=x, state=state: opt.step(x, grad, state)
    return calls


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-slow", action="store_true", help="skip the NumPy contender")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    times = rounds(contenders(args.size, not args.no_slow), args.repeats)
    anchor = times["adamw (propagate)"]
    rows = []
    for name, seconds in times.items():
        low, mid, high = np.percentile(seconds / anchor, [25, 50, 75])  # round by round
        bound = f"{BYTES[name] / BYTES['adamw (propagate)']:.2f}" if name in BYTES else "–"
        speed = (
            f"{BYTES[name] * args.size / np.median(seconds) / 1e9:.1f}" if name in BYTES else "–"
        )
        rows.append([name, f"{1e3 * np.median(seconds):.1f}", f"{mid:.3f}",
                     f"{low:.3f}–{high:.3f}", bound, speed])  # fmt: skip
    print_table(
        ["step", "median ms", "× AdamW (propagate)", "quartiles", "bytes bound", "GB/s"], rows,
        f"float32, {args.size:.0e} parameters, {args.threads} threads, "
        f"{args.repeats} interleaved rounds",
    )  # fmt: skip


if __name__ == "__main__":
    main()
