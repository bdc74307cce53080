"""The Ray engine of :func:`steplab.sweep`: the sweep's chunks as tasks on a Ray cluster.

Each task runs one chunk — many configurations at once, as one vectorized ``(K, d)`` run,
exactly the function the local engine calls — so a row does not depend on where it ran.
The driver submits every task, then takes results as they finish (``ray.wait``) and hands
them to the sweep, which writes them to its results store. Only the driver writes: workers
need no shared disk. A task whose worker process dies is run again by Ray
(``max_retries``); its rows reach the driver once, when the retry returns.

``address=None`` starts a local Ray runtime (or uses the one this process already has);
``"HOST:PORT"`` or ``"ray://HOST:10001"`` joins a running cluster (``ray start --head``).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Iterator, Sequence
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


def check_reachable(address: str | None) -> None:
    """Raise :class:`ClusterUnreachable` unless a cluster's port answers within 5 s."""
    if address is None:
        return
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise ClusterUnreachable(
            f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); start one "
            "with `ray start --head` there, or give address=None for a local runtime"
        ) from None


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


def task_size(n: int, cpus: int, chunk_size: int) -> int:
    """Configurations per task: about four tasks per CPU (so a slow task or a retry does
    not leave the others idle), never more than ``chunk_size``, at least 1."""
    return max(1, min(chunk_size, math.ceil(n / (4 * cpus))))


def run(
    execute: Callable[..., list[dict]],
    problem: Any,
    chunks: Sequence[Any],
    options: dict,
    ray: Any,
) -> Iterator[tuple[Any, list[dict]]]:
    """Run ``execute(problem, chunk, options)`` for every chunk as Ray tasks; yield
    ``(chunk, rows)`` in the order tasks finish."""
    if not chunks:
        return
    remote = ray.remote(max_retries=MAX_RETRIES, num_cpus=1)(execute)
    problem_ref = ray.put(problem)  # shipped once to each node, not once per task
    options_ref = ray.put(options)
    pending = {remote.remote(problem_ref, chunk, options_ref): chunk for chunk in chunks}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk = pending.pop(ref)
                yield chunk, ray.get(ref)
    finally:
        for ref in pending:  # an error or Ctrl+C: do not leave the cluster working
            ray.cancel(ref, force=True)
