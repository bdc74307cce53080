"""Measure a fused step against the memory system and against torch.optim.

For each optimizer, one step over ``size`` parameters reads and writes a fixed number of
arrays ("streams"): Adam reads θ, ĝ, s, r and writes θ, s, r (4 reads, 3 writes). The
anchor is a plain numba kernel with the same streams and trivial arithmetic: the speed
the memory system allows for that access pattern, on the same threads, in the same run.
``steplab bench`` and ``benchmarks/bench_step.py`` print these numbers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace

import numpy as np

import steplab as sl
from steplab.fast import _numba
from steplab.fast._numba import lazy_jit, prange


def bench_preset(name: str) -> str:
    """The preset a benchmark times: torch.optim's conventions where the optimizer has them."""
    return "torch" if "torch" in sl.OPTIMIZERS[name].PRESETS else "seed"


def streams(name: str) -> tuple[int, int]:
    """(arrays read, arrays written) by one fused step of ``name`` (nonfinite="propagate",
    the benchmark's preset): θ and ĝ read, θ written, and each moment the configuration
    keeps read and written. Derived from the optimizer, so every registered one has it."""
    opt = sl.make(name, preset=bench_preset(name))
    kept = opt.kept_moments(SimpleNamespace(**opt.declared_for((1,))))
    return 2 + len(kept), 1 + len(kept)


class _Streams(Mapping[str, tuple[int, int]]):
    def __getitem__(self, name: str) -> tuple[int, int]:
        if name not in sl.OPTIMIZERS:
            raise KeyError(name)
        return streams(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(sl.OPTIMIZERS))

    def __len__(self) -> int:
        return len(sl.OPTIMIZERS)


#: optimizer -> (arrays read, arrays written) by one fused step: :func:`streams` of every
#: registered optimizer
STREAMS: Mapping[str, tuple[int, int]] = _Streams()

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


def _torch_steps(name, theta, grad, threads):
    """torch.optim's implementations of ``name`` (fused, foreach, for-loop): label -> step."""
    try:
        import torch
    except ImportError:
        return {}
    if name not in TORCH_NAMES:
        return {}
    torch.set_num_threads(threads)
    class_name, options = TORCH_NAMES[name]
    steps = {}
    for label, flags in (("fused", {"fused": True}), ("foreach", {"foreach": True}),
                         ("for-loop", {"foreach": False})):  # fmt: skip
        param = torch.nn.Parameter(torch.from_numpy(theta.copy()))
        param.grad = torch.from_numpy(grad)
        try:
            opt = getattr(torch.optim, class_name)([param], lr=1e-3, **options, **flags)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue  # this implementation does not exist for this class or device
        steps[label] = opt.step
    return steps


def interleaved_rounds(calls: dict, repeats: int, warmup: int = 2,
                       clock=time.perf_counter) -> dict:  # fmt: skip
    """Seconds of each call in each of ``repeats`` rounds (A, B, C, A, B, C, …), as arrays.

    On a shared machine the load drifts; interleaving exposes every contender to the
    same drift, so the *ratios* stay fair (per round, too) even when the absolute times
    wander. ``clock``: wall time by default; ``time.process_time`` counts this process's
    CPU seconds, which other processes on a loaded machine inflate far less.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = clock()
            call()
            times[key].append(clock() - start)
    return {key: np.array(t) for key, t in times.items()}


def interleaved_medians(calls: dict, repeats: int, warmup: int = 2,
                        clock=time.perf_counter) -> dict:  # fmt: skip
    """Median seconds of each call, timed in interleaved rounds (:func:`interleaved_rounds`)."""
    rounds = interleaved_rounds(calls, repeats, warmup, clock)
    return {key: float(np.median(t)) for key, t in rounds.items()}


def measure(name: str, size: int = 10_000_000, dtype=np.float32, threads: int = 1,
            repeats: int = 15, torch: bool = True) -> dict:  # fmt: skip
    """Time one step of optimizer ``name`` on ``size`` parameters; compare and report.

    Returns a dict: ``ms`` (steplab, nonfinite="propagate" as torch), ``ms_checked``
    (default nonfinite="raise": one more read of ĝ to check it), ``gbps``,
    ``anchor_ms``/``anchor_gbps`` (the same streams in a plain kernel), ``fraction``
    (anchor time / steplab time), ``torch_ms``, ``torch_impl`` (the fastest of torch's)
    and ``vs_torch`` (torch time / steplab time: above 1 means steplab is faster).
    All are timed interleaved, in the same rounds.
    """
    if not _numba.available():
        raise RuntimeError(f"steplab bench needs numba ({_numba.UNAVAILABLE_REASON})")
    from steplab.fast import set_threads

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(size).astype(dtype)
    grad = (rng.standard_normal(size) * 1e-3).astype(dtype)
    preset = bench_preset(name)
    set_threads(threads)
    if _numba.numba is not None:
        _numba.numba.set_num_threads(threads)
    calls: dict[str, Callable[[], object]] = {}
    for key, policy in (("ms", "propagate"), ("ms_checked", "raise")):
        opt = sl.make(name, preset=preset, nonfinite=policy)
        state = opt.init(theta)
        step = opt.step  # bound now: the lambda must not see the next loop's opt
        calls[key] = functools.partial(step, theta, grad, state)
    reads, writes = STREAMS[name]
    arrays = [np.zeros(size, dtype) for _ in range(reads - 1)]
    c = dtype.type(0.5)
    calls["anchor_ms"] = lambda: ANCHORS[reads, writes](*arrays, grad, c)
    torch_steps = _torch_steps(name, theta, grad, threads) if torch else {}
    calls.update({f"torch {label}": step for label, step in torch_steps.items()})
    seconds = interleaved_medians(calls, repeats)
    set_threads(None)
    result = {"optimizer": name, "dtype": dtype.name, "size": size, "threads": threads}
    for key in ("ms", "ms_checked", "anchor_ms"):
        result[key] = 1e3 * seconds[key]
    traffic = (reads + writes) * size * dtype.itemsize
    result["gbps"] = traffic / result["ms"] / 1e6
    result["anchor_gbps"] = traffic / result["anchor_ms"] / 1e6
    result["fraction"] = result["anchor_ms"] / result["ms"]
    result["torch_ms"] = result["torch_impl"] = result["vs_torch"] = None
    if torch_steps:
        impl = min(torch_steps, key=lambda label: seconds[f"torch {label}"])
        result["torch_ms"] = 1e3 * seconds[f"torch {impl}"]
        result["torch_impl"] = impl
        result["vs_torch"] = result["torch_ms"] / result["ms"]
    return result


def overhead(name: str = "adam", size: int = 2, repeats: int = 2000) -> float:
    """Microseconds per ``opt.step`` on a tiny array (the readable path: checks + NumPy)."""
    opt = sl.make(name)
    theta = np.zeros(size)
    grad = np.ones(size)
    state = opt.init(theta)
    return 1e6 * median_time(lambda: opt.step(theta, grad, state), repeats, warmup=50)
