"""Results store throughput: trials committed per second with group commits, against the
store as it was before them (one transaction per finished task, rollback journal; loaded
from git, same run, same rows), and the time to read and verify a store when resuming.
Rates are per CPU second of the driver process (``time.process_time``): SQLite's commits in
WAL mode do not wait for the disk (``synchronous=NORMAL``), so on a shared machine wall time
only adds the other jobs' load; the load average is printed.

The rows are real: one task's 48 rows of a logistic-regression sweep (about 20 fields each,
with curves of 31 recorded steps). The driver hands the store one task at a time, as
``sl.sweep`` does; the new store commits every 1000 trials or 0.1 s. The last line times
the driver's part alone: records prepared beforehand, as Ray tasks prepare theirs.

    python benchmarks/bench_store.py [--trials 100000] [--old-trials 4800] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import steplab as sl
from steplab.run import store as stores

TASK = 48


def task_rows() -> tuple[list[dict], list[dict]]:
    """48 rows of a real sweep, and their curves."""
    runs = sl.minimize(
        "logistic_regression",
        sl.Adam(lr=[10.0**-k for k in range(1, 7)] * 8),
        steps=30,
        batch_size=32,
        eval_every=10,
        seed=list(range(TASK)),
    )
    rows = [run.summary() for run in runs]
    for c, row in enumerate(rows):
        row["config"] = c
    return rows, [stores.run_curves(run) for run in runs]


def old_store_module():
    """steplab/run/store.py as committed before group commits and checksums."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", "c7f870a~1:src/steplab/run/store.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    folder = Path(tempfile.mkdtemp())
    (folder / "old_store.py").write_text(source)
    spec = importlib.util.spec_from_file_location("old_store", folder / "old_store.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rate(open_store, trials: int, rows, curves=None) -> tuple[float, float, int, float]:
    """Trials per CPU second of this process (the driver) adding ``trials`` rows one task
    at a time (closing included), bytes per trial, commits, and trials per wall second."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.sqlite"
        db = open_store(path)
        wall = time.perf_counter()  # also waits for the disk (the old store's fsyncs)
        start = time.process_time()  # the driver's CPU: wall time on a loaded box is noisy
        for task in range(trials // TASK):
            if curves is None:
                db.add([(0, task * TASK + t, row) for t, row in enumerate(rows)])
            else:
                db.add(
                    [
                        (0, task * TASK + t, row, c)
                        for t, (row, c) in enumerate(zip(rows, curves, strict=True))
                    ]
                )
        commits = getattr(db, "commits", trials // TASK)
        db.close()
        seconds = time.process_time() - start
        wall = time.perf_counter() - wall
        return trials / seconds, path.stat().st_size / trials, commits, trials / wall


def driver_rate(trials: int, rows, curves) -> tuple[float, float, int, float]:
    """As :func:`rate` with curves, but the records prepared beforehand, as Ray tasks
    prepare theirs (``RowSigner``: cells, curves blob, checksum, shard): what is timed is
    the driver's part alone, checking keys and copying them in."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.sqlite"
        db = stores.ResultStore.open(path, {"benchmark": "store"})
        signer = db.signer()
        prepared = [
            signer.records(
                (0, task * TASK + t, r, c)
                for t, (r, c) in enumerate(zip(rows, curves, strict=True))
            )
            for task in range(trials // TASK)
        ]
        wall = time.perf_counter()
        start = time.process_time()
        for batches in prepared:
            db.add_records(batches)
        commits = db.commits
        db.close()
        seconds = time.process_time() - start
        wall = time.perf_counter() - wall
        return trials / seconds, path.stat().st_size / trials, commits, trials / wall


def read_rate(trials: int, rows, curves) -> float:
    """Trials per CPU second reading and verifying a store (what a resumed sweep does
    first)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.sqlite"
        with stores.ResultStore.open(path, {"benchmark": "store"}) as db:
            for task in range(trials // TASK):
                db.add(
                    [
                        (0, task * TASK + t, r, c)
                        for t, (r, c) in enumerate(zip(rows, curves, strict=True))
                    ]
                )
        start = time.process_time()
        with stores.ResultStore.open(path, {"benchmark": "store"}) as db:
            n = len(db.done())
        return n / (time.process_time() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--old-trials", type=int, default=4800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows, curves = task_rows()
    old = old_store_module()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results: dict[str, list] = {"old": [], "new": [], "curves": [], "driver": []}
    for _ in range(args.repeats):  # interleaved, so that load changes hit all alike
        results["old"].append(
            rate(lambda p: old.ResultStore.open(p, {"benchmark": "store"}), args.old_trials, rows)
        )
        results["new"].append(
            rate(lambda p: stores.ResultStore.open(p, {"benchmark": "store"}), args.trials, rows)
        )
        results["curves"].append(
            rate(
                lambda p: stores.ResultStore.open(p, {"benchmark": "store"}),
                args.trials,
                rows,
                curves,
            )
        )
        results["driver"].append(driver_rate(args.trials, rows, curves))
    verify = statistics.median(read_rate(args.trials, rows, curves) for _ in range(args.repeats))
    names = {
        "old": f"before: a commit per task of {TASK} ({args.old_trials} trials)",
        "new": f"group commits, rows only ({args.trials} trials)",
        "curves": f"group commits, rows + curves ({args.trials} trials)",
        "driver": f"rows + curves, records prepared by the tasks ({args.trials} trials)",
    }
    anchor = statistics.median(r[0] for r in results["old"])
    print(f"\nresults store, median of {args.repeats} (python {sys.version.split()[0]}):\n")
    wall_anchor = statistics.median(r[3] for r in results["old"])
    print(
        "| store | trials per CPU s | vs before | trials per wall s | vs before | bytes/trial "
        "| commits |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, label in names.items():
        speed = statistics.median(r[0] for r in results[key])
        wall = statistics.median(r[3] for r in results[key])
        size = statistics.median(r[1] for r in results[key])
        commits = results[key][0][2]
        print(
            f"| {label} | {speed:,.0f} | {speed / anchor:.1f}× | {wall:,.0f} | "
            f"{wall / wall_anchor:.1f}× | {size:.0f} | {commits} |"
        )
    print(f"\nresume: read and verify {args.trials} trials (with curves): {verify:,.0f} trials/s")
    print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
