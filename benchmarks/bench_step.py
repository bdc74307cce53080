"""One optimizer step on large arrays: steplab's fused kernels vs torch.optim vs memory.

For every optimizer, float32 and float64, 1 and 2 threads, in one process:

* steplab ``opt.step`` with ``nonfinite="propagate"`` (torch's semantics) and with the
  default ``"raise"`` (which reads the gradient once more to check it);
* the fastest torch.optim implementation of the same algorithm (fused, foreach or loop);
* a plain numba kernel with the same numbers of read and written arrays (the anchor:
  what the memory system allows for this access pattern);
* for Adam also NumPy: the readable path (naive) and in place with ``out=``.

Prints Markdown tables of medians and ratios. Usage::

    python benchmarks/bench_step.py [--size 10000000] [--repeats 15] [--threads 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np

import steplab as sl
from steplab.cli.bench_measure import interleaved_medians, measure, median_time, overhead

try:
    from benchmarks._timing import print_table
except ImportError:  # run as a script from the benchmarks folder
    from _timing import print_table


def numpy_adam_times(size: int, dtype, repeats: int) -> tuple[float, float]:
    """ms of Adam in NumPy: the readable path, and a careful in-place version with out=."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(dtype)
    grad = (rng.standard_normal(size) * 1e-3).astype(dtype)
    opt = sl.Adam.like("torch", nonfinite="propagate", impl="numpy")  # the readable path
    state = opt.init(theta)
    naive = median_time(lambda: opt.step(theta, grad, state), max(3, repeats // 3))
    s, r, tmp = np.zeros_like(theta), np.zeros_like(theta), np.empty_like(theta)
    c = {
        k: dtype(v) for k, v in dict(b1=0.9, b2=0.999, c1=0.1, c2=0.001, lr=-1e-3, eps=1e-8).items()
    }

    def in_place():
        np.multiply(s, c["b1"], out=s)
        np.multiply(grad, c["c1"], out=tmp)
        np.add(s, tmp, out=s)
        np.multiply(r, c["b2"], out=r)
        np.multiply(grad, grad, out=tmp)
        np.multiply(tmp, c["c2"], out=tmp)
        np.add(r, tmp, out=r)
        np.sqrt(r, out=tmp)
        np.add(tmp, c["eps"], out=tmp)
        np.divide(s, tmp, out=tmp)
        np.multiply(tmp, c["lr"], out=tmp)
        np.add(theta, tmp, out=theta)

    return 1e3 * naive, 1e3 * median_time(in_place, repeats)


def default_settings(size: int, repeats: int) -> list:
    """Adam float32 with every default (nonfinite="raise", default threads) and with
    nonfinite="propagate", against torch.optim.Adam(fused=True) at torch's default threads,
    interleaved in the same rounds. Returns one table row."""
    import torch

    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(np.float32)
    grad = (rng.standard_normal(size) * 1e-3).astype(np.float32)
    calls = {}
    for policy in ("raise", "propagate"):
        opt = sl.Adam.like("torch", nonfinite=policy)
        state = opt.init(theta)
        calls[policy] = lambda s=state, f=opt.step: f(theta, grad, s)
    param = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    param.grad = torch.from_numpy(grad)
    torch_opt = torch.optim.Adam([param], lr=1e-3, fused=True)
    calls["torch"] = torch_opt.step
    ms = {k: 1e3 * v for k, v in interleaved_medians(calls, repeats).items()}
    threads = sl.fast.threads() if hasattr(sl, "fast") else None
    return [f"{size:.0e}", threads, torch.get_num_threads(), fmt(ms["raise"]),
            fmt(ms["propagate"]), fmt(ms["torch"]), fmt(ms["torch"] / ms["raise"]),
            fmt(ms["torch"] / ms["propagate"])]  # fmt: skip


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--optimizers", nargs="+", default=list(sl.OPTIMIZERS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--default-sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    args = parser.parse_args(argv)
    from steplab import fast

    sl.fast = fast
    defaults = [default_settings(int(n), args.repeats) for n in args.default_sizes]
    print_table(
        ["size", "steplab thr", "torch thr", "steplab ms (raise)", "steplab ms (propagate)",
         "torch fused ms", "torch/steplab (raise)", "torch/steplab (propagate)"],
        defaults,
        f"Adam float32, default settings, vs torch fused Adam at its default threads "
        f"(medians of {args.repeats}, interleaved)",
    )  # fmt: skip
    header = ["optimizer", "dtype", "thr", "steplab ms", "checked ms", "GB/s",
              "anchor GB/s", "of anchor", "torch ms", "torch impl", "torch/steplab"]  # fmt: skip
    rows = []
    for threads in args.threads:
        for dtype in args.dtypes:
            for name in args.optimizers:
                m = measure(name, args.size, dtype, threads, args.repeats)
                speed = [fmt(m["gbps"], 1), fmt(m["anchor_gbps"], 1), fmt(m["fraction"])]
                torch = [fmt(m["torch_ms"]), m["torch_impl"] or "–", fmt(m["vs_torch"])]
                rows.append(
                    [name, dtype, threads, fmt(m["ms"]), fmt(m["ms_checked"]), *speed, *torch]
                )
                print(" ".join(map(str, rows[-1])), flush=True)
    print_table(header, rows, f"One step on {args.size:,} parameters (medians of {args.repeats})")
    numpy_rows = []
    for dtype in args.dtypes:
        naive, in_place = numpy_adam_times(args.size, np.dtype(dtype).type, args.repeats)
        fused = measure("adam", args.size, dtype, 1, args.repeats, torch=False)["ms"]
        numpy_rows.append([dtype, fmt(fused), fmt(in_place), fmt(naive), fmt(naive / fused, 1)])
    numpy_header = [
        "dtype",
        "steplab fused ms",
        "NumPy out= ms",
        "NumPy readable ms",
        "readable/fused",
    ]
    title = "Adam, 1 thread: the readable NumPy path and hand-written in-place NumPy"
    print_table(numpy_header, numpy_rows, title)
    small = [[name, fmt(overhead(name), 1)] for name in ("sgd", "adagrad", "rmsprop", "adam")]
    print_table(
        ["optimizer", "µs per step"], small, "Small arrays (2 parameters): per-step overhead"
    )


if __name__ == "__main__":
    main()
