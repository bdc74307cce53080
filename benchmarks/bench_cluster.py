"""The Ray driver on a simulated cluster: tasks/s and driver CPU per task against the number
of tasks, for the driver of ``steplab.run.ray_engine`` and the one before it (loaded from
git: every task submitted at once, one ``ray.wait(num_returns=1)`` per result), and one
sweep of many trivial trials with a results store, end to end.

The cluster is ``ray.cluster_utils.Cluster``: ``--nodes`` Ray nodes (a head and workers,
each its own raylet and object store) of ``--cpus`` CPUs on this one machine. The tasks do
nothing (they return their argument), so what is measured is the driver and Ray, not work.
Driver CPU is ``time.process_time()`` of the driver process (all its threads, Ray's
included); wall time on a shared machine also holds the other jobs' load (printed). The
sweep also reports the driver's peak resident memory above what it held before the sweep
(sampled every 20 ms; meaningful in the first round of a process, since later rounds reuse
memory the first one freed).

    python benchmarks/bench_cluster.py [--tasks 1000 10000 100000] [--old-up-to 10000]
        [--nodes 3] [--cpus 1] [--sweep-trials 100000] [--sweep-rounds 1] [--only-sweep]
        [--no-table] [--compare-table] [--profile]

``--compare-table`` runs the sweep with and without the table (``return_table=False``)
in alternating rounds on the same cluster, so that the table's driver CPU per trial is
measured under the same load. ``--profile`` then runs one more sweep under ``cProfile``
(the driver's main thread, CPU time) and prints the CPU of each of the driver's threads.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import steplab as sl
from steplab.run import ray_engine

OLD = "c7f870a~1"  # the commit before this work: the old driver


def _noop(problem, chunk, options):
    return chunk


def old_engine():
    """steplab/run/ray_engine.py as it was before the bounded, batched driver."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{OLD}:src/steplab/run/ray_engine.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_ray_engine.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_ray_engine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(engine, n: int, ray) -> tuple[float, float]:
    """(tasks per second, driver CPU milliseconds per task) for ``n`` no-op tasks."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in engine.run(_noop, None, range(n), {}, ray))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert count == n
    return n / wall, 1e3 * cpu / n


def _rss() -> tuple[int, int]:
    """This process's resident memory and its private (anonymous) part, in bytes (Linux).
    The rest is mapped files and shared memory: Ray's object store, bounded by its size."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["RssAnon"]


class PeakRSS:
    """The driver's peak resident memory during a block, above what it held before it,
    sampled every 20 ms by a thread (``ru_maxrss`` would be the whole process's peak):
    ``growth`` in all, ``private`` for its anonymous memory alone."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = tuple(map(max, self.peak, _rss()))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = tuple(map(max, self.peak, _rss()))
        self.growth = self.peak[0] - self.start[0]
        self.private = self.peak[1] - self.start[1]


def _print_round(result: dict, label: str) -> None:
    print(
        f"  round{' ' + label if label else ''}: {result['wall']:.1f} s wall, "
        f"{result['cpu']:.2f} s driver CPU ({100 * result['overhead']:.1f} % of wall), cluster "
        f"CPU {result['cluster']:.1f} s (driver {100 * result['share']:.1f} % of all CPU), "
        f"driver peak RSS +{result['rss'] / 2**20:.0f} MiB (private "
        f"+{result['private'] / 2**20:.0f} MiB), load {result['load']:.1f}",
        flush=True,
    )


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each of this process's threads, by thread name (Linux /proc):
    the main thread ("python") and Ray's own."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:  # exited meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return found


def profile_sweep(trials: int, ray) -> None:
    """One sweep under cProfile, timing the driver's main thread's CPU (not wall), and the
    CPU of each of the driver's threads: where the driver's time goes."""
    import cProfile
    import pstats

    seeds = range(10)
    grid = {"sgd": {"lr": np.logspace(-6, -1, trials // len(seeds))}}
    profile = cProfile.Profile(time.thread_time)
    with tempfile.TemporaryDirectory() as folder:
        before, cpu, wall = thread_cpu(), time.process_time(), time.perf_counter()
        profile.enable()
        table = sl.sweep(
            "rosenbrock", grid, seeds=seeds, steps=2, engine="ray", store=Path(folder) / "r"
        )
        profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = thread_cpu()
    assert len(table) == trials
    print(
        f"profiled sweep: {wall:.1f} s wall, {cpu:.2f} s driver CPU (with cProfile's own), "
        f"load {os.getloadavg()[0]:.1f}; CPU by thread:"
    )
    for name in sorted(after, key=lambda n: before.get(n, 0.0) - after[n])[:8]:
        print(f"  {name:16s} {after[name] - before.get(name, 0.0):.2f} s")
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


def cluster_cpu() -> float:
    """CPU seconds used so far by this process's descendants: the simulated cluster's
    raylets, object stores and workers (``ray.cluster_utils.Cluster`` starts them here)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += times.user + times.system
    return total


def sweep_overhead(trials: int, ray, **options) -> dict:
    """One sweep of ``trials`` trivial trials (rosenbrock, 2 steps) on the cluster, with a
    results store: wall time, driver CPU, the cluster's CPU, the store's size."""
    seeds = range(10)
    grid = {"sgd": {"lr": np.logspace(-6, -1, trials // len(seeds))}}
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "results.sqlite"
        with PeakRSS() as memory:
            wall, cpu, others = time.perf_counter(), time.process_time(), cluster_cpu()
            table = sl.sweep(
                "rosenbrock", grid, seeds=seeds, steps=2, engine="ray", store=store, **options
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            others = cluster_cpu() - others
        # The table's rows are built when first asked for (steplab.run.records.Table): their
        # cost, after the sweep (and outside its peak memory), is reported on its own.
        rows = time.process_time()
        if table is not None:
            table[0]
        rows = time.process_time() - rows
        del table
        with sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True) as db:
            count, keys = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT entry * 4294967296 + trial) FROM trials"
            ).fetchone()
        assert count == keys == trials, f"{count} rows, {keys} keys: not {trials}"
        size = sum(f.stat().st_size for f in Path(folder).glob("results.sqlite*"))
    return {
        "trials": count,
        "wall": wall,
        "cpu": cpu,
        "overhead": cpu / wall,
        "rows": rows,
        "cluster": others,
        "share": cpu / (cpu + others),
        "bytes": size,
        "load": os.getloadavg()[0],
        "rss": memory.growth,
        "private": memory.private,
    }


TRIALS_PER_TASK = (1, 8, 64)
_DOCS_BEGIN = "<!-- bench_cluster.py --write-docs: extrapolate("
_DOCS_END = "<!-- end of bench_cluster.py's table -->"


def extrapolation(task_ms: float, trial_ms: float, machines: int = 100, cores: int = 64) -> str:
    """What one driver sustains on ``machines × cores`` CPUs, from the measured driver CPU
    per task and per trial, as a Markdown table (an extrapolation: Ray's scheduling across
    that many raylets is assumed not to be the bottleneck, and one driver process uses
    about one core)."""
    cpus = machines * cores
    lines = [
        "| trial length | trials/s the CPUs finish | trials per task | driver cores needed "
        "| CPUs kept busy |",
        "|---|---|---|---|---|",
    ]
    for seconds in (1, 10, 100):
        finished = cpus / seconds
        for per_task in TRIALS_PER_TASK:
            need = (finished / per_task * task_ms + finished * trial_ms) / 1e3
            busy = min(1.0, 1.0 / need)
            lines.append(
                f"| {seconds} s | {finished:,.0f} | {per_task} | {need:.2f} | {100 * busy:.0f} % |"
            )
    return "\n".join(lines) + "\n"


def write_docs(path: Path, task_ms: float, trial_ms: float) -> None:
    """Replace the extrapolated table in ``path`` (between its markers, which record the
    measured inputs) with the one these measurements give."""
    text = path.read_text()
    start = text.index(_DOCS_BEGIN)
    end = text.index(_DOCS_END)
    block = (
        f"{_DOCS_BEGIN}task_ms={task_ms:.3f}, trial_ms={trial_ms:.4f}) -->\n\n"
        f"{extrapolation(round(task_ms, 3), round(trial_ms, 4))}\n"
    )
    path.write_text(text[:start] + block + text[end:])
    print(f"wrote the extrapolated table to {path}")


def docs_table(path: Path) -> tuple[str, str]:
    """The table in ``path`` and the one its recorded inputs give (for the docs' test)."""
    text = path.read_text()
    start = text.index(_DOCS_BEGIN)
    head, _, rest = text[start + len(_DOCS_BEGIN) :].partition(") -->\n\n")
    inputs = dict(part.split("=") for part in head.split(", "))
    table = rest[: rest.index(_DOCS_END)].rstrip("\n") + "\n"
    return table, extrapolation(float(inputs["task_ms"]), float(inputs["trial_ms"]))


def main(argv=None) -> None:
    import ray
    from ray.cluster_utils import Cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--old-up-to", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--sweep-trials", type=int, default=100_000)
    parser.add_argument("--sweep-rounds", type=int, default=1, help="median of this many")
    parser.add_argument("--only-sweep", action="store_true", help="skip the no-op tasks")
    parser.add_argument("--no-table", action="store_true", help="the sweep with return_table=False")
    parser.add_argument(
        "--compare-table",
        action="store_true",
        help="alternate rounds with and without the table; print the table's driver CPU",
    )
    parser.add_argument(
        "--profile", action="store_true", help="after the rounds, one sweep under cProfile"
    )
    parser.add_argument(
        "--write-docs",
        type=Path,
        metavar="MD",
        help="write the extrapolated table into this file (docs/distributed.md)",
    )
    args = parser.parse_args(argv)

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    node = {"num_cpus": args.cpus, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    for _ in range(args.nodes - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    old = old_engine()
    try:
        cpus = ray_engine.workers(ray)
        print(
            f"simulated cluster: {args.nodes} nodes × {args.cpus} CPU = {cpus} CPUs; "
            f"window {ray_engine.in_flight(cpus)} tasks in flight"
        )
        measure(ray_engine, 500, ray)  # warm-up: worker processes started on every node
        rows, task_ms = [], []
        for n in [] if args.only_sweep else args.tasks:
            new_rate, new_cpu = measure(ray_engine, n, ray)
            task_ms.append(new_cpu)
            if n <= args.old_up_to:
                old_rate, old_cpu = measure(old, n, ray)
                old_cells = [f"{old_rate:,.0f}", f"{old_cpu:.3f}"]
            else:
                old_cells = ["not run", "not run"]
            rows.append([f"{n:,}", f"{new_rate:,.0f}", f"{new_cpu:.3f}", *old_cells])
            print(f"| {' | '.join(rows[-1])} |", flush=True)
        print(
            "\n| no-op tasks | tasks/s | driver CPU ms/task | before: tasks/s | "
            "before: driver CPU ms/task |"
        )
        print("|---|---|---|---|---|")
        for row in rows:
            print(f"| {' | '.join(row)} |")
        if args.sweep_trials:
            sweep_overhead(2000, ray)  # warm-up: steplab imported on every worker
            options = {"return_table": False} if args.no_table else {}
            results, bare = [], []
            for _ in range(args.sweep_rounds):
                if args.compare_table:  # the same round without the table, just before
                    bare.append(sweep_overhead(args.sweep_trials, ray, return_table=False))
                    _print_round(bare[-1], "without the table")
                results.append(sweep_overhead(args.sweep_trials, ray, **options))
                _print_round(results[-1], "without the table" if args.no_table else "")
            result = {k: float(np.median([r[k] for r in results])) for k in results[0]}
            print(
                f"\nsweep of {result['trials']:,.0f} trivial trials (rosenbrock, 2 steps) with a "
                f"store: {result['wall']:.1f} s wall, driver CPU {result['cpu']:.2f} s, "
                f"{result['bytes'] / result['trials']:.0f} bytes/trial, driver peak RSS "
                f"+{result['rss'] / 2**20:.0f} MiB (private +{result['private'] / 2**20:.0f} MiB)"
            )
            rounds = ", ".join(f"{100 * r['overhead']:.1f}" for r in results)
            loads = ", ".join(f"{r['load']:.1f}" for r in results)
            print(
                f"DRIVER OVERHEAD {100 * result['overhead']:.1f} % of wall time "
                f"(driver CPU / wall, median of {len(results)} rounds, target < 10 %; rounds: "
                f"{rounds} %; load after each: {loads} on {os.cpu_count()} cores)"
            )
            if not args.no_table:
                print(
                    "building the table's rows afterwards, when first asked for: "
                    f"{1e6 * result['rows'] / result['trials']:.2f} µs/trial (not in the above)"
                )
            # Wall time on a shared machine holds the other jobs' load; the share of CPU does
            # not. On an idle machine of C cores, wall >= (driver + cluster CPU) / C, so the
            # driver's part of wall is at most C × its share of the CPU.
            cores = os.cpu_count() or 1
            print(
                f"driver CPU {1e6 * result['cpu'] / result['trials']:.1f} µs/trial = "
                f"{100 * result['share']:.1f} % of all CPU the sweep used (median); idle "
                f"{cores}-core bound on the driver's part of wall: "
                f"{100 * min(1.0, cores * result['share']):.0f} %"
            )
            if bare:
                cpu = [r["cpu"] for r in results]
                without = [r["cpu"] for r in bare]
                n = result["trials"]
                overhead = np.median([r["overhead"] for r in bare])
                print(f"without the table: driver overhead {100 * overhead:.1f} % of wall (median)")
                print(
                    f"the table's driver CPU: {1e6 * np.median(cpu) / n:.2f} µs/trial with, "
                    f"{1e6 * np.median(without) / n:.2f} without (medians of alternating "
                    f"rounds): {1e6 * (np.median(cpu) - np.median(without)) / n:.2f} µs/trial"
                )
            if args.profile:
                profile_sweep(args.sweep_trials, ray)
            if task_ms:
                trial_ms = 1e3 * result["cpu"] / result["trials"]
                print(
                    f"\nextrapolated to 100 machines × 64 cores (driver CPU: {max(task_ms):.3f} "
                    f"ms per task + {trial_ms:.4f} ms per trial):\n"
                )
                print(extrapolation(max(task_ms), trial_ms))
                if args.write_docs:
                    write_docs(args.write_docs, max(task_ms), trial_ms)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
