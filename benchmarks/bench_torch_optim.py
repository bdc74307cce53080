"""Optimizer-step time: steplab.torch against torch.optim's for-loop, foreach and fused.

Only ``optimizer.step()`` is timed (gradients are set once), on three parameter sets:
"many-small" (200 tensors of 64×64 + 64: overhead-bound, like a deep narrow network),
"few-large" (8 tensors of 1024×1024: memory-bound) and "10M" (10 tensors of 1000×1000,
10⁷ parameters). steplab runs each optimizer's ``torch`` preset (the seed's where the core
has none; Adam also with the seed's conventions) as the multi-tensor step and as the
single-pass step (``fused=True``: the rule compiled by ``torch.compile``; its first step,
which compiles, is reported apart and not timed). torch.optim runs the nearest torch
optimizer (Lion: AdamW, which moves one more moment), as its for-loop, foreach and fused
implementations and as its default (no flag: the row names which of them torch picks; on
CPU the for-loop). Prints the median time per step and, as medians over rounds of the
anchor's time divided by it (> 1: faster), the ratios to torch's fastest, to torch's
default, and to torch's same kind (foreach for steplab's multi-tensor step, fused for its
single pass).

How it is timed, and why: the contenders take turns step by step, in a new random order
each round (on the shared 2-core box a fixed order gave the later places up to 15 % less
time, for identical kernels); all contenders of an optimizer step the same parameters and
gradients (only their states are their own); and ``--instances K`` makes K such sets,
every contender timed on each, its time per round being the mean over them: the speed of
a memory-bound step there varies by up to ±10 % with where its tensors land in memory, and
the same kernel on two tensor sets of one process differs by that much.

    python benchmarks/bench_torch_optim.py                 # CPU, float32
    python benchmarks/bench_torch_optim.py --sets 10M --optimizers adam rmsprop lion
    python benchmarks/bench_torch_optim.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch

import steplab.torch as st

PARAMETER_SETS = {
    "many-small": [(64, 64), (64,)] * 100,
    "few-large": [(1024, 1024)] * 8,
    "10M": [(1000, 1000)] * 10,
}

# steplab optimizer -> the nearest torch.optim class and its extra arguments
PAIRS = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {"alpha": 0.99}),
    "adadelta": (torch.optim.Adadelta, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "adamax": (torch.optim.Adamax, {}),
    "nadam": (torch.optim.NAdam, {}),
    "radam": (torch.optim.RAdam, {}),
    "lion": (torch.optim.AdamW, {}),  # not in torch.optim
}
IMPLEMENTATIONS = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def _parameters(shapes, device, dtype):
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=gen).to(device, dtype))
        p.grad = torch.randn(shape, generator=gen).to(device, dtype)
        params.append(p)
    return params


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _step_times(instances: list[dict], device: str, repeats: int, warmup: int = 3) -> dict:
    """Seconds per ``step()`` of each label, one value per round: the mean over the
    ``instances`` (dicts label -> optimizer, one per parameter set). Every optimizer steps
    once per round, all of them in a new random order each round (see the module doc)."""
    every = [(label, optimizer) for instance in instances for label, optimizer in instance.items()]
    for _, optimizer in every:
        for _ in range(warmup):  # creates the state, warms caches and kernels
            optimizer.step()
    _sync(device)
    order = random.Random(0)
    times: dict[str, list[float]] = {label: [] for label in instances[0]}
    for _ in range(repeats):
        round_times: dict[str, list[float]] = {label: [] for label in times}
        order.shuffle(every)
        for label, optimizer in every:
            start = time.perf_counter()
            optimizer.step()
            _sync(device)
            round_times[label].append(time.perf_counter() - start)
        for label, values in round_times.items():
            times[label].append(statistics.fmean(values))
    return times


def _first_step_s(optimizer, device: str) -> float:
    """Seconds of the first step (for ``fused=True``: tracing and compiling the rule)."""
    start = time.perf_counter()
    optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def _contenders(name: str, params: list, policies=("propagate",)) -> tuple[dict, dict, dict]:
    """steplab's optimizers (one per ``nonfinite`` policy) and torch.optim's implementations
    that exist for it, all on ``params``; the seconds each fused steplab optimizer's first
    (compiling) step took; what is missing."""
    torch_class, extra = PAIRS[name]
    preset = "torch" if "torch" in st.OPTIMIZERS[name].core.PRESETS else "seed"
    presets = [preset, "seed"] if preset != "seed" and name == "adam" else [preset]
    contenders, first = {}, {}
    device = str(params[0].device)
    for p in presets:
        for policy in policies:
            tail = "" if policy == "propagate" else f" ({policy})"
            contenders[f"steplab {p} multi-tensor{tail}"] = st.make(
                name, params, preset=p, nonfinite=policy
            )
            fused = st.make(name, params, preset=p, fused=True, nonfinite=policy)
            first[f"steplab {p} fused{tail}"] = _first_step_s(fused, device)
            contenders[f"steplab {p} fused{tail}"] = fused
    missing = {}
    for impl, flags in IMPLEMENTATIONS.items():
        try:
            optimizer = torch_class(params, lr=1e-3, **extra, **flags)
            optimizer.step()  # a fused kernel missing for this device/dtype fails here
            contenders[f"torch.optim.{torch_class.__name__} {impl}"] = optimizer
        except (RuntimeError, ValueError, TypeError) as exc:
            missing[f"torch {impl}"] = f"{type(exc).__name__}: {str(exc)[:60]}"
    # torch's default (no foreach/fused flag), timed as its own row: what a user gets
    default = torch_class(params, lr=1e-3, **extra)
    default.step()
    contenders[f"torch.optim.{torch_class.__name__} default ({_torch_default(params)})"] = default
    return contenders, first, missing


def _torch_default(params: list) -> str:
    """Which implementation torch.optim runs without a foreach/fused flag on ``params``
    (torch's own choice, ``torch.optim.optimizer._default_to_fused_or_foreach``; on CPU in
    torch 2.x: the for-loop, foreach kernels being for accelerators only)."""
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach
    except ImportError:  # a torch without it: the row is still timed, just not named
        return "unnamed"
    fused, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return "fused" if fused else "foreach" if foreach else "for-loop"


def _ratio(anchor: list[float], times: list[float]) -> float:
    """The median over rounds of anchor time / this time (> 1: this is faster)."""
    return statistics.median(a / x for a, x in zip(anchor, times, strict=True))


def _default_row(times: dict) -> str:
    """The label of torch.optim's default row (see :func:`_torch_default`)."""
    return next(k for k in times if k.startswith("torch") and " default (" in k)


def _same_kind(label: str, times: dict) -> str | None:
    """torch.optim's implementation that a steplab row is compared with: foreach (its
    multi-tensor kernels, whether or not it is the default) for the multi-tensor step; fused
    for the single pass (its fastest where it has no fused one); None for torch's own
    rows."""
    if not label.startswith("steplab"):
        return None
    kind = "foreach" if "multi-tensor" in label else "fused"
    torch_rows = [k for k in times if k.startswith("torch")]
    match = [k for k in torch_rows if k.endswith(f" {kind}")]
    if match:
        return match[0]
    return min(torch_rows, key=lambda k: statistics.median(times[k]))


def _read_anchor():
    """A plain numba loop summing a float32 array (vectorized; reads each element once): the
    speed at which this machine's core reads memory. None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(fastmath=True, cache=False)
    def read_all(x):
        total = numba.float32(0.0)
        for v in x:
            total += v
        return total

    return read_all


def _streams_anchor():
    """A numba loop summing x² in float64 over 8 far-apart regions of a float32 array at once
    (one accumulator each, vectorized): does reading several streams at a time beat one
    stream on this core? None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(fastmath={"reassoc"}, error_model="numpy", cache=False)
    def read_8_streams(x):
        n = x.size // 8
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for i in range(n):
            a0 += np.float64(x[i]) ** 2
            a1 += np.float64(x[n + i]) ** 2
            a2 += np.float64(x[2 * n + i]) ** 2
            a3 += np.float64(x[3 * n + i]) ** 2
            a4 += np.float64(x[4 * n + i]) ** 2
            a5 += np.float64(x[5 * n + i]) ** 2
            a6 += np.float64(x[6 * n + i]) ** 2
            a7 += np.float64(x[7 * n + i]) ** 2
        total = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
        for i in range(8 * n, x.size):
            total += np.float64(x[i]) ** 2
        return total

    return read_8_streams


def check_pass(set_name: str, repeats: int) -> None:
    """``nonfinite``'s check of the gradients (steplab.torch's ``all_finite``) against the
    machine's read speed (two read-only loops over the same arrays: :func:`_read_anchor` and
    BLAS's dot product of each with itself) and the element-wise ``torch.isfinite(g).all()``,
    interleaved; medians."""
    from steplab.torch.base import all_finite

    grads = [p.grad for p in _parameters(PARAMETER_SETS[set_name], "cpu", torch.float32)]
    arrays = [g.numpy().reshape(-1) for g in grads]
    nbytes = sum(g.numel() * g.element_size() for g in grads)
    anchor = _read_anchor()
    contenders = {
        "steplab check (all_finite)": lambda: all_finite(grads),
        "torch.isfinite(g).all()": lambda: all(bool(torch.isfinite(g).all()) for g in grads),
    }
    if anchor is not None:
        contenders["read anchor (numba sum)"] = lambda: [anchor(a) for a in arrays]
    streams = _streams_anchor()
    if streams is not None:
        contenders["read anchor (numba, 8 streams at once)"] = lambda: [streams(a) for a in arrays]
    contenders["read anchor (BLAS dot x·x)"] = lambda: [float(a @ a) for a in arrays]
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()
    order = random.Random(0)
    labels = list(contenders)
    for _ in range(repeats):
        order.shuffle(labels)
        for label in labels:
            start = time.perf_counter()
            contenders[label]()
            times[label].append(time.perf_counter() - start)
    anchors = [k for k in times if k.startswith("read anchor")]
    fastest = min(anchors, key=lambda k: statistics.median(times[k]))
    print(f"\nThe gradients' check, {set_name} float32 ({nbytes / 1e6:.0f} MB), 1 thread")
    print(f"(of read anchor: the fastest anchor's time / this; here {fastest}):\n")
    print("| pass | ms | GB/s | of read anchor |")
    print("|---|---:|---:|---:|")
    for label, t in times.items():
        ms = 1e3 * statistics.median(t)
        of = f"{_ratio(times[fastest], t):.2f}"
        print(f"| {label} | {ms:.2f} | {nbytes / 1e6 / ms:.1f} | {of} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--optimizers", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument(
        "--sets", nargs="+", default=list(PARAMETER_SETS), choices=list(PARAMETER_SETS)
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="parameter sets each contender is timed on (memory placement; see the doc)",
    )
    parser.add_argument(
        "--nonfinite",
        nargs="+",
        default=["propagate"],
        choices=["propagate", "raise", "skip"],
        help="steplab's nonfinite policies to time (propagate: torch.optim's semantics)",
    )
    parser.add_argument(
        "--check-pass",
        action="store_true",
        help="also time the nonfinite check of each set's gradients against a read anchor",
    )
    args = parser.parse_args(argv)
    if args.threads < 0 or args.repeats < 1 or args.instances < 1:
        parser.error("--threads must be >= 0, --repeats and --instances >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(
        f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, "
        f"threads {torch.get_num_threads()}, median of {args.repeats} rounds in random "
        f"order, {args.instances} parameter set(s)"
    )
    header = (
        "parameters",
        "optimizer",
        "implementation",
        "ms/step",
        "torch's fastest / this",
        "torch's default / this",
        "torch's same kind / this",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 3 + "---:|" * 4)
    compile_rows = []
    for set_name in args.sets:
        for name in args.optimizers:
            instances = []
            for k in range(args.instances):
                params = _parameters(PARAMETER_SETS[set_name], args.device, dtype)
                contenders, first, missing = _contenders(name, params, args.nonfinite)
                instances.append(contenders)
                if k == 0:  # later sets reuse the compiled kernels
                    compile_rows += [(set_name, name, label, s) for label, s in first.items()]
            times = _step_times(instances, args.device, args.repeats)
            medians = {label: statistics.median(t) for label, t in times.items()}
            fastest = min((label for label in times if label.startswith("torch")), key=medians.get)
            default = _default_row(times)
            for label, t in times.items():
                ratio = _ratio(times[fastest], t)
                of_default = _ratio(times[default], t)
                same = _same_kind(label, times)
                versus = f"{_ratio(times[same], t):.2f}" if same else ""
                ms = 1e3 * medians[label]
                print(
                    f"| {set_name} | {name} | {label} | {ms:.3f} | {ratio:.2f} "
                    f"| {of_default:.2f} | {versus} |"
                )
            for label, why in missing.items():
                print(f"| {set_name} | {name} | {label} | n/a | ({why}) |")
            del instances, contenders, params
    if args.check_pass and args.device == "cpu":
        for set_name in args.sets:
            check_pass(set_name, args.repeats)
    print("\nFirst step of the fused (compiled) optimizers, seconds (includes compilation):\n")
    print("| parameters | optimizer | implementation | first step s |")
    print("|---|---|---|---:|")
    for set_name, name, label, seconds in compile_rows:
        print(f"| {set_name} | {name} | {label} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
