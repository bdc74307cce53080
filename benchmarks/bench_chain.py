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

``--torch`` times the same on steplab.torch instead (``--size`` float32 parameters in
tensors of 10⁶, torch CPU threads ``--threads``): plain AdamW and clip_by_global_norm +
AdamW (the twin of the fused chain: ‖ĝ‖ over every tensor in float64, then the step), each
on the multi-tensor (default) and the single-pass (``fused=True``) route, with
torch.optim.AdamW's fused and foreach steps in the same rounds. The ratio is to plain AdamW
on the same route. It also prints torch's foreach step timed before any steplab step and
after all rounds, torch's thread count and the process's threads before and after: if the
norm's reduction started a thread pool that fights torch's OpenMP threads, the foreach step
slows down after it (see docs/speed.md).
"""

from __future__ import annotations

import argparse

import numpy as np

import steplab.fast  # noqa: F401 - registers the fused step backend
from steplab.cli.bench_measure import interleaved_rounds as rounds
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


def torch_contenders(size: int) -> tuple[dict, dict, object]:
    """name -> a torch optimizer's step, and name -> the route it is compared within;
    torch.optim.AdamW's foreach step for the interference check."""
    import torch

    from steplab.torch.base import twin

    gen = torch.Generator().manual_seed(0)
    shapes = [min(1_000_000, size - k) for k in range(0, size, 1_000_000)]
    params = [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in shapes]
    for p in params:
        p.grad = 1e-3 * torch.randn(p.shape, generator=gen)
    adamw = AdamW.like("torch", lr=1e-3)
    chain = T.fuse(T.clip_by_global_norm(1.0), adamw)
    calls, route = {}, {}
    for fused, kind in ((False, "multi-tensor"), (True, "fused")):
        for name, core in (("adamw", adamw), ("clip+adamw", chain)):
            values = {n: getattr(core, n) for n in core.hyperparameters()}
            opt = twin(type(core))(params, fused=fused, **values)
            calls[f"{name} {kind}"] = opt.step
            route[f"{name} {kind}"] = f"adamw {kind}"
    reference = torch.optim.AdamW(params, lr=1e-3, fused=True)
    calls["torch.optim.AdamW fused"] = reference.step
    route["torch.optim.AdamW fused"] = "adamw fused"
    foreach = torch.optim.AdamW(params, lr=1e-3, foreach=True)
    return calls, route, foreach.step


def _threads_in_process() -> int:
    import os

    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1


def main_torch(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    calls, route, foreach_step = torch_contenders(args.size)
    foreach_step()
    threads_before = (torch.get_num_threads(), _threads_in_process())
    before = rounds({"foreach": foreach_step}, args.repeats)["foreach"]
    times = rounds(calls, args.repeats)
    after = rounds({"foreach": foreach_step}, args.repeats)["foreach"]
    rows = []
    for name, seconds in times.items():
        ratios = seconds / times[route[name]]  # round by round
        low, mid, high = np.percentile(ratios, [25, 50, 75])
        rows.append([name, f"{1e3 * np.median(seconds):.1f}", route[name], f"{mid:.3f}",
                     f"{low:.3f}–{high:.3f}"])  # fmt: skip
    print_table(
        ["step", "median ms", "compared with", "× it (median of rounds)", "quartiles"], rows,
        f"steplab.torch, float32, {args.size:.0e} parameters, torch threads {args.threads}, "
        f"{args.repeats} interleaved rounds",
    )  # fmt: skip
    threads_after = (torch.get_num_threads(), _threads_in_process())
    try:
        import numba

        pool = f"numba's thread pool: {numba.threading_layer()} layer started"
    except ImportError:
        pool = "numba: not installed"
    except ValueError:  # numba.threading_layer() before any parallel kernel ran
        pool = "numba's thread pool: never started"
    print(
        f"\ntorch.optim.AdamW foreach step, median ms: {1e3 * np.median(before):.1f} before "
        f"any steplab step, {1e3 * np.median(after):.1f} after all rounds; torch threads "
        f"{threads_before[0]} -> {threads_after[0]}; threads in the process "
        f"{threads_before[1]} -> {threads_after[1]}; {pool}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-slow", action="store_true", help="skip the NumPy contenders")
    parser.add_argument("--torch", action="store_true", help="time steplab.torch (see the doc)")
    args = parser.parse_args(argv)
    if args.torch:
        main_torch(args)
        return
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
