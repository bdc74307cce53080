"""Optimizer-step time: steplab.torch against torch.optim's for-loop, foreach and fused.

Only ``optimizer.step()`` is timed (gradients are set once), on two parameter sets:
"many-small" (200 tensors of 64×64 + 64: overhead-bound, like a deep narrow network)
and "few-large" (8 tensors of 1024×1024: memory-bound). steplab runs its ``like("torch")``
optimizer (multi-tensor) and, for Adam/AdamW, ``fused=True``. Prints the median time per
step and its ratio to steplab's multi-tensor step (> 1: slower than it), as a Markdown table.

    python benchmarks/bench_torch_optim.py                 # CPU, float32
    python benchmarks/bench_torch_optim.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import steplab.torch as st

PARAMETER_SETS = {
    "many-small": [(64, 64), (64,)] * 100,
    "few-large": [(1024, 1024)] * 8,
}

# steplab optimizer (torch preset) -> torch.optim class and its extra arguments
PAIRS = {
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {"alpha": 0.99}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
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


def _median_step_ms(optimizers: dict, device: str, repeats: int, warmup: int = 3) -> dict:
    """Median ms per ``step()`` of each optimizer. The optimizers take turns step by step,
    so a change in the machine's load hits all of them alike."""
    for optimizer in optimizers.values():
        for _ in range(warmup):  # creates the state, warms caches and kernels
            optimizer.step()
    _sync(device)
    times = {label: [] for label in optimizers}
    for _ in range(repeats):
        for label, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            _sync(device)
            times[label].append(time.perf_counter() - start)
    return {label: 1e3 * statistics.median(t) for label, t in times.items()}


def _contenders(name: str, shapes, device: str, dtype) -> tuple[dict, dict]:
    """steplab's optimizer and torch.optim's implementations that exist for it."""
    torch_class, extra = PAIRS[name]
    contenders = {
        "steplab (foreach)": st.make(name, _parameters(shapes, device, dtype), preset="torch")
    }
    if name in ("adam", "adamw") and dtype in (torch.float32, torch.float64):
        params = _parameters(shapes, device, dtype)
        contenders["steplab fused"] = st.make(name, params, preset="torch", fused=True)
    missing = {}
    for impl, flags in IMPLEMENTATIONS.items():
        try:
            optimizer = torch_class(_parameters(shapes, device, dtype), lr=1e-3, **extra, **flags)
            optimizer.step()  # a fused kernel missing for this device/dtype fails here
            contenders[f"torch {impl}"] = optimizer
        except (RuntimeError, ValueError, TypeError) as exc:
            missing[f"torch {impl}"] = f"{type(exc).__name__}: {str(exc)[:60]}"
    return contenders, missing


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
    args = parser.parse_args(argv)
    if args.threads < 0 or args.repeats < 1:
        parser.error("--threads must be >= 0 and --repeats >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(
        f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, "
        f"threads {torch.get_num_threads()}, median of {args.repeats} interleaved steps"
    )
    header = ("parameters", "optimizer", "implementation", "ms/step", "vs steplab foreach")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 3 + "---:|" * 2)
    for set_name in args.sets:
        for name in args.optimizers:
            contenders, missing = _contenders(name, PARAMETER_SETS[set_name], args.device, dtype)
            medians = _median_step_ms(contenders, args.device, args.repeats)
            ours = medians["steplab (foreach)"]
            for label, ms in medians.items():
                print(f"| {set_name} | {name} | {label} | {ms:.3f} | {ms / ours:.2f} |")
            for label, why in missing.items():
                print(f"| {set_name} | {name} | {label} | n/a | ({why}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
