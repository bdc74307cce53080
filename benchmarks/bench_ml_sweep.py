"""A DeepOBS-style sweep on an ML problem: 36 step sizes × 10 seeds of softmax regression
on MNIST-1D, all 360 runs as the rows of one (K, d) array, in one process.

Each configuration has its own step size and its own minibatch order (its seed); every
step computes all 360 minibatch gradients with batched matrix products and applies
Adam to the (360, 410) parameter array with per-row step sizes. Prints the wall time,
how it splits between gradients and optimizer, and the best step size.

    python benchmarks/bench_ml_sweep.py [--epochs 5] [--batch 128] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import steplab as sl
from steplab import problems

try:
    from benchmarks._timing import print_table
except ImportError:
    from _timing import print_table


def sweep(optimizer: str, epochs: int, batch: int, n_lr: int = 36, n_seeds: int = 10):
    problem = problems.softmax_regression("mnist1d")
    n_train = problem.n_train
    lrs = np.geomspace(1e-4, 1.0, n_lr)
    lr = np.repeat(lrs, n_seeds)  # configuration k: step size lrs[k // n_seeds], seed k % n_seeds
    K = lr.size
    opt = sl.make(optimizer, lr=lr[:, None])
    theta = np.tile(problem.initial_point(), (K, 1))
    state = opt.init(theta)
    rngs = [np.random.default_rng(k % n_seeds) for k in range(K)]
    steps_per_epoch = n_train // batch
    grad_time = opt_time = 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        orders = np.stack([rng.permutation(n_train) for rng in rngs])  # one order per config
        for i in range(steps_per_epoch):
            t0 = time.perf_counter()
            _, grad = problem.value_and_grad(theta, batch=orders[:, i * batch : (i + 1) * batch])
            t1 = time.perf_counter()
            opt.step(theta, grad, state)
            grad_time += t1 - t0
            opt_time += time.perf_counter() - t1
    total = time.perf_counter() - start
    loss = problem.value(theta)  # full training loss of every configuration
    by_lr = np.nanmedian(np.where(np.isfinite(loss), loss, np.nan).reshape(n_lr, n_seeds), 1)
    best = int(np.nanargmin(by_lr))
    return {"K": K, "d": problem.dim, "steps": epochs * steps_per_epoch, "seconds": total,
            "grad_seconds": grad_time, "opt_seconds": opt_time,
            "best_lr": float(lrs[best]), "best_loss": float(by_lr[best])}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd"])
    args = parser.parse_args(argv)
    rows = []
    for name in args.optimizers:
        r = sweep(name, args.epochs, args.batch)
        rows.append([name, f"{r['K']} × {r['d']}", r["steps"], f"{r['seconds']:.2f}",
                     f"{r['grad_seconds']:.2f}", f"{r['opt_seconds']:.2f}",
                     f"{r['best_lr']:.2g}", f"{r['best_loss']:.3f}"])  # fmt: skip
    print_table(
        ["optimizer", "K × d", "steps", "seconds", "gradients s", "optimizer s", "best lr", "loss"],
        rows,
        f"36 step sizes × 10 seeds, softmax regression on MNIST-1D, {args.epochs} epochs, "
        f"batch {args.batch} (1 process)",
    )


if __name__ == "__main__":
    main()
