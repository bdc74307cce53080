"""Measure a fused step against the memory system and against torch.optim.

For each optimizer, one step over ``size`` parameters reads and writes a fixed number of
arrays ("streams"): Adam reads θ, ĝ, s, r and writes θ, s, r (4 reads, 3 writes). The
anchor is a plain numba kernel with the same streams and trivial arithmetic: the speed
the memory system allows for that access pattern, on the same threads, in the same run.
``steplab bench`` and ``benchmarks/bench_step.py`` print these numbers.
"""

from __future__ import annotations

import time

import numpy as np

import steplab as sl
from steplab.fast import _numba
from steplab.fast._numba import lazy_jit, prange

#: optimizer -> (arrays read, arrays written) by one fused step (nonfinite="propagate")
STREAMS = {
    "sgd": (2, 1),
    "momentum": (3, 2),
    "nesterov": (3, 2),
    "adagrad": (3, 2),
    "rmsprop": (3, 2),
    "adadelta": (4, 3),
    "adam": (4, 3),
    "adamw": (4, 3),
    "adamax": (4, 3),
    "nadam": (4, 3),
    "radam": (4, 3),
    "lion": (3, 2),
}

# torch.optim's class for each optimizer (Lion has none)
TORCH_NAMES = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adadelta": ("Adadelta", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
    "radam": ("RAdam", {}),
}


@lazy_jit(parallel=True)
def stream_2_1(a, g, c):
    for i in prange(a.size):
        a[i] = a[i] + c * g[i]


@lazy_jit(parallel=True)
def stream_3_2(a, b, g, c):
    for i in prange(a.size):
        bi = c * b[i] + g[i]
        b[i] = bi
        a[i] = a[i] + c * bi


@lazy_jit(parallel=True)
def stream_4_3(a, b, d, g, c):
    for i in prange(a.size):
        gi = g[i]
        bi = c * b[i] + gi
        di = c * d[i] + gi
        b[i] = bi
        d[i] = di
        a[i] = a[i] + bi * di


ANCHORS = {(2, 1): stream_2_1, (3, 2): stream_3_2, (4, 3): stream_4_3}


def median_time(call, repeats: int = 15, warmup: int = 2) -> float:
    """Median wall time of ``call()`` in seconds (machines are shared: medians, not means)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _torch_step_time(name, theta, grad, threads, repeats):
    """The fastest of torch.optim's implementations (fused, foreach, for-loop), in seconds."""
    try:
        import torch
    except ImportError:
        return None, None
    if name not in TORCH_NAMES:
        return None, None
    torch.set_num_threads(threads)
    class_name, options = TORCH_NAMES[name]
    best = (None, None)
    for flags in ({"fused": True}, {"foreach": True}, {"foreach": False}):
        param = torch.nn.Parameter(torch.from_numpy(theta.copy()))
        param.grad = torch.from_numpy(grad)
        try:
            opt = getattr(torch.optim, class_name)([param], lr=1e-3, **options, **flags)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue  # this implementation does not exist for this class or device
        seconds = median_time(opt.step, repeats)
        if best[0] is None or seconds < best[0]:
            best = (
                seconds,
                next(iter(flags.items()))[0] + ("" if flags.get("foreach", 1) else "=False"),
            )
        del opt, param
    return best


def measure(name: str, size: int = 10_000_000, dtype=np.float32, threads: int = 1,
            repeats: int = 15, torch: bool = True) -> dict:  # fmt: skip
    """Time one step of optimizer ``name`` on ``size`` parameters; compare and report.

    Returns a dict: ``ms`` (steplab, nonfinite="propagate" as torch), ``ms_checked``
    (default nonfinite="raise": one more read of ĝ to check it), ``gbps``,
    ``anchor_ms``/``anchor_gbps`` (the same streams in a plain kernel), ``fraction``
    (anchor time / steplab time), ``torch_ms``, ``torch_impl`` and ``vs_torch``
    (torch time / steplab time: above 1 means steplab is faster).
    """
    if not _numba.available():
        raise RuntimeError(f"steplab bench needs numba ({_numba.UNAVAILABLE_REASON})")
    from steplab.fast import set_threads

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(dtype)
    grad = (rng.standard_normal(size) * 1e-3).astype(dtype)
    preset = "torch" if "torch" in sl.OPTIMIZERS[name].PRESETS else "seed"
    set_threads(threads)
    _numba.numba.set_num_threads(threads)
    result = {"optimizer": name, "dtype": dtype.name, "size": size, "threads": threads}
    for key, policy in (("ms", "propagate"), ("ms_checked", "raise")):
        opt = sl.make(name, preset=preset, nonfinite=policy)
        state = opt.init(theta)
        step = opt.step  # bound now: the lambda below must not see the next loop's opt
        result[key] = 1e3 * median_time(lambda s=state, f=step: f(theta, grad, s), repeats)
    reads, writes = STREAMS[name]
    arrays = [np.zeros(size, dtype) for _ in range(reads - 1)]
    c = dtype.type(0.5)
    result["anchor_ms"] = 1e3 * median_time(
        lambda: ANCHORS[reads, writes](*arrays, grad, c), repeats
    )
    traffic = (reads + writes) * size * dtype.itemsize
    result["gbps"] = traffic / result["ms"] / 1e6
    result["anchor_gbps"] = traffic / result["anchor_ms"] / 1e6
    result["fraction"] = result["anchor_ms"] / result["ms"]
    torch_seconds, impl = (
        _torch_step_time(name, theta, grad, threads, repeats) if torch else (None, None)
    )
    result["torch_ms"] = None if torch_seconds is None else 1e3 * torch_seconds
    result["torch_impl"] = impl
    result["vs_torch"] = None if torch_seconds is None else result["torch_ms"] / result["ms"]
    set_threads(None)
    return result


def overhead(name: str = "adam", size: int = 2, repeats: int = 2000) -> float:
    """Microseconds per ``opt.step`` on a tiny array (the readable path: checks + NumPy)."""
    opt = sl.make(name)
    theta = np.zeros(size)
    grad = np.ones(size)
    state = opt.init(theta)
    return 1e6 * median_time(lambda: opt.step(theta, grad, state), repeats, warmup=50)
