"""GPU check for steplab.torch, one short script (a few minutes on one CUDA GPU).

Four sections, each printing a Markdown table:

1. **equality** — every steplab.torch optimizer (seed and torch presets; ``--all-presets``
   for all) on the device: the multi-tensor step (``fused=False``) and the single-pass step
   (``fused=True``, the rule compiled by ``torch.compile``) against the NumPy core, float64,
   a noisy quadratic over a few tensors (three small ones and one of 16,448 elements, above
   the single-pass step's packing threshold), ``--equality-steps`` steps. Prints the
   largest relative difference.
2. **bf16** — a small MLP trained in bfloat16 with steplab's ``Adam.like("torch")`` (state in
   float32) and ``torch.optim.Adam`` (state in bfloat16), both against the same model
   trained in float32: final losses and the distance of the weights to the float32 run.
3. **speed** — median ``step()`` time against torch.optim's foreach and fused on a "many
   small tensors" set and an "LLM-like" set (``--llm-params``, default 1e9, in
   ``--llm-dtype``), one contender at a time so that memory is freed in between; compile
   time of the single-pass step is reported separately.
4. **matrix** — the per-tensor optimizers of ``steplab.torch.matrix`` (Muon, Adafactor,
   Shampoo, SOAP; seed and torch presets) on the device against the NumPy core (float64, a
   tall, a wide and a square weight, ``--equality-steps`` steps), and the median step time
   of Muon and Adafactor against ``torch.optim.Muon`` / ``torch.optim.Adafactor`` on one
   float32 n × n weight (``--matrix-sizes``, default 1024 4096; Muon in float32 and with
   ``ns_dtype="bfloat16"``, torch's precision).

    python benchmarks/gpu_check.py                                   # all, on cuda
    python benchmarks/gpu_check.py --sections speed --llm-params 2e8
    python benchmarks/gpu_check.py --device cpu --llm-params 1e6 --equality-steps 5 \
        --matrix-sizes 64                                             # smoke test

Exit status 1 if an equality or bf16 check fails; the tables go to docs/torch.md.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import steplab as sl
import steplab.torch as st

SECTIONS = ("equality", "bf16", "speed", "matrix")

# steplab optimizer -> torch.optim class and arguments of its nearest torch optimizer
NEAREST_TORCH = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adadelta": (torch.optim.Adadelta, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "adamax": (torch.optim.Adamax, {}),
    "nadam": (torch.optim.NAdam, {}),
    "radam": (torch.optim.RAdam, {}),
    "lion": (torch.optim.AdamW, {}),  # torch has no Lion: AdamW reads/writes one more moment
}


def _sync(device: str) -> None:
    """Wait for the work queued on ``device`` itself (``cuda:1`` is not the current device
    unless made so: a plain ``torch.cuda.synchronize()`` would wait for the wrong one)."""
    where = torch.device(device)
    if where.type == "cuda":
        torch.cuda.synchronize(where)
    elif where.type == "mps":
        torch.mps.synchronize()


def device_name(device: str) -> str:
    where = torch.device(device)
    if where.type == "cuda":
        return torch.cuda.get_device_name(where)
    return where.type.upper()


#: One tensor of the equality check is larger than this: the single-pass step packs
#: smaller tensors into one flat call and steps larger ones one call each, in place; both
#: routes must be compared. (steplab.torch's PACK_BELOW, 4096 when this was written.)
LARGE_TENSOR_ELEMENTS = 1 << 14


# -- 1. equality with the NumPy core ---------------------------------------------------------


def check_equality(device: str, steps: int, names: list[str], all_presets: bool) -> bool:
    rng = np.random.default_rng(0)
    shapes = [(33, 17), (5,), (4, 3, 2), (LARGE_TENSOR_ELEMENTS // 64 + 1, 64)]
    theta0 = [rng.normal(size=s) for s in shapes]
    curvature = [rng.uniform(0.1, 3.0, size=s) for s in shapes]
    noise = [[0.3 * rng.normal(size=s) for s in shapes] for _ in range(steps)]
    rows, ok = [], True
    for name in names:
        presets = ["seed", *st.OPTIMIZERS[name].core.PRESETS]
        if not all_presets:  # each preset with new switches compiles a kernel: keep it short
            presets = [p for p in presets if p in ("seed", "torch")]
        for preset in presets:
            core = sl.make(name, preset=preset)
            ref = [t.copy() for t in theta0]
            states = [core.init(t) for t in ref]
            for k in range(steps):
                for i, theta in enumerate(ref):
                    core.step(theta, curvature[i] * theta + noise[k][i], states[i])
            worst = {}
            for fused in (False, True):
                params = [torch.nn.Parameter(torch.tensor(t, device=device)) for t in theta0]
                opt = st.make(name, params, preset=preset, fused=fused)
                for k in range(steps):
                    for i, p in enumerate(params):
                        c, n = (torch.tensor(a[i], device=device) for a in (curvature, noise[k]))
                        p.grad = c * p.detach() + n
                    opt.step()
                worst[fused] = max(
                    float(np.max(np.abs(p.detach().cpu().numpy() - r) / (np.abs(r) + 1e-12)))
                    for p, r in zip(params, ref, strict=True)
                )
            passed = max(worst.values()) < 1e-9
            ok &= passed
            rows.append([name, preset, f"{worst[False]:.1e}", f"{worst[True]:.1e}", passed])
    _table(["optimizer", "preset", "multi-tensor rel. diff", "fused rel. diff", "ok"], rows)
    return ok


# -- 2. bfloat16 training ---------------------------------------------------------------------


def check_bf16(device: str, steps: int) -> bool:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 64, generator=gen)
    w_true = torch.randn(64, 1, generator=gen)
    y = torch.tanh(x @ w_true) + 0.1 * torch.randn(4096, 1, generator=gen)
    x, y = x.to(device), y.to(device)

    def model(dtype: torch.dtype) -> torch.nn.Module:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
            torch.nn.GELU(), torch.nn.Linear(256, 1),
        )  # fmt: skip
        return net.to(device, dtype)

    def train(net: torch.nn.Module, make: Callable, dtype: torch.dtype) -> float:
        opt = make(net.parameters())
        for k in range(steps):
            batch = slice((k * 128) % 4096, (k * 128) % 4096 + 128)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(x[batch].to(dtype)).float(), y[batch])
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(net(x.to(dtype)).float(), y))

    lr = 3e-3
    reference = model(torch.float32)
    ref_loss = train(reference, lambda ps: torch.optim.Adam(ps, lr=lr), torch.float32)
    contenders = {
        "steplab Adam.like('torch') (float32 state)": lambda ps: st.Adam.like("torch", ps, lr=lr),
        "steplab Adam.like('torch'), fused=True": lambda ps: st.Adam.like(
            "torch", ps, lr=lr, fused=True
        ),
        "torch.optim.Adam (bfloat16 state)": lambda ps: torch.optim.Adam(ps, lr=lr),
    }
    rows, ok = [["float32 reference: torch.optim.Adam", f"{ref_loss:.4f}", "0", "-"]], True
    for label, make in contenders.items():
        net = model(torch.bfloat16)
        loss = train(net, make, torch.bfloat16)
        distance = max(
            float((p.detach().float() - q.detach()).abs().max())
            for p, q in zip(net.parameters(), reference.parameters(), strict=True)
        )
        passed = loss < 1.5 * ref_loss + 0.01 if label.startswith("steplab") else "-"
        ok &= passed is not False
        rows.append([label, f"{loss:.4f}", f"{distance:.3f}", passed])
    print(f"\nbfloat16 MLP (64-256-256-1), {steps} steps of Adam lr={lr}, batch 128, on {device}")
    _table(["run", "final loss", "max |w - w_float32|", "ok"], rows)
    return ok


# -- 3. speed -------------------------------------------------------------------------------


def llm_like_shapes(n_params: float) -> list[tuple[int, ...]]:
    """Shapes of a decoder-only transformer with about ``n_params`` parameters: per layer
    4·d² attention + 8·d² MLP weights and two norms; an embedding of 32000 tokens."""
    d = 128
    while True:
        layers = max(2, round(d / 85))  # depth grows with width, roughly as in GPT-style models
        total = 32000 * d + layers * (12 * d * d + 2 * d)
        if total >= n_params or d > 16384:
            break
        d += 128
    per_layer = [(d, d)] * 4 + [(4 * d, d), (d, 4 * d), (d,), (d,)]
    return [(32000, d)] + per_layer * layers + [(d,)]


def speed_sets(args: argparse.Namespace) -> dict[str, tuple[list, torch.dtype]]:
    return {
        "many-small (500 × 64×64, 500 × 64)": ([(64, 64), (64,)] * 500, torch.float32),
        f"LLM-like ({args.llm_params:.0e})": (
            llm_like_shapes(args.llm_params),
            getattr(torch, args.llm_dtype),
        ),
    }


def _params(shapes, device: str, dtype: torch.dtype) -> list[torch.nn.Parameter]:
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, device=device, dtype=dtype) * 0.02)
        p.grad = torch.randn(shape, device=device, dtype=dtype) * 1e-3
        params.append(p)
    return params


def _time_steps(opt, device: str, repeats: int) -> tuple[float, float]:
    """(seconds of the first step, which includes any compilation; median ms per step).
    The device is synchronized before each clock starts and after each step: work queued
    earlier (making the parameters) is not counted, and the step's own work is."""
    _sync(device)
    start = time.perf_counter()
    opt.step()
    _sync(device)
    first = time.perf_counter() - start
    for _ in range(2):
        opt.step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return first, 1e3 * statistics.median(times)


def check_speed(args: argparse.Namespace) -> None:
    device = args.device
    for set_name, (shapes, dtype) in speed_sets(args).items():
        n = sum(int(np.prod(s)) for s in shapes)
        print(f"\n{set_name}: {len(shapes)} tensors, {n / 1e6:.1f} M parameters, {dtype}")
        rows = []
        for name in args.speed_optimizers:
            torch_class, extra = NEAREST_TORCH[name]
            preset = "torch" if "torch" in st.OPTIMIZERS[name].core.PRESETS else "seed"
            contenders: dict[str, Callable] = {
                f"steplab {preset} multi-tensor": lambda ps, n=name, p=preset: st.make(
                    n, ps, preset=p
                ),
                f"steplab {preset} fused": lambda ps, n=name, p=preset: st.make(
                    n, ps, preset=p, fused=True
                ),
            }
            if name == "adam":
                contenders["steplab seed fused"] = lambda ps: st.make("adam", ps, fused=True)
            for impl in ("foreach", "fused"):
                contenders[f"torch.optim.{torch_class.__name__} {impl}"] = (
                    lambda ps, c=torch_class, e=extra, i=impl: c(ps, lr=1e-3, **e, **{i: True})
                )
            medians = {}
            for label, make in contenders.items():
                try:
                    params = _params(shapes, device, dtype)
                    first, ms = _time_steps(make(params), device, args.repeats)
                    medians[label] = ms
                    rows.append([name, label, f"{ms:.3f}", f"{first:.2f}"])
                except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
                    rows.append([name, label, "n/a", f"{type(exc).__name__}: {str(exc)[:50]}"])
                finally:
                    params = None
                    gc.collect()
                    if device.startswith("cuda"):
                        torch.cuda.empty_cache()
            fastest_torch = min(
                (ms for label, ms in medians.items() if label.startswith("torch")), default=None
            )
            if fastest_torch is not None:
                for row in rows:
                    if row[0] == name and row[1] in medians:
                        row.append(f"{fastest_torch / medians[row[1]]:.2f}")
        _table(
            ["optimizer", "implementation", "ms/step", "first step s", "speed vs torch's fastest"],
            rows,
        )


# -- 4. the per-tensor optimizers ---------------------------------------------------------------


def check_matrix(args: argparse.Namespace) -> bool:
    import steplab.torch.matrix as stm

    device, rng = args.device, np.random.default_rng(1)
    rows, ok = [], True
    for name, twin in stm.OPTIMIZERS.items():
        # SOAP's L of a 48 × 24 gradient has a null space whose eigenbasis is arbitrary (two
        # LAPACKs pick two): square weights for it, as in tests/optim/test_matrix_soap.py
        shapes = [(32, 32), (24, 24)] if name == "soap" else [(48, 24), (24, 48), (32, 32)]
        theta0 = [rng.normal(size=s) for s in shapes]
        grads = [[rng.normal(size=s) for s in shapes] for _ in range(args.equality_steps)]
        for preset in [p for p in ("seed", "torch") if p == "seed" or p in twin.core.PRESETS]:
            core = twin.core.like(preset)
            ref = [t.copy() for t in theta0]
            states = [core.init(t) for t in ref]
            params = [torch.nn.Parameter(torch.tensor(t, device=device)) for t in theta0]
            opt = twin.like(preset, params)
            for step_grads in grads:
                for theta, g, state, p in zip(ref, step_grads, states, params, strict=True):
                    core.step(theta, g + 0.1 * theta, state)  # fed back through θ
                    p.grad = torch.tensor(g, device=device) + 0.1 * p.detach()
                opt.step()
            worst = max(float(np.max(np.abs(p.detach().cpu().numpy() - r)) / np.abs(r).max())
                        for p, r in zip(params, ref, strict=True))  # fmt: skip
            ok &= worst < 1e-9
            rows.append([name, preset, f"{worst:.1e}", worst < 1e-9])
    _table(["optimizer", "preset", "max |torch - NumPy| / max |θ|", "ok"], rows)
    rows = []
    for n in args.matrix_sizes:
        contenders = {
            "adafactor": {"steplab": lambda ps: stm.Adafactor.like("torch", ps),
                          "torch.optim": lambda ps: torch.optim.Adafactor(ps)},
            "muon": {"steplab float32": lambda ps: stm.Muon.like("torch", ps),
                     "steplab bfloat16": lambda ps: stm.Muon.like("torch", ps,
                                                                  ns_dtype="bfloat16"),
                     "torch.optim (bfloat16)": lambda ps: torch.optim.Muon(ps)},
        }  # fmt: skip
        for name, makers in contenders.items():
            medians = {}
            for label, make in makers.items():
                params = _params([(n, n)], device, torch.float32)
                medians[label] = _time_steps(make(params), device, args.repeats)[1]
                params = None
                gc.collect()
            anchor = next(ms for label, ms in medians.items() if label.startswith("torch"))
            rows += [[name, f"{n}²", label, f"{ms:.3f}", f"{anchor / ms:.2f}"]
                     for label, ms in medians.items()]  # fmt: skip
    _table(["optimizer", "weight", "implementation", "ms/step", "torch.optim / this"], rows)
    return ok


# -- output -----------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--optimizers", nargs="+", default=list(st.OPTIMIZERS))
    parser.add_argument("--equality-steps", type=int, default=30)
    parser.add_argument(
        "--all-presets", action="store_true", help="every preset (default: seed and torch)"
    )
    parser.add_argument("--bf16-steps", type=int, default=300)
    parser.add_argument(
        "--speed-optimizers", nargs="+", default=["adam", "adamw", "rmsprop", "lion", "sgd"]
    )
    parser.add_argument("--llm-params", type=float, default=1e9)
    parser.add_argument("--llm-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--matrix-sizes", type=int, nargs="+", default=[1024, 4096])
    args = parser.parse_args(argv)
    unknown = sorted(set(args.optimizers + args.speed_optimizers) - set(st.OPTIMIZERS))
    if unknown:
        parser.error(f"unknown optimizer(s) {unknown}; choose from {', '.join(st.OPTIMIZERS)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: pass --device cpu for a smoke test", file=sys.stderr)
        return 2
    print(
        f"steplab gpu_check: torch {torch.__version__}, device {args.device} "
        f"({device_name(args.device)})"
    )
    ok = True
    started = time.perf_counter()
    if "equality" in args.sections:
        ok &= check_equality(args.device, args.equality_steps, args.optimizers, args.all_presets)
    if "bf16" in args.sections:
        ok &= check_bf16(args.device, args.bf16_steps)
    if "speed" in args.sections:
        check_speed(args)
    if "matrix" in args.sections:
        ok &= check_matrix(args)
    verdict = "all checks passed" if ok else "A CHECK FAILED"
    print(f"\n{verdict} in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
