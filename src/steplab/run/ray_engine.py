"""The Ray engine of :func:`steplab.sweep`: the sweep's chunks as tasks on a Ray cluster.

Each task runs up to :data:`CHUNKS_PER_TASK` chunks, one after the other — each many
configurations at once, as one vectorized ``(K, d)`` run, exactly the function the local
engine calls — so a row does not depend on where it ran. The driver keeps a bounded window
of tasks submitted (two per CPU, at least 16: waves, so memory does not grow with the
sweep), takes finished ones in batches (``ray.wait`` for a quarter of the window or 0.1 s,
so its work per task does not grow either), tops the window up and hands the results to
the sweep, which writes them to its results store. Only the driver writes (workers need no
shared disk), but each task prepares its own trials' store records (cells, curves,
checksum, shipped as a small SQLite database: :class:`steplab.run.store.Batch`), so the
driver's work per trial is a key check and a copy in C. A task whose worker process dies,
or whose whole node is lost, is run again by Ray (``max_retries``); its rows reach the
driver once, when the retry returns. An error or Ctrl+C in the driver cancels every task
in flight before the sweep returns or raises.

``address=None`` starts a local Ray runtime (or uses the one this process already has);
``"HOST:PORT"`` or ``"ray://HOST:10001"`` joins a running cluster (``ray start --head``).
"""

from __future__ import annotations

import itertools
import math
import socket
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

MAX_RETRIES = 3  # a task whose worker dies is run again up to this many times
_CONNECT_TIMEOUT = 5.0  # seconds to wait for a cluster's port to answer


class ClusterUnreachable(ConnectionError, ValueError):
    """The Ray cluster at the given address does not answer (a user's error, not a bug)."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ValueError(
            "engine='ray' needs Ray; install it with: pip install 'steplab[ray]'"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``"10.0.0.1:6379"`` or ``"ray://h:10001"`` → (host, port); None for "auto"/"local"."""
    if address in ("auto", "local"):
        return None
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(
            f"bad Ray address {address!r}; give HOST:PORT (e.g. 10.0.0.1:6379), "
            "ray://HOST:10001, 'auto' or None for a local runtime"
        )
    return parts.hostname, port


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(sock: socket.socket) -> bool:
    """Whether the server behind ``sock`` answers an HTTP/2 connection preface with a
    SETTINGS frame, as every gRPC server (Ray's GCS and Ray Client among them) does. An
    HTTP/1 server, or a port that accepts but never answers, does not."""
    sock.sendall(_HTTP2_PREFACE)
    head = b""
    while len(head) < 9:
        data = sock.recv(9 - len(head))
        if not data:
            return False
        head += data
    return head[3] == 0x04


def check_reachable(address: str | None) -> None:
    """Raise :class:`ClusterUnreachable` unless a Ray cluster answers at ``address`` within
    5 s: its port must accept a connection and speak gRPC (so an unrelated server there is
    named at once instead of ``ray.init`` retrying forever)."""
    if address is None:
        return
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=_CONNECT_TIMEOUT) as sock:
            sock.settimeout(_CONNECT_TIMEOUT)
            try:
                answers = _speaks_grpc(sock)
            except OSError:  # no answer in time, or the connection was reset
                answers = False
    except OSError as exc:
        raise ClusterUnreachable(
            f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); start one "
            "with `ray start --head` there, or give address=None for a local runtime"
        ) from None
    if not answers:
        raise ClusterUnreachable(
            f"the server at {address!r} is not a Ray cluster (it did not answer Ray's gRPC "
            f"within {_CONNECT_TIMEOUT:g} s); check the address (`ray status` on the head "
            "prints it), or give address=None for a local runtime"
        )


def connect(address: str | None) -> Any:
    """Join the cluster at ``address`` (None: a local runtime); return the ``ray`` module.

    A process already connected keeps its runtime (so tests and notebooks start Ray once).
    """
    ray = _ray()
    check_reachable(address)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        target = _host_port(address) if address and not address.startswith("ray://") else None
        if target is not None and target[1] != int(current.rsplit(":", 1)[1]):
            raise ValueError(
                f"this process is already connected to the Ray cluster at {current}; "
                f"call ray.shutdown() before joining {address!r}"
            )
        return ray
    try:
        if address is None:  # a runtime of our own: no dashboard, quiet workers
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address)
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        raise ClusterUnreachable(f"cannot connect to Ray at {address!r}: {exc}") from None
    return ray


def workers(ray: Any) -> int:
    """CPUs the cluster offers right now (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


CHUNKS_PER_TASK = 8  # a task may run this many chunks, one after the other


def task_size(n: int, cpus: int, chunk_size: int, chunks: int = CHUNKS_PER_TASK) -> int:
    """Trials per task: about four tasks per CPU (so a slow task or a retry does not leave
    the others idle), at most ``chunks`` chunks of ``chunk_size`` (which a task runs one
    after the other: memory per task stays that of a chunk), at least 1. Big tasks keep the
    driver's and Ray's work per trial small (their cost is per task); the results of the
    tasks in flight, and so the driver's memory, grow with them."""
    return max(1, min(chunks * chunk_size, math.ceil(n / (4 * cpus))))


IN_FLIGHT_PER_CPU = 2  # tasks submitted ahead per CPU: enough to keep every CPU busy
_MIN_IN_FLIGHT = 16
_WAIT_SECONDS = 0.1  # a wait returns after this long with what has finished


def in_flight(cpus: int) -> int:
    """How many tasks the driver keeps submitted at once: a bounded window, so neither the
    driver's loop nor the cluster's memory grows with the number of tasks in a sweep."""
    return max(_MIN_IN_FLIGHT, IN_FLIGHT_PER_CPU * cpus)


def run(
    execute: Callable[..., Any],
    problem: Any,
    chunks: Iterable[Any],
    options: dict,
    ray: Any,
    *,
    window: int | None = None,
) -> Generator[tuple[Any, Any], None, None]:
    """Run ``execute(problem, chunk, options)`` for every chunk as Ray tasks; yield
    ``(chunk, rows)`` in the order tasks finish.

    At most ``window`` tasks (default :func:`in_flight`) are submitted at a time; each
    ``ray.wait`` asks for up to a quarter of them (or what finished within 0.1 s), so the
    driver's work per finished task does not grow with the sweep. However the generator
    ends — exhausted, an error in a task, an error or Ctrl+C in the caller's loop
    (the caller must ``close()`` it, as ``sl.sweep`` does) — every task still in flight
    is cancelled before it returns.
    """
    window = window or in_flight(workers(ray))
    todo = iter(chunks)
    remote = ray.remote(max_retries=MAX_RETRIES, num_cpus=1)(execute)
    problem_ref = ray.put(problem)  # shipped once to each node, not once per task
    options_ref = ray.put(options)
    pending: dict[Any, Any] = {}

    def submit() -> None:
        for chunk in itertools.islice(todo, window - len(pending)):
            pending[remote.remote(problem_ref, chunk, options_ref)] = chunk

    try:
        submit()
        while pending:
            ready, _ = ray.wait(
                list(pending), num_returns=max(1, len(pending) // 4), timeout=_WAIT_SECONDS
            )
            if not ready:
                continue
            chunks_done = [pending.pop(ref) for ref in ready]
            try:
                results = ray.get(ready)  # one call for the whole batch
            except Exception:  # a task failed: hand on the others' rows, then its error
                for ref, chunk in zip(ready, chunks_done, strict=True):
                    yield chunk, ray.get(ref)
                raise  # pragma: no cover - the failed task's get raised above
            submit()  # refill the window before handing results on: the cluster keeps busy
            yield from zip(chunks_done, results, strict=True)
    finally:
        cancel(ray, list(pending))


def cancel(ray: Any, refs: Sequence[Any]) -> None:
    """Cancel tasks still running (an error or Ctrl+C: do not leave the cluster working).
    Never starts a runtime: at interpreter exit Ray may already be shut down, and calling
    it then would start a new local one."""
    if not refs or not ray.is_initialized():
        return
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - finished meanwhile, or the runtime is going away
            pass
