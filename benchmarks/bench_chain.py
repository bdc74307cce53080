"""A fused chain's step against plain AdamW's, same run: does composing cost a pass?

At ``--size`` float32 parameters (default 10⁷), timed interleaved in rounds (A, B, C, …;
medians, so a shared machine's drift hits every contender alike):

* ``adamw``: ``AdamW.like("torch")``, the fused kernel, default ``nonfinite="raise"``
  (one pass that checks ĝ, then the fused pass);
* ``clip+adamw``: ``fuse(clip_by_global_norm(1.0), AdamW)``: one reduction pass (Σĝ²,
  which also proves ĝ finite), then the fused pass with the clip compiled in;
* ``clip+clip_value+L2+adamw+decay``: ``fuse(clip_by_global_norm, clip, add_decayed_weights,
  AdamW, decay_weights)``: four pieces around the rule, the same two passes;
* ``adamw+cautious`` (``Cautious(AdamW)``, NumPy, whole-array: its mask is rescaled by a
  sum over this step's update, so it is not an element-wise piece): for scale;
* ``numpy chain``: ``transforms.chain(clip_by_global_norm, from_optimizer(AdamW))`` on
  NumPy arrays, the unfused reference.

Prints a Markdown table: each step's median time, and the median over rounds of its time
divided by plain AdamW's in the same round, with the rounds' quartiles of that ratio (on a
loaded machine a round's contenders share its load, so the per-round ratio wanders less
than a ratio of medians). Usage::

    python benchmarks/bench_chain.py [--size 10000000] [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import steplab.fast  # noqa: F401 - registers the fused step backend
from steplab.fast import set_threads
from steplab.optim import AdamW
from steplab.optim import transforms as T
from steplab.optim.modifiers import Cautious

try:
    from benchmarks._timing import print_table
except ImportError:  # run as a script from the benchmarks folder
    from _timing import print_table


def contenders(size: int, with_slow: bool) -> dict:
    """name -> a call that takes one step on its own copy of the parameters."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(np.float32)
    grad = (rng.standard_normal(size) * 1e-3).astype(np.float32)
    adamw = AdamW.like("torch", lr=1e-3, impl="fused")
    chains = {
        "adamw": adamw,
        "clip+adamw": T.fuse(T.clip_by_global_norm(1.0), adamw),
        "clip+clip_value+L2+adamw+decay": T.fuse(
            T.clip_by_global_norm(1.0),
            T.clip(0.5),
            T.add_decayed_weights(1e-4),
            adamw,
            T.decay_weights(1e-3, 1e-2),
        ),  # fmt: skip
    }
    calls = {}
    for name, opt in chains.items():
        x = theta.copy()
        state = opt.init(x)
        calls[name] = lambda opt=opt, x=x, state=state: opt.step(x, grad, state)
    if with_slow:
        cautious = Cautious(base=adamw.replace(impl="numpy"))
        x = theta.copy()
        state = cautious.init(x)
        calls["adamw+cautious (NumPy)"] = lambda x=x, state=state: cautious.step(x, grad, state)
        tx = T.chain(T.clip_by_global_norm(1.0), T.from_optimizer(adamw.replace(impl="numpy")))
        box = {"params": theta.copy()}
        box["state"] = tx.init(box["params"])

        def numpy_chain() -> None:
            updates, box["state"] = tx.update(grad, box["state"], box["params"])
            box["params"] = T.apply_updates(box["params"], updates)

        calls["numpy chain (unfused)"] = numpy_chain
    return calls


def rounds(calls: dict, repeats: int, warmup: int = 2) -> dict:
    """Seconds of each call in each of ``repeats`` rounds (A, B, C, A, B, C, …)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: np.array(seconds) for name, seconds in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-slow", action="store_true", help="skip the NumPy contenders")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    calls = contenders(args.size, not args.no_slow)
    times = rounds(calls, args.repeats)
    rows = []
    for name, seconds in times.items():
        ratios = seconds / times["adamw"]  # round by round
        low, mid, high = np.percentile(ratios, [25, 50, 75])
        rows.append([name, f"{1e3 * np.median(seconds):.1f}", f"{mid:.3f}",
                     f"{low:.3f}–{high:.3f}"])  # fmt: skip
    print_table(
        ["step", "median ms", "× plain AdamW (median of rounds)", "quartiles"], rows,
        f"float32, {args.size:.0e} parameters, {args.threads} threads, "
        f"{args.repeats} interleaved rounds",
    )  # fmt: skip


if __name__ == "__main__":
    main()
