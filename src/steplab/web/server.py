"""The web lab's HTTP server: uvicorn with the lab's connection rules.

What the ASGI app (:mod:`steplab.web.app`) cannot see happens here, in the protocol that
parses bytes into requests:

- A request that is not valid HTTP (``Content-Length: -1``, two ``Host`` headers, a bad
  chunk size, headers larger than ``max_header_bytes``, …) is answered like every other
  error: status 400, the lab's JSON body (``message``, ``detail``) and its security
  headers (uvicorn answers these itself, in plain text and without them).
- Header timeout: a connection must deliver a complete request head within
  ``header_timeout_s`` of opening (or of its previous response); otherwise it gets a 408
  and is closed. Slowloris clients, and idle connections that never send anything, are
  gone after that time. An idle keep-alive connection is closed after
  ``keep_alive_s``. (The body's own timeout is :class:`~steplab.web.app.Guard`'s.)
- Connection cap: beyond ``max_connections`` open connections, a new one is answered 503
  (JSON, security headers) and closed at once, so held connections can never take every
  file descriptor. The cap is kept below the process's open-file limit.
- When the system runs out of file descriptors anyway, asyncio logs
  "socket.accept() out of system resource" with a traceback each time it retries
  accepting; here that is one line at most every ``RESOURCE_LOG_INTERVAL_S`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from steplab._extras import requires

with requires("web", "the web lab"):
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

from steplab.web.app import SECURITY_HEADERS

LOG = logging.getLogger("steplab.web")
RESOURCE_LOG_INTERVAL_S = 60.0
_REASONS = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}


@dataclass(frozen=True)
class ServerLimits:
    """Connection rules (see the module's docstring); seconds and counts."""

    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 512
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < 3600):
                raise ValueError(f"{name} must be a number of seconds in (0, 3600), got {value!r}")
        for name in ("max_connections", "max_header_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


def error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response, ``Connection: close``: the lab's JSON error body and its
    security headers. Written straight to the socket: it is sent where no request (or no
    valid one) exists for h11 to answer."""
    body = json.dumps(
        {"message": message, "detail": [{"loc": [], "msg": message, "type": "http_error"}]}
    ).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
        **{key.lower(): value for key, value in SECURITY_HEADERS.items()},
    }
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n" + "".join(
        f"{key}: {value}\r\n" for key, value in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + body


class LabProtocol(H11Protocol):
    """uvicorn's h11 protocol with the lab's errors, header timeout and connection cap.
    ``limits`` is set on a subclass by :func:`protocol_class`."""

    limits: ServerLimits = ServerLimits()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, f"the lab has {self.limits.max_connections} connections open")
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a complete request head arrived
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()  # the next request's head, from now

    def send_400_response(self, msg: str) -> None:
        self._refuse(
            400,
            "invalid HTTP request: malformed request line, headers or body framing "
            f"(or a head over {self.limits.max_header_bytes} bytes)",
        )

    def _refuse(self, status: int, message: str) -> None:
        self._disarm_header_timer()
        if not self.transport.is_closing():
            self.transport.write(error_bytes(status, message))
            self.transport.close()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_s, self._header_timed_out
        )

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its body has its own timeout
        self._unset_keepalive_if_required()
        self._refuse(
            408, f"no complete request head within {self.limits.header_timeout_s:g} seconds"
        )


def protocol_class(limits: ServerLimits) -> type[LabProtocol]:
    return type("LabProtocolWithLimits", (LabProtocol,), {"limits": limits})


def file_limit() -> int | None:
    """The open-file limit, raised to its hard maximum where allowed (None: unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else int(soft)


def capped(limits: ServerLimits) -> ServerLimits:
    """``limits`` with the connection cap below the open-file limit (files, the event
    loop's own and the worker threads' need some too)."""
    available = file_limit()
    if available is None or limits.max_connections <= available - 64:
        return limits
    import dataclasses

    return dataclasses.replace(limits, max_connections=max(1, available - 64))


class _QuietResourceErrors:
    """A loop exception handler: "out of system resource" once a minute, without its
    traceback; everything else as asyncio would."""

    def __init__(self) -> None:
        self.last = -float("inf")
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if "out of system resource" not in context.get("message", ""):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < RESOURCE_LOG_INTERVAL_S:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        LOG.warning("%s: %s%s", context["message"], context.get("exception"), more)
        self.last, self.suppressed = now, 0


class LabServer(uvicorn.Server):
    async def startup(self, sockets: Any = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_QuietResourceErrors())
        await super().startup(sockets=sockets)


def config(app: Any, host: str, port: int, limits: ServerLimits | None = None) -> uvicorn.Config:
    """uvicorn's configuration for the lab: its protocol, timeouts and header size."""
    limits = capped(limits or ServerLimits())
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=protocol_class(limits),
        timeout_keep_alive=max(1, round(limits.keep_alive_s)),
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )


def server(app: Any, host: str, port: int, limits: ServerLimits | None = None) -> LabServer:
    return LabServer(config(app, host, port, limits))
