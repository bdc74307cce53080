"""The web lab's HTTP side: a FastAPI app serving a JSON API and the static page.

Endpoints (all JSON; request bodies are the models of :mod:`steplab.web.models`):

- ``GET  /api/meta``  optimizers with their hyperparameters (interval, default, doc,
  presets), the step-size schedules with their parameters, the modifiers (cautious, ema,
  swa, lookahead, the chain pieces) with their settings, the 2-D test functions, the
  expression grammar and the request limits;
- ``POST /api/grid``  loss values on a grid, for the contour plot;
- ``POST /api/run``   trajectories, losses and per-coordinate step sizes;
- ``POST /api/sweep`` final loss against step size, one vectorized run per optimizer
  (one run per step size for an optimizer whose step size follows a schedule or that
  has modifiers).

Bad input never reaches NumPy: pydantic rejects it with HTTP 422, and every error body
has ``message``, one line naming the field (``optimizers.0.hyperparameters: lr must be in
(0, inf), got -1``), besides pydantic's usual ``detail`` list. Typed formulas go through
the whitelist parser of :mod:`steplab.problems.expression`; no user text is executed.

Bounded work (see :class:`Limits`): the computing endpoints run in a pool of
``workers`` threads, never in the server's own event loop, so ``GET /`` and the static
files stay fast while they run. A request waits at most ``queue_wait_s`` for a worker
(at most ``max_waiting`` wait at once) and is otherwise answered ``429`` with a
``Retry-After``; each has a deadline ``budget_s`` after its arrival that the computation
checks at every step (``422`` naming the budget when it runs out), and it stops as soon
as its client disconnects. Every response carries the security headers; every request
must name this server in its ``Host`` header (DNS rebinding), and a body is read at most
``MAX_BODY_BYTES`` far, whether or not it declares its length.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steplab._extras import requires

with requires("web", "the web lab"):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.datastructures import MutableHeaders
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steplab import __version__, optim
from steplab.problems.expression import ALLOWED as EXPRESSION_GRAMMAR
from steplab.viz import palette
from steplab.web import engine
from steplab.web.models import (
    LIMITS,
    GridRequest,
    ProblemSpec,
    RunRequest,
    SweepRequest,
    modifier_meta,
    schedule_meta,
)

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024  # a full run request is about 2 KB

# The page only talks to this server and draws data: no scripts, styles or images from
# anywhere else (the front end ships every asset; nothing is fetched from a CDN).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class InvalidInput(Exception):
    """Input that passed the models' types but that the problem builder rejected."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc, self.message = loc, message


def _clean(message) -> str:
    return str(message).removeprefix("Value error, ")


def _error(
    status: int,
    loc: tuple,
    message: str,
    detail: list | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error body: ``message`` names the field in one line; ``detail`` as FastAPI has it.

    The security headers are set here too: a 500 is sent from outside the middleware.
    """
    field = ".".join(str(part) for part in loc if part != "body")
    if detail is None:
        detail = [{"loc": list(loc), "msg": message, "type": "value_error"}]
    text = f"{field}: {message}" if field else message
    return JSONResponse(
        status_code=status,
        content={"message": text, "detail": detail},
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _build_problem(spec: ProblemSpec):
    try:
        return spec.build()
    except ValueError as exc:
        field = "expression" if spec.expression is not None else "name"
        raise InvalidInput(("body", "problem", field), str(exc)) from None


def _hostname(host: str) -> str:
    """``Host`` header → the name or address alone: ``[::1]:8765`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":")[0]
    return host


@dataclass(frozen=True)
class Limits:
    """How much work the lab takes on at once, and for how long.

    ``workers`` requests compute at once; up to ``max_waiting`` more wait, each at most
    ``queue_wait_s``; every request has ``budget_s`` seconds from its arrival to its answer,
    and ``body_timeout_s`` to send its body. A refused request is told to come back after
    ``retry_after_s`` (whole seconds, ``Retry-After``); a client that comes back sooner
    waits that long for its next refusal (see :class:`Guard`).
    The default leaves one core to the server's event loop (one fewer worker than cores,
    at least 1, at most 4): the workers are threads, and every thread that computes
    competes with the event loop for Python's GIL, so fewer of them keep ``GET /`` fast.
    """

    workers: int = max(1, min(4, (os.cpu_count() or 2) - 1))
    max_waiting: int = 8
    queue_wait_s: float = 3.0
    budget_s: float = 10.0
    body_timeout_s: float = 10.0
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if not (isinstance(self.max_waiting, int) and self.max_waiting >= 0):
            raise ValueError(f"max_waiting must be an integer >= 0, got {self.max_waiting!r}")
        for name in ("queue_wait_s", "budget_s", "body_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < 3600):
                raise ValueError(f"{name} must be a number of seconds in (0, 3600), got {value!r}")
        if not (type(self.retry_after_s) is int and 1 <= self.retry_after_s <= 3600):
            raise ValueError(
                f"retry_after_s must be a whole number of seconds in [1, 3600], "
                f"got {self.retry_after_s!r}"
            )


#: The names a local server answers to (besides the address it is bound to).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


#: How many refused clients the Guard remembers (to pace those that come back too soon).
MAX_REFUSED_CLIENTS = 4096

#: The endpoints that compute in the worker pool (and wait for a worker).
COMPUTING = frozenset({"/api/grid", "/api/run", "/api/sweep"})


class Guard:
    """ASGI middleware, outermost: Host allow-list, admission, body limits, headers.

    Starlette's own TrustedHostMiddleware answers in plain text; this one answers in the
    lab's JSON error format. In order, before the app sees a request:

    1. the ``Host`` header must name this server (DNS rebinding);
    2. admission: a computing request while every worker is busy and the waiting room is
       full is answered 429, before its body is read or parsed. At once, unless the same
       client (address) was refused less than ``retry_after_s`` ago: then its 429 comes
       after ``retry_after_s``, as it was told. A client that resends at once after each
       429 (a script, a page in a loop) so sends one request per ``retry_after_s`` per
       connection instead of hundreds a second, and the event loop stays free for
       ``GET /``; the wait costs a timer, not a thread;
    3. the body is read here, at most ``max_body`` bytes (declared or chunked: 413) and
       within ``body_timeout_s`` of the request's head (408; a slow body is a slowloris),
       and then replayed to the app. Both answers close the connection.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Iterable[str],
        max_body: int,
        body_timeout_s: float = 10.0,
        busy: Callable[[], Response | None] = lambda: None,
        retry_after_s: float = 2.0,
    ):
        self.app = app
        self.allowed = {_hostname(h) for h in allowed_hosts}
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        self.busy = busy
        self.retry_after_s = retry_after_s
        self.refused_until: dict[str, float] = {}  # client address -> end of its Retry-After

    def _came_back_early(self, scope: Scope) -> bool:
        """Whether this client was refused less than ``retry_after_s`` ago; records this
        refusal. At most ``MAX_REFUSED_CLIENTS`` addresses are remembered."""
        client = (scope.get("client") or ("",))[0]
        now = time.monotonic()
        early = self.refused_until.get(client, -math.inf) > now
        if len(self.refused_until) >= MAX_REFUSED_CLIENTS:
            self.refused_until = {c: t for c, t in self.refused_until.items() if t > now}
            if len(self.refused_until) >= MAX_REFUSED_CLIENTS:  # that many at once: forget
                self.refused_until.clear()
        self.refused_until[client] = now + self.retry_after_s
        return early

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
            await send(message)

        raw_host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if "*" not in self.allowed and _hostname(raw_host) not in self.allowed:
            allowed = ", ".join(sorted(self.allowed))
            response = _error(
                400,
                (),
                f"Host {raw_host!r} is not one this server answers to ({allowed}); "
                "start it with --allow-host NAME to add a name",
            )
            await response(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] in COMPUTING:
            refusal = self.busy()
            if refusal is not None:  # the body stays unread: nothing parsed, nothing checked
                if self._came_back_early(scope):
                    await asyncio.sleep(self.retry_after_s)
                await refusal(scope, receive, send)
                return
        length = dict(scope["headers"]).get(b"content-length")
        close = {"Connection": "close"}
        too_large = _error(
            413, ("body",), f"request body larger than {self.max_body} bytes", headers=close
        )
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await too_large(scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            chunks, size = [], 0
            deadline = time.monotonic() + self.body_timeout_s
            while True:
                try:
                    message = await asyncio.wait_for(receive(), deadline - time.monotonic())
                except TimeoutError:
                    slow = f"request body not received within {self.body_timeout_s:g} seconds"
                    await _error(408, ("body",), slow, headers=close)(scope, receive, send)
                    return
                if message["type"] != "http.request":
                    return  # the client left before sending its body
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body:  # stop reading: never hold more than the limit
                    await too_large(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            body, replayed = b"".join(chunks), False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # later: http.disconnect when the client leaves

            await self.app(scope, replay, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class Workers:
    """The computing side: a thread pool, admission with a bounded wait, deadlines."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="steplab-web")
        self.slots: asyncio.Semaphore | None = None  # made in the server's event loop
        self.waiting = 0

    def _finished(self, future: asyncio.Future) -> None:
        assert self.slots is not None  # made before the job was submitted
        self.slots.release()
        if not future.cancelled():
            future.exception()  # retrieved: a cancelled job's exception is expected, not lost

    def refusal(self) -> JSONResponse | None:
        """The 429 a computing request gets now, or None if it may queue: every worker
        busy and ``max_waiting`` requests already waiting (the Guard asks this before the
        body is read; :meth:`run` asks again when the request has been parsed)."""
        if (
            self.slots is not None
            and self.slots.locked()
            and self.waiting >= self.limits.max_waiting
        ):
            return self._busy()
        return None

    def _busy(self) -> JSONResponse:
        return _error(
            429,
            (),
            f"the lab is busy: {self.limits.workers} requests are computing and "
            f"{self.waiting} waiting; try again in a few seconds",
            headers={"Retry-After": str(self.limits.retry_after_s)},
        )

    async def run(self, request: Request, work: Callable[[engine.Budget], Any]) -> Any:
        """``work(budget)`` in a worker thread, within the budget; a response if refused."""
        arrival = time.monotonic()
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.limits.workers)
        refused = self.refusal()
        if refused is not None:
            return refused
        self.waiting += 1
        try:
            await asyncio.wait_for(self.slots.acquire(), self.limits.queue_wait_s)
        except TimeoutError:
            return self._busy()
        finally:
            self.waiting -= 1
        budget = engine.Budget(self.limits.budget_s, start=arrival)

        def work_to_json() -> bytes:  # serialized in the worker too, not in the event loop
            return json.dumps(work(budget), allow_nan=False, separators=(",", ":")).encode()

        future = asyncio.get_running_loop().run_in_executor(self.pool, work_to_json)
        # The slot is free only when the thread is: a client that leaves frees nothing early.
        future.add_done_callback(self._finished)
        while not future.done():
            await asyncio.wait({future}, timeout=0.2)
            if not future.done() and await request.is_disconnected():
                budget.cancel()  # the work stops at its next check
                return _error(499, (), "client closed the request")
        try:
            return Response(future.result(), media_type="application/json")
        except engine.OutOfBudget as exc:
            done = f" ({exc.done} done)" if exc.done else ""
            return _error(
                422,
                (),
                f"this request needs more than the {exc.seconds:g} s budget per request{done}; "
                "ask for fewer steps, optimizers or sweep points, or a simpler formula",
            )


def _start(problem, start) -> np.ndarray:
    return problem.x0.copy() if start is None else np.array(start, dtype=np.float64)


def _label(spec) -> str:
    """A legend label: the name, the preset if not the seed's, the step size and its
    schedule (``adam α=0.1 cosine over 300 steps``)."""
    preset = "" if spec.preset == "seed" else f" ({spec.preset})"
    schedule = spec.schedule.describe() if spec.schedule is not None else ""
    return f"{spec.label()}{preset} α={spec.step_size():.3g}{schedule}"


def optimizer_meta(cls) -> dict:
    """A JSON description of one optimizer class, from which the page builds its controls."""
    hyperparameters = []
    for name, field in cls.hyperparameters().items():
        interval = field.metadata["interval"]
        if interval == "bool":
            kind = "bool"
        elif name == "lr":
            kind = "log"  # step sizes span decades: a log-scale slider
        elif interval.startswith("[0, 1"):
            kind = "unit"  # decay rates in [0, 1)
        else:
            kind = "number"
        hyperparameters.append(
            {
                "name": name,
                "default": field.default,
                "interval": interval,
                "doc": field.metadata.get("doc", ""),
                "kind": kind,
            }
        )
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else cls.name
    return {
        "name": cls.name,
        "summary": summary,
        "hyperparameters": hyperparameters,
        "presets": {"seed": {}, **cls.PRESETS},
        "color": palette.color(cls.name),  # the same color as in every steplab figure
    }


# -- the work each endpoint does (in a worker thread, within its budget) -------------------


def meta_payload(limits: Limits) -> dict:
    """``GET /api/meta``: what the page builds its controls from."""
    functions = []
    for name in engine.FUNCTIONS:
        problem = engine.build_problem(name, None, 0.0)
        functions.append(engine.problem_info(problem))
    return {
        "version": __version__,
        "optimizers": [optimizer_meta(cls) for cls in optim.OPTIMIZERS.values()],
        "schedules": schedule_meta(),
        "modifiers": modifier_meta(),
        "seed_optimizers": list(optim.SEED_OPTIMIZERS),
        "functions": functions,
        "expression_grammar": EXPRESSION_GRAMMAR,
        "limits": {**LIMITS, "budget_s": limits.budget_s},
    }


def grid_work(request: GridRequest, budget: engine.Budget) -> dict:
    """``POST /api/grid``: the loss on a grid, for the contour plot."""
    problem = _build_problem(request.problem)
    budget.check()
    grid = engine.contour_grid(problem, request.resolution)
    budget.check()
    return {"problem": engine.problem_info(problem), "grid": grid}


def run_work(request: RunRequest, budget: engine.Budget) -> dict:
    """``POST /api/run``: each optimizer's trajectory, losses and step sizes."""
    problem = _build_problem(request.problem)
    start = _start(problem, request.start)
    runs = []
    for number, spec in enumerate(request.optimizers):
        budget.progress = f"{number} of {len(request.optimizers)} optimizers"
        optimizer = spec.build()
        result = engine.trajectory(problem, optimizer, start, request.steps, request.seed, budget)
        runs.append(
            {
                "name": spec.name,
                "preset": spec.preset,
                "label": _label(spec),
                "config": optimizer.config(),
                **result.to_json(),
            }
        )
    return {
        "problem": engine.problem_info(problem),
        "start": start.tolist(),
        "steps": request.steps,
        "seed": request.seed,
        "runs": runs,
    }


def sweep_work(request: SweepRequest, budget: engine.Budget) -> dict:
    """``POST /api/sweep``: each optimizer's final loss against the step size."""
    problem = _build_problem(request.problem)
    start = _start(problem, request.start)
    lrs = np.geomspace(request.lr_min, request.lr_max, request.points)
    results = []
    for number, spec in enumerate(request.optimizers):
        budget.progress = f"{number} of {len(request.optimizers)} optimizers"
        final = engine.sweep_final_loss(
            # A fresh problem per optimizer: the budget watch wraps this instance only.
            _build_problem(request.problem),
            spec.constant(),
            start,
            lrs,
            request.steps,
            request.seed,
            budget,
            schedule=spec.schedule.build if spec.schedule and spec.scheduled else None,
            build_at=spec.build_at if spec.modifiers else None,
        )
        results.append(
            {
                "name": spec.name,
                "preset": spec.preset,
                "label": _label(spec),
                "final_loss": engine.finite_or_none(final),
            }
        )
    return {
        "problem": engine.problem_info(problem),
        "start": start.tolist(),
        "steps": request.steps,
        "lrs": lrs.tolist(),
        "results": results,
    }


# -- error handlers: every error is the lab's JSON error -------------------------------------


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    # pydantic's list (minus raw inputs, which may be large), led by the first problem.
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e["loc"]), "msg": _clean(e["msg"]), "type": e.get("type", "")}
        for e in exc.errors()
    ] or [{"loc": [], "msg": "invalid request", "type": ""}]
    return _error(422, tuple(detail[0]["loc"]), detail[0]["msg"], detail)


async def invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return _error(422, exc.loc, exc.message)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = {404: f"no such page: {request.url.path}", 405: "method not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    return _error(exc.status_code, (), message, headers=getattr(exc, "headers", None))


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    logging.getLogger("steplab.web").exception("internal error on %s", request.url.path)
    return _error(500, (), "internal error (a bug in steplab; the server log has the details)")


def create_app(
    *,
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    limits: Limits | None = None,
) -> FastAPI:
    """The web lab as an ASGI app (serve it with uvicorn; ``steplab serve`` does).

    ``allowed_hosts``: the names and addresses the ``Host`` header may carry (``"*"`` for
    any); ``limits``: the work the lab takes on (:class:`Limits`). This only wires the
    module's functions to routes.
    """
    limits = limits or Limits()
    workers = Workers(limits)
    # No /docs or /redoc: their pages load scripts from a CDN, which the CSP forbids and an
    # offline machine cannot reach. The schema stays at /openapi.json.
    app = FastAPI(
        title="steplab web lab",
        version=__version__,
        description="Run and compare first-order optimizers on 2-D test functions.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        Guard,
        allowed_hosts=allowed_hosts,
        max_body=MAX_BODY_BYTES,
        body_timeout_s=limits.body_timeout_s,
        busy=workers.refusal,
        retry_after_s=limits.retry_after_s,
    )
    app.state.limits = limits
    app.state.workers = workers  # its queue, for tests and the load benchmark
    app.router.on_shutdown.append(lambda: workers.pool.shutdown(wait=False, cancel_futures=True))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)

    @app.get("/api/meta")
    def meta() -> dict:
        return meta_payload(limits)

    @app.post("/api/grid")
    async def grid(request: GridRequest, http: Request) -> Any:
        return await workers.run(http, lambda budget: grid_work(request, budget))

    @app.post("/api/run")
    async def run(request: RunRequest, http: Request) -> Any:
        return await workers.run(http, lambda budget: run_work(request, budget))

    @app.post("/api/sweep")
    async def sweep(request: SweepRequest, http: Request) -> Any:
        return await workers.run(http, lambda budget: sweep_work(request, budget))

    # The page itself, from memory: no worker thread or file access per request, so it
    # stays fast however busy the computing workers are.
    index_html = (STATIC / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(index_html, media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
