"""Sweeps: 10,000 configurations × 1,000 Adam steps on Rosenbrock, many ways, one process.

* steplab.fast.sweep (numba, blocks of configurations in registers/L1);
* JAX ``jit(vmap(lax.scan))`` with optax.adam;
* NumPy vectorized over configurations (steplab's readable Adam on a (K, 2) array);
* torch vectorized over configurations (tensor ops on (K, 2));
* the usual loop: one torch.optim.Adam + autograd per configuration, timed on a few
  configurations and extrapolated to K.

All float64, step sizes log-spaced from 1e-4 to 1e-1, start (−1.2, 1). Then how steplab's
time grows with K and with steps, and every optimizer and every function at 10k × 1k.

    python benchmarks/bench_sweep.py [--K 10000] [--steps 1000] [--repeats 7] [--quick]
                                     [--threads 1]  # threads of the table against JAX
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import steplab as sl
from steplab import fast, problems
from steplab.cli.bench_measure import interleaved_medians, median_time

try:
    from benchmarks._timing import print_table
except ImportError:
    from _timing import print_table

START = (-1.2, 1.0)


def setup(K):
    return np.tile(START, (K, 1)), np.geomspace(1e-4, 1e-1, K)


def run_steplab(K, steps):
    X0, lr = setup(K)
    opt = sl.Adam.like("optax", lr=lr)
    return lambda: fast.sweep("rosenbrock", opt, X0, steps)


def run_numpy(K, steps):
    X0, lr = setup(K)
    opt = sl.Adam.like("optax", lr=lr[:, None])
    f = problems.get("rosenbrock")

    def loop():
        X = X0.copy()
        state = opt.init(X)
        for _ in range(steps):
            opt.step(X, f.g(X), state)
        return X

    return loop


def give_jax_threads(threads):
    """JAX on as many threads as steplab ("on the same threads"): XLA's CPU backend
    otherwise spreads element-wise work over every core. Set before jax is imported."""
    eigen = "true" if threads > 1 else "false"
    os.environ.setdefault(
        "XLA_FLAGS",
        f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}",
    )


def run_divider_bound(K, steps, threads=1):
    """The anchor: only the arithmetic no exact Adam step can avoid, √ and ÷ once per
    coordinate and step (IEEE-exact, so neither NumPy nor JAX nor steplab may replace
    them by approximations), on the same blocks of 64 SIMD lanes, shared among
    ``threads`` as the sweep shares them. On CPUs whose √/÷ units are slow (this
    project's machine) this alone takes most of a sweep's time."""
    import numba

    @numba.njit(error_model="numpy", nogil=True)
    def lanes(block, steps):
        for _ in range(steps):
            for i in range(64):
                block[0, i] = block[2, i] / (1e-8 + math.sqrt(block[0, i]))
                block[1, i] = block[3, i] / (1e-8 + math.sqrt(block[1, i]))

    blocks = [np.random.default_rng(0).uniform(1, 2, (4, 64)) for _ in range(threads)]
    lanes(blocks[0], 1)
    share = [len(part) for part in np.array_split(np.arange(-(-K // 64)), threads)]
    if threads == 1:
        return lambda: [lanes(blocks[0], steps) for _ in range(share[0])]
    pool = ThreadPoolExecutor(threads)  # numba's nogil: the threads run side by side

    def run():
        jobs = [pool.submit(lambda b=b, n=n: [lanes(b, steps) for _ in range(n)])
                for b, n in zip(blocks, share, strict=True)]  # fmt: skip
        for job in jobs:
            job.result()

    return run


def run_jax(K, steps):
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def grad(x):
        inner = x[1] - x[0] ** 2
        return jnp.stack([-400 * x[0] * inner - 2 * (1 - x[0]), 200 * inner])

    def one(lr, x0):
        opt = optax.adam(lr)
        state = opt.init(x0)

        def body(carry, _):
            x, state = carry
            updates, state = opt.update(grad(x), state)
            return (optax.apply_updates(x, updates), state), None

        (x, _), _ = jax.lax.scan(body, (x0, state), None, length=steps)
        return x

    compiled = jax.jit(jax.vmap(one))
    X0, lr = setup(K)
    X0, lr = jnp.asarray(X0), jnp.asarray(lr)
    return lambda: compiled(lr, X0).block_until_ready()


def run_torch_vectorized(K, steps):
    import torch

    X0, lr = setup(K)
    lr_t = torch.tensor(lr)[:, None]

    def loop():
        x = torch.tensor(X0)
        s, r = torch.zeros_like(x), torch.zeros_like(x)
        for t in range(1, steps + 1):
            inner = x[:, 1] - x[:, 0] ** 2
            g = torch.stack([-400 * x[:, 0] * inner - 2 * (1 - x[:, 0]), 200 * inner], 1)
            s.mul_(0.9).add_(g, alpha=0.1)
            r.mul_(0.999).addcmul_(g, g, value=0.001)
            x -= lr_t * (s / (1 - 0.9**t)) / ((r / (1 - 0.999**t)).sqrt() + 1e-8)
        return x

    return loop


def torch_loop_seconds_per_config(steps, configs=3):
    """The usual way: one torch.optim.Adam and autograd per configuration."""
    import torch

    torch.set_num_threads(1)
    _, lr = setup(configs)
    start = time.perf_counter()
    for k in range(configs):
        x = torch.tensor(START, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([x], lr=float(lr[k]))
        for _ in range(steps):
            opt.zero_grad()
            loss = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
            loss.backward()
            opt.step()
    return (time.perf_counter() - start) / configs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--jax-K", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="only the table against JAX")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for steplab, JAX and the bound in the JAX table")  # fmt: skip
    args = parser.parse_args(argv)
    K, steps, n = args.K, args.steps, args.repeats
    give_jax_threads(args.threads)
    fast.set_threads(args.threads)

    # Same answers first: each configuration of the sweep is the readable step's, bit for bit.
    x_fast, _ = run_steplab(K, 50)()
    x_ref = run_numpy(K, 50)()
    assert np.array_equal(x_fast, x_ref), "steplab.fast.sweep disagrees with NumPy"

    # steplab and JAX timed interleaved, in the same rounds (the machine may be shared)
    rows = []
    for k in args.jax_K:
        contenders = {
            "steplab": run_steplab(k, steps),
            "bound": run_divider_bound(k, steps, args.threads),
        }
        jax_run = run_jax(k, steps)
        if jax_run is not None:
            contenders["jax"] = jax_run
        sec = interleaved_medians(contenders, n)
        jax_sec = sec.get("jax")
        rows.append([f"{k:,}", steps, f"{sec['steplab']:.4f}",
                     "–" if jax_sec is None else f"{jax_sec:.4f}",
                     "–" if jax_sec is None else f"{jax_sec / sec['steplab']:.2f}",
                     f"{sec['bound']:.4f}", f"{sec['bound'] / sec['steplab']:.2f}"])  # fmt: skip
    print_table(
        ["K", "steps", "steplab s", "JAX jit(vmap(scan)) s", "JAX/steplab",
         "√,÷ bound s", "bound/steplab"],
        rows,
        f"Adam on Rosenbrock, float64, {args.threads} thread(s) each (steplab, JAX, bound), "
        f"medians of {n} (interleaved)",
    )  # fmt: skip
    fast.set_threads(1)
    if args.quick:
        return
    contenders = {"steplab.fast.sweep (numba)": run_steplab(K, steps)}
    results = interleaved_medians(contenders, n)
    results["NumPy vectorized (readable steplab)"] = median_time(run_numpy(K, steps), 3, 1)
    results["torch vectorized"] = median_time(run_torch_vectorized(K, steps), 3, 1)
    per_config = torch_loop_seconds_per_config(steps)
    results["torch.optim loop (extrapolated)"] = per_config * K
    ours = results["steplab.fast.sweep (numba)"]
    rows = [[name, f"{sec:.4f}", f"{sec / ours:,.1f}"] for name, sec in results.items()]
    title = f"{K:,} configurations × {steps:,} Adam steps on Rosenbrock (float64, 1 thread)"
    print_table(["method", "seconds", "× steplab time"], rows, title)

    rows = []
    for k in (1_000, 10_000, 100_000):
        sec = median_time(run_steplab(k, steps), n)
        rows.append([f"{k:,}", steps, f"{sec:.4f}", f"{sec / (k * steps) * 1e9:.2f}"])
    for s in (100, 10_000):
        sec = median_time(run_steplab(K, s), n)
        rows.append([f"{K:,}", f"{s:,}", f"{sec:.4f}", f"{sec / (K * s) * 1e9:.2f}"])
    print_table(["K", "steps", "seconds", "ns per config-step"], rows, "Growth with K and steps")

    fast.set_threads(2)
    two = median_time(run_steplab(K, steps), n)
    fast.set_threads(1)
    print(f"\n2 threads: {two:.4f} s (speed-up over 1 thread: {ours / two:.2f}×)")

    X0, lr = setup(K)
    rows = []
    for name, cls in sl.OPTIMIZERS.items():
        opt = cls(lr=lr) if name != "adadelta" else cls()
        fast.sweep("rosenbrock", opt, X0, 2)  # compile outside the timing
        rows.append(
            [name, f"{median_time(lambda o=opt: fast.sweep('rosenbrock', o, X0, steps), n):.4f}"]
        )
    print_table(["optimizer", "seconds"], rows, f"Every optimizer, Rosenbrock, {K:,} × {steps:,}")
    rows = []
    for fn in fast.FUNCTIONS:
        X = np.tile(problems.get(fn).x0, (K, 1))
        opt = sl.Adam(lr=lr)
        fast.sweep(fn, opt, X, 2)
        sec = median_time(lambda f=fn, X=X, o=opt: fast.sweep(f, o, X, steps), n)
        rows.append([fn, f"{sec:.4f}"])
    print_table(["function", "seconds"], rows, f"Adam on every 2-D function, {K:,} × {steps:,}")


if __name__ == "__main__":
    main()
