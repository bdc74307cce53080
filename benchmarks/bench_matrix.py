"""Per-step time of steplab.torch.matrix's Muon and Adafactor against torch.optim's, same run.

    PYTHONPATH=src python benchmarks/bench_matrix.py [--sizes 256 1024 4096] [--repeats 7]
    PYTHONPATH=src python benchmarks/bench_matrix.py --sizes 4096 --big   # + Muon at 4096²
    PYTHONPATH=src python benchmarks/bench_matrix.py --sizes 1024 --profile --threads 1
    PYTHONPATH=src python benchmarks/bench_matrix.py --sizes 2048 --optimizers muon \
        --only "steplab bfloat16" "torch.optim (bfloat16, as shipped)"      # two contenders

One float32 weight of n × n on the CPU; each step is timed in interleaved rounds (ours,
theirs, ours, …: the drift of a shared machine hits both) and the median is reported, with
the ratio torch.optim / steplab (> 1: steplab is faster). Every steplab variant is set against
every anchor. Precision, stated: torch.optim.Muon runs its Newton–Schulz iteration in
bfloat16; steplab's default runs it in the parameters' dtype (float32 here) and
``ns_dtype="bfloat16"`` as torch does. "torch.optim.Muon (float32)" is torch's code with its
one cast removed: the like-for-like anchor of steplab's float32 iteration. "steplab, no
Gram panels" computes Newton–Schulz's symmetric products whole, as torch does (GRAM_LEAF
off). Muon at 4096² needs ~2·10¹² flops a step (5 iterations of three 4096³ products): only
with --big, one warm-up and one timed round, without the compiled variant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch

import steplab.torch.matrix as stm
from _timing import print_table
from steplab.cli.bench_measure import interleaved_medians


@contextlib.contextmanager
def float32_newton_schulz():
    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = original  # type: ignore[method-assign]


@contextlib.contextmanager
def gram_panel_rows(rows=1 << 40):
    """steplab's Gram products X·Xᵀ as one product each, not by panels (GRAM_LEAF), or by
    panels of ``rows`` rows."""
    leaf = stm.GRAM_LEAF
    stm.GRAM_LEAF = rows
    try:
        yield
    finally:
        stm.GRAM_LEAF = leaf


def stepper(make, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    W = torch.nn.Parameter(torch.randn(n, n, generator=generator))
    W.grad = torch.randn(n, n, generator=generator) * 1e-2
    opt = make([W])
    return opt.step


def profile_adafactor(n: int, steps: int = 10) -> None:
    """torch.profiler's table of ``steps`` Adafactor steps, steplab's and torch.optim's."""
    from torch.profiler import ProfilerActivity, profile

    for label, make in [("steplab", lambda p: stm.Adafactor.like("torch", p)),
                        ("torch.optim", lambda p: torch.optim.Adafactor(p))]:  # fmt: skip
        step = stepper(make, n)
        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for _ in range(steps):
                step()
        print(f"\n{label}: {steps} Adafactor steps of a {n}² float32 weight, "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--big", action="store_true", help="Muon at 4096² too")
    parser.add_argument("--optimizers", nargs="+", default=["adafactor", "muon"],
                        choices=["adafactor", "muon"])  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own choice)",
    )
    parser.add_argument(
        "--gram-leaf",
        type=int,
        default=None,
        help=f"rows of a Gram panel, steplab.torch.matrix.GRAM_LEAF (default {stm.GRAM_LEAF})",
    )
    parser.add_argument(
        "--panel-rows",
        type=int,
        nargs="+",
        default=[],
        help='Muon: a contender "steplab, panels of N rows" (float32) for each N, in the same '
        "rounds as the rest",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU seconds (time.process_time), which other "
        "jobs on a loaded machine inflate far less than wall time; use it "
        "with --threads 1 (idle OpenMP threads spin and count too)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Adafactor: print torch.profiler's table of ten steps of steplab's and of "
        "torch.optim's at each size (operations, calls, time, memory) instead of timing",
    )
    parser.add_argument("--only", nargs="+", metavar="LABEL",
                        help='time only these contenders, e.g. "steplab bfloat16" '
                             '"torch.optim (bfloat16, as shipped)"')  # fmt: skip
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.gram_leaf is not None:
        stm.GRAM_LEAF = args.gram_leaf
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.profile:
        for n in args.sizes:
            profile_adafactor(n)
        return
    load_before = os.getloadavg()
    rows = []
    for n in args.sizes:
        contenders = {
            "adafactor": {
                "steplab": stepper(lambda p: stm.Adafactor.like("torch", p), n),
                "steplab compile=True": stepper(
                    lambda p: stm.Adafactor.like("torch", p, compile=True), n
                ),
                "torch.optim": stepper(lambda p: torch.optim.Adafactor(p), n),
            }
        }
        if n < 4096 or args.big:
            theirs32 = stepper(lambda p: torch.optim.Muon(p), n)

            def theirs_float32(step=theirs32):
                with float32_newton_schulz():
                    step()

            contenders["muon"] = {
                "steplab": stepper(lambda p: stm.Muon.like("torch", p), n),
                "steplab bfloat16": stepper(
                    lambda p: stm.Muon.like("torch", p, ns_dtype="bfloat16"), n
                ),
                "torch.optim (bfloat16, as shipped)": stepper(lambda p: torch.optim.Muon(p), n),
                "torch.optim (float32)": theirs_float32,
            }
            panels = stepper(lambda p: stm.Muon.like("torch", p), n)

            def without_panels(step=panels):
                with gram_panel_rows():
                    step()

            contenders["muon"]["steplab, no Gram panels"] = without_panels
            for panel in args.panel_rows:
                sized = stepper(lambda p: stm.Muon.like("torch", p), n)

                def with_panels(step=sized, panel=panel):
                    with gram_panel_rows(panel):
                        step()

                contenders["muon"][f"steplab, panels of {panel} rows"] = with_panels
            if n < 4096:
                contenders["muon"]["steplab compile=True"] = stepper(
                    lambda p: stm.Muon.like("torch", p, compile=True), n
                )
        for name, calls in contenders.items():
            if name not in args.optimizers:
                continue
            if args.only:
                calls = {k: v for k, v in calls.items() if k in args.only}
            big = n >= 4096 and name == "muon"
            repeats = 1 if big else args.repeats if n < 4096 else max(3, args.repeats // 2)
            # warm-up 2: the compiled steps compile at their first call
            times = interleaved_medians(calls, repeats=repeats, warmup=1 if big else 2,
                                        clock=clock)  # fmt: skip
            for ours_label in [k for k in times if k.startswith("steplab")]:
                ours = times[ours_label]
                for label, seconds in times.items():
                    if label.startswith("steplab"):
                        continue
                    rows.append([name, f"{n}²", ours_label, label, f"{ours * 1e3:.2f}",
                                 f"{seconds * 1e3:.2f}", f"{seconds / ours:.2f}"])  # fmt: skip
    load_after = os.getloadavg()
    load = ", ".join(f"{a:.1f}→{b:.1f}" for a, b in zip(load_before, load_after, strict=True))
    print_table(
        ["optimizer", "weight", "steplab", "anchor", "steplab ms", "anchor ms", "anchor / steplab"],
        rows,
        title=f"float32 step on the CPU, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"Gram panels of {stm.GRAM_LEAF} rows, "
        f"medians; load average (1, 5, 15 min) before→after: {load}",
    )
    print("\nanchor / steplab > 1: steplab's step is faster than the anchor's.")
    for row in rows:
        verdict = "faster" if float(row[-1]) >= 1 else "slower"
        print(f"  {row[0]} {row[1]}: {row[2]} is {row[-1]}× {row[3]} ({verdict})")


if __name__ == "__main__":
    main()
