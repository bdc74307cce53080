"""What the per-step option check costs (steplab.torch.validation.check_step_options).

The many-small set of bench_torch_optim.py (200 tensors of 64×64 + 64, one param group),
Adam's multi-tensor step. In each round the same optimizer takes ``--steps`` steps with the
check and ``--steps`` without it (replaced by a no-op), in a random order; prints the
median over rounds of (time with) / (time without), and the check's own time per call.

    PYTHONPATH=src python benchmarks/bench_torch_validation.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import timeit

import torch

import steplab.torch as st
from steplab.torch import validation

SHAPES = [(64, 64), (64,)] * 100  # bench_torch_optim.py's "many-small"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = st.Adam(params, lr=1e-3)
    opt.step()  # state created
    checked = validation.check_step_options

    def timed(check) -> float:
        validation.check_step_options = check
        start = time.perf_counter()
        for _ in range(args.steps):
            opt.step()
        return (time.perf_counter() - start) / args.steps

    def no_check(*args):
        return None

    ratios, with_check = [], []
    try:
        for _ in range(args.rounds):
            order = [checked, no_check]
            random.shuffle(order)
            times = {id(check): timed(check) for check in order}
            ratios.append(times[id(checked)] / times[id(no_check)])
            with_check.append(times[id(checked)])
    finally:
        validation.check_step_options = checked
    per_call = (
        min(
            timeit.repeat(
                lambda: checked("Adam", opt.param_groups, type(opt)._FOREIGN),
                number=10000,
                repeat=5,
            )
        )
        / 10000
    )
    print(
        f"many-small Adam step: {statistics.median(with_check) * 1e3:.2f} ms with the check; "
        f"with / without: median {statistics.median(ratios):.4f} over {args.rounds} rounds "
        f"(min {min(ratios):.4f}, max {max(ratios):.4f}); the check alone: "
        f"{per_call * 1e6:.2f} µs per step"
    )


if __name__ == "__main__":
    main()
