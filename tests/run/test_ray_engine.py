"""sl.sweep(engine="ray"): the local engine's table row for row, from tasks of many
configurations, surviving a killed worker and a killed driver. One local Ray runtime
(2 CPUs, no dashboard, a small object store) serves the whole module."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import steplab as sl
from steplab.cli import main
from steplab.run import ray_engine

ray = pytest.importorskip("ray")
# Ray starts its services with subprocess (fork, then exec at once), which is safe even
# though JAX, imported by other test modules, runs threads.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

GRID = {"sgd": {"lr": [1e-3, 1e-2, 1e-1]}, "adam": {"lr": [1e-3, 1e-2, 1e-1]}}
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def same_rows(a, b) -> bool:
    """Rows equal in every field but wall time (NaN equal to NaN)."""

    def clean(row):
        return {
            k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k != "time"
        }

    return len(a) == len(b) and all(clean(x) == clean(y) for x, y in zip(a, b, strict=True))


def count(path: Path) -> int:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]


CASES = {
    "test function": ("rosenbrock", GRID, {"steps": 200, "engine": "loop"}),
    "minibatch noise": ("two_d_beale", GRID, {"steps": 100, "batch_size": 16}),
    "logistic regression": ("logistic_regression", GRID, {"steps": 40, "batch_size": 32}),
    # 50 rates × 2 seeds × 5000 steps per optimizer: enough for the compiled kernels.
    "compiled": (
        "beale",
        {"sgd": {"lr": np.logspace(-5, -2, 50)}, "adam": {"lr": np.logspace(-4, -1, 50)}},
        {"steps": 5000},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ray_gives_the_local_table_row_for_row(cluster, case, tmp_path):
    problem, grid, options = CASES[case]
    engine = options.get("engine", "auto")  # the local engine to compare with
    options = {k: v for k, v in options.items() if k != "engine"}
    local = sl.sweep(problem, grid, seeds=SEEDS, engine=engine, **options)
    path = tmp_path / "results.sqlite"
    remote = sl.sweep(problem, grid, seeds=SEEDS, engine="ray", store=path, **options)
    assert len(local) == sum(np.size(v["lr"]) for v in grid.values()) * len(SEEDS)
    assert same_rows(remote, local)
    assert [list(row) for row in remote] == [list(row) for row in local]  # fields in order
    with sqlite3.connect(path) as db:
        identity = json.loads(
            db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()[0]
        )
    kernels = {part["kernel"] for part in identity["grid"]}
    assert kernels == ({"compiled"} if case == "compiled" else {"loop"})


def test_the_drivers_table_holds_columns_until_a_row_is_asked_for(cluster, monkeypatch):
    """The driver builds no row dict (docs/distributed.md): the table it returns is made of
    the tasks' column blocks, whose length and columns are read without rows; the first
    row asked for builds them all, and they are the local engine's."""
    from steplab.run.records import Columns, Table

    built = []
    real_rows = Columns.rows
    monkeypatch.setattr(Columns, "rows", lambda self: built.append(self) or real_rows(self))
    grid = {"sgd": {"lr": np.logspace(-4, -1, 12)}, "adam": {"lr": [1e-3, 1e-2]}}
    remote = sl.sweep("rosenbrock", grid, seeds=SEEDS, engine="ray", steps=30, chunk_size=4)
    local = sl.sweep("rosenbrock", grid, seeds=SEEDS, engine="loop", steps=30)
    assert not built and type(remote) is not Table  # blocks, no rows yet
    assert len(remote) == len(local) == 28 and remote.columns == local.columns
    assert remote.column("final_loss") == local.column("final_loss")
    assert not built
    assert same_rows(remote, local) and built and type(remote) is Table
    assert [list(row) for row in remote] == [list(row) for row in local]


def test_tasks_hold_many_configurations(cluster, monkeypatch):
    sizes = []
    real_run = ray_engine.run

    def spy(execute, problem, chunks, options, ray):
        assert not isinstance(chunks, list)  # made one at a time, as the driver asks

        def counted():
            for chunk in chunks:
                sizes.append(len(chunk.trials))
                yield chunk

        return real_run(execute, problem, counted(), options, ray)

    monkeypatch.setattr(ray_engine, "run", spy)
    grid = {"sgd": {"lr": np.logspace(-4, -1, 12)}, "adam": {"lr": np.logspace(-4, -1, 12)}}
    table = sl.sweep("rosenbrock", grid, seeds=SEEDS, engine="ray", steps=50)
    assert len(table) == sum(sizes) == 48
    # 48 trials on 2 CPUs: 8 tasks of 6 configurations (about four tasks per CPU).
    assert sizes == [6] * 8
    assert ray_engine.task_size(10_000, 2, 512) == 1250  # four tasks per CPU
    assert ray_engine.task_size(10**6, 2, 512) == 8 * 512  # never more than eight chunks
    assert ray_engine.task_size(10**6, 2, 8192, 1) == 8192  # compiled: one chunk a task
    assert ray_engine.task_size(3, 2, 512) == 1


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def busy_workers() -> list[int]:
    """Our runtime's worker processes running a sweep task right now (Ray names a busy
    worker's process after its task: ``ray::_run_chunk``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::_run_chunk"):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != os.getpid():  # only descendants of this test process
                pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            continue
        if pid == os.getpid():
            found.append(int(entry.name))
    return found


def test_a_killed_worker_loses_nothing(cluster, tmp_path):
    path = tmp_path / "results.sqlite"
    killed = []

    def kill_one_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            workers = busy_workers()
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    options = {"steps": 300, "batch_size": 32}
    try:
        remote = sl.sweep(
            "logistic_regression", GRID, seeds=SEEDS, engine="ray", store=path, **options
        )
    finally:
        killer.join()
    assert killed, "no busy worker was found to kill"
    local = sl.sweep("logistic_regression", GRID, seeds=SEEDS, **options)
    assert same_rows(remote, local)
    with sqlite3.connect(path) as db:
        keys = db.execute("SELECT entry, trial FROM trials").fetchall()
    assert len(keys) == len(set(keys)) == 12


CHILD = """
import steplab as sl, sys
sl.sweep("logistic_regression", {grid!r}, seeds={seeds!r}, store=sys.argv[1], engine="ray",
         address=sys.argv[2], **{options!r})
"""


def test_a_killed_driver_resumes_on_the_cluster(cluster, tmp_path):
    """A driver in another process joins the cluster by address, is killed mid-sweep, and
    the sweep started again here finishes the rest."""
    path = tmp_path / "results.sqlite"
    options = {"steps": 300, "batch_size": 32}
    code = CHILD.format(grid=GRID, seeds=SEEDS, options=options)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code, str(path), cluster], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            try:
                if count(path) >= 1:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the sweep finished before it was killed"
    before = count(path)
    assert 1 <= before < 12
    resumed = sl.sweep(
        "logistic_regression", GRID, seeds=SEEDS, store=path, engine="ray", **options
    )
    local = sl.sweep("logistic_regression", GRID, seeds=SEEDS, **options)
    assert same_rows(resumed, local)
    with sqlite3.connect(path) as db:
        keys = db.execute("SELECT entry, trial FROM trials").fetchall()
        sessions = db.execute(
            "SELECT COUNT(*) FROM trials JOIN batches USING (batch) GROUP BY session"
        ).fetchall()
    assert len(keys) == len(set(keys)) == 12
    assert sorted(n for (n,) in sessions) == sorted([before, 12 - before])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def grpc_like_server():
    """A port that answers an HTTP/2 preface with a SETTINGS frame, as a Ray head does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_an_unreachable_address_is_a_clear_error_and_touches_nothing(cluster, tmp_path):
    path = tmp_path / "results.sqlite"
    address = f"127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach a Ray cluster at"):
        sl.sweep("rosenbrock", GRID, seeds=SEEDS, engine="ray", address=address, store=path)
    assert time.monotonic() - start < 10
    assert not path.exists()
    with pytest.raises(ValueError, match="bad Ray address"):
        sl.sweep("rosenbrock", GRID, seeds=SEEDS, engine="ray", address="no-port", store=path)
    with socket.socket() as listener:  # a port that accepts, then says nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        other = f"127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ConnectionError, match=f"the server at '{other}' is not a Ray"):
            sl.sweep("rosenbrock", GRID, seeds=SEEDS, engine="ray", address=other, store=path)
    with grpc_like_server() as other:  # another cluster, while this process has one
        with pytest.raises(ValueError, match="already connected to the Ray cluster at"):
            sl.sweep("rosenbrock", GRID, seeds=SEEDS, engine="ray", address=other, store=path)
    with pytest.raises(ValueError, match="address= is for engine='ray'"):
        sl.sweep("rosenbrock", GRID, seeds=SEEDS, address=address)
    assert not path.exists()


def test_without_ray_installed_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'steplab\[ray\]'"):
        sl.sweep("rosenbrock", GRID, seeds=SEEDS, engine="ray", steps=10)


def read_summary(out):
    with (out / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_benchmark_engine_ray_gives_the_local_summary(cluster, tmp_path):
    args = ["benchmark", "--problems", "rosenbrock", "--optimizers", "sgd", "adam"]
    args += ["--grid", "lr=1e-3..1:4", "--seeds", "2"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    local, remote = read_summary(tmp_path / "local"), read_summary(tmp_path / "ray")
    assert len(local) == 2 and local == remote


def test_benchmark_with_an_unreachable_cluster_touches_nothing(cluster, tmp_path, capsys):
    out = tmp_path / "bench"
    address = f"127.0.0.1:{closed_port()}"
    assert main(["benchmark", "--engine", "ray", "--address", address, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot reach a Ray cluster" in err and "Traceback" not in err
    assert not out.exists()


def no_busy_workers_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not busy_workers():
            return True
        time.sleep(0.05)
    return False


LONG = {"steps": 4000, "batch_size": 32}  # tasks of a few seconds each


def test_an_error_in_the_driver_cancels_every_task_at_once(cluster, tmp_path, monkeypatch):
    """The store fails at the first batch while tasks run: the sweep raises, and no task is
    left running (before, they ran on until the generator was garbage-collected)."""
    from steplab.run import store as stores

    def broken(self, records):
        raise stores.StoreError("disk full")

    monkeypatch.setattr(stores.ResultStore, "add_records", broken)
    grid = {"sgd": {"lr": np.logspace(-4, -1, 8)}}
    with pytest.raises(stores.StoreError, match="disk full") as error:
        sl.sweep(
            "logistic_regression",
            grid,
            seeds=SEEDS,
            engine="ray",
            store=tmp_path / "s",
            chunk_size=1,
            **LONG,
        )
    assert error.traceback  # the generator's frame is still referenced from here
    assert no_busy_workers_within(5.0)


def test_ctrl_c_in_the_driver_cancels_the_tasks_and_returns_the_table_so_far(cluster, monkeypatch):
    real_wait, calls = ray.wait, []

    def wait(*args, **kwargs):
        calls.append(1)
        ready = real_wait(*args, **kwargs)
        if len(calls) == 1:
            time.sleep(0.3)  # the workers are busy now
            raise KeyboardInterrupt
        return ready

    monkeypatch.setattr(ray, "wait", wait)
    grid = {"sgd": {"lr": np.logspace(-4, -1, 8)}}
    table = sl.sweep("logistic_regression", grid, seeds=SEEDS, engine="ray", chunk_size=1, **LONG)
    assert table.interrupted and len(table) < 16
    assert no_busy_workers_within(5.0)


def _echo(problem, chunk, options):
    return [chunk]


def test_the_driver_keeps_a_bounded_window_of_tasks(cluster, monkeypatch):
    real_wait, sizes = ray.wait, []

    def wait(refs, **kwargs):
        sizes.append((len(refs), kwargs["num_returns"]))
        return real_wait(refs, **kwargs)

    monkeypatch.setattr(ray, "wait", wait)
    finished = list(ray_engine.run(_echo, None, range(100), {}, ray, window=8))
    assert sorted(chunk for chunk, _ in finished) == list(range(100))  # each once
    assert all(rows == [chunk] for chunk, rows in finished)
    assert max(n for n, _ in sizes) == 8  # never more than the window in flight
    assert all(k == max(1, n // 4) for n, k in sizes)  # batched waits
    assert ray_engine.in_flight(2) == 16 and ray_engine.in_flight(6400) == 12800


def test_a_server_that_is_not_ray_is_named_at_once(cluster):
    """Any HTTP server on localhost answers the port check; ray.init would retry forever."""
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        start = time.monotonic()
        with pytest.raises(ray_engine.ClusterUnreachable, match=f"{address}.* is not a Ray"):
            ray_engine.check_reachable(address)
        assert time.monotonic() - start < 6
        # A fresh process (no runtime yet), through sl.sweep: one line, no retrying.
        code = (
            "import steplab as sl, sys\n"
            "try:\n"
            "    sl.sweep('rosenbrock', {'sgd': {'lr': [0.1]}}, engine='ray',\n"
            "             address=sys.argv[1])\n"
            "except ConnectionError as exc:\n"
            "    print(exc)\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(
            [sys.executable, "-c", code, address],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"the server at '{address}' is not a Ray cluster" in done.stdout, done.stderr
    finally:
        server.shutdown()
    ray_engine.check_reachable(cluster)  # a real cluster passes the same check
