"""The same sweep on the local engine and on a local Ray runtime with 1 and 2 workers:
throughput (trials per second), Ray's overhead per task, and the speedup from 1 to 2.

The sweep: 5 optimizers × 12 step sizes × 4 seeds = 240 trials of logistic regression on
breast_cancer (5 epochs, batches of 32). Each engine runs it ``--repeats`` times after a
warm-up (Ray: worker processes started and steplab imported); medians are printed. The
overhead per task is the time per task of 200 tasks that only return a task's worth of
rows (48), through the same engine code (``ray_engine.run``), on one worker. Ray's
start-up (``ray.init``) is reported on its own, and so is the results store's speed: the
time to store one task's rows (group commits; benchmarks/bench_store.py has more). Every table
is checked equal to the local one.
Ray runs each task with one BLAS thread (it sets OMP_NUM_THREADS=1), so the local engine
runs with one too (threadpoolctl): the comparison is one core against one core. The load
average is printed: on a shared machine, 2 workers cannot be faster than the free cores.

    python benchmarks/bench_ray.py [--repeats 5] [--epochs 5]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import steplab as sl
from steplab.run import ray_engine

try:
    from benchmarks._timing import print_table
except ImportError:
    from _timing import print_table

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")


def same(a, b) -> bool:
    def clean(row):
        return {k: v for k, v in row.items() if k != "time" and v == v}  # NaN-free

    return len(a) == len(b) and all(clean(x) == clean(y) for x, y in zip(a, b, strict=True))


def _echo(problem, chunk, options):
    """A task that does no work: returns the rows it was given."""
    return chunk


def store_speed(rows, chunks: int = 200) -> tuple[float, float]:
    """Seconds per stored chunk of ``rows`` (group commits: closing, which commits the last
    batch, included), and bytes per stored trial. benchmarks/bench_store.py measures more."""
    from steplab.run.store import ResultStore

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.sqlite"
        start = time.perf_counter()
        with ResultStore.open(path, {"benchmark": "store"}) as db:
            for c in range(chunks):
                db.add([(c, t, row) for t, row in enumerate(rows)])
        seconds = (time.perf_counter() - start) / chunks
        return seconds, path.stat().st_size / (chunks * len(rows))


def timed(repeats: int, call) -> tuple[float, object]:
    call()  # warm-up: imports, worker processes, caches
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> None:
    import ray
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)

    problem = sl.problems.get("logistic_regression", data="breast_cancer")
    grid = {name: {"lr": np.logspace(-4, 0, 12)} for name in OPTIMIZERS}
    seeds = range(4)
    n = len(OPTIMIZERS) * 12 * len(seeds)
    work = {"epochs": args.epochs, "batch_size": 32}

    def run(engine, **options):
        return lambda: sl.sweep(problem, grid, seeds=seeds, engine=engine, **options)

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with threadpool_limits(1):
        local_time, local = timed(args.repeats, run("auto", **work))
    rows = [["local engine (1 process)", "—", f"{local_time:.2f}", f"{n / local_time:.0f}", "1.00"]]
    results = {}
    rows_of_a_task = local[:48]
    for workers in (1, 2):
        start = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - start
        seconds, table = timed(args.repeats, run("ray", **work))
        tasks = len(OPTIMIZERS) * math.ceil(12 * len(seeds) / ray_engine.task_size(n, workers, 512))
        if workers == 1:
            echo_time, _ = timed(
                args.repeats,
                lambda: list(ray_engine.run(_echo, None, [rows_of_a_task] * 200, {}, ray)),
            )
            overhead = echo_time / 200
        ray.shutdown()
        assert same(table, local), "Ray's table differs from the local one"
        results[workers] = seconds
        rows.append(
            [
                f"Ray, {workers} worker{'s' * (workers > 1)} ({tasks} tasks)",
                f"{init:.1f}",
                f"{seconds:.2f}",
                f"{n / seconds:.0f}",
                f"{local_time / seconds:.2f}",
            ]
        )
    print_table(
        ["engine", "ray.init [s]", "sweep [s]", "trials/s", "speed vs local"],
        rows,
        title=f"{n} trials of logistic regression (breast_cancer, {args.epochs} epochs), "
        f"median of {args.repeats}",
    )
    print(f"\nRay overhead per task (1 worker, returning 48 rows): {overhead * 1e3:.1f} ms")
    print(f"1 → 2 workers: {results[1] / results[2]:.2f}× faster")
    store_time, size = store_speed(rows_of_a_task)
    print(
        f"results store: one task's 48 rows stored in {store_time * 1e3:.1f} ms "
        f"({48 / store_time:.0f} trials/s), {size:.0f} bytes per trial on disk"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("tables equal to the local engine's, row for row: yes")


if __name__ == "__main__":
    main()
