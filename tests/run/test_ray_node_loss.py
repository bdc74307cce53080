"""A whole node of a Ray cluster lost mid-sweep — its raylet, object store and worker
processes killed at once — costs nothing: the sweep finishes, every trial is stored once,
and the table equals the local engine's row for row. The cluster is simulated on this
machine (``ray.cluster_utils.Cluster``: a head and two worker nodes of one CPU each)."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import steplab as sl

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

GRID = {"sgd": {"lr": [1e-3, 1e-2, 1e-1]}, "adam": {"lr": [1e-3, 1e-2, 1e-1]}}
SEEDS = [0, 1]
OPTIONS = {"steps": 300, "batch_size": 32}


def same_rows(a, b) -> bool:
    """Rows equal in every field but wall time (NaN equal to NaN)."""

    def clean(row):
        return {
            k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k != "time"
        }

    return len(a) == len(b) and all(clean(x) == clean(y) for x, y in zip(a, b, strict=True))


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _dead(pid: int) -> bool:
    """No such process, or one that has exited and waits to be reaped (a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def busy_on(raylet: int) -> list[int]:
    """Worker processes of the node whose raylet is ``raylet`` running a sweep task now."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::_run_chunk"):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != raylet:
                pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            continue
        if pid == raylet:
            found.append(int(entry.name))
    return found


@pytest.fixture
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    simulated = cluster_utils.Cluster(
        initialize_head=True, head_node_args={**node, "include_dashboard": False}
    )
    try:
        doomed = simulated.add_node(**node)
        simulated.add_node(**node)
        simulated.wait_for_nodes()
        ray.init(address=simulated.address, log_to_driver=False, configure_logging=False)
        yield simulated, doomed
    finally:
        ray.shutdown()
        simulated.shutdown()


def test_a_lost_node_loses_nothing(cluster, tmp_path):
    simulated, doomed = cluster
    (raylet,) = [p.process.pid for p in doomed.all_processes["raylet"]]
    path = tmp_path / "results.sqlite"
    lost = []

    def kill_the_node_while_it_works():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not lost:
            busy = busy_on(raylet)
            if busy:  # a task of the sweep is running there: take the whole node away
                lost.append(busy)
                simulated.remove_node(doomed, allow_graceful=False)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_node_while_it_works)
    killer.start()
    try:
        remote = sl.sweep(
            "logistic_regression", GRID, seeds=SEEDS, engine="ray", store=path, **OPTIONS
        )
    finally:
        killer.join()
    assert lost, "no task ran on the node to be lost"
    # The node's raylet and the worker that was running a task there are gone (the
    # cluster's own view of the node lags: its health check takes seconds).
    # A killed worker notices its raylet's death by polling, and its parent reaps it later:
    # wait (on the condition, bounded) until each is gone or a zombie.
    deadline = time.monotonic() + 60
    while not all(_dead(pid) for pid in [raylet, *lost[0]]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_dead(pid) for pid in [raylet, *lost[0]])
    local = sl.sweep("logistic_regression", GRID, seeds=SEEDS, **OPTIONS)
    assert same_rows(remote, local)
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        keys = db.execute("SELECT entry, trial FROM trials").fetchall()
    assert len(keys) == len(set(keys)) == 12  # nothing lost, nothing twice
    assert same_rows(sl.run.store.read(path), local)
