"""The web lab's HTTP side: a FastAPI app serving a JSON API and the static page.

Endpoints (all JSON; request bodies are the models of :mod:`steplab.web.models`):

- ``GET  /api/meta``  optimizers with their hyperparameters (interval, default, doc,
  presets), the 2-D test functions, the expression grammar and the request limits;
- ``POST /api/grid``  loss values on a grid, for the contour plot;
- ``POST /api/run``   trajectories, losses and per-coordinate step sizes;
- ``POST /api/sweep`` final loss against step size, one vectorized run per optimizer.

Bad input never reaches NumPy: pydantic rejects it with HTTP 422, and every error body
has ``message``, one line naming the field (``optimizers.0.hyperparameters: lr must be in
(0, inf), got -1``), besides pydantic's usual ``detail`` list. Typed formulas go through
the whitelist parser of :mod:`steplab.problems.expression`; no user text is executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steplab._extras import requires

with requires("web", "the web lab"):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

from steplab import __version__, optim
from steplab.problems.expression import ALLOWED as EXPRESSION_GRAMMAR
from steplab.viz import palette
from steplab.web import engine
from steplab.web.models import LIMITS, GridRequest, ProblemSpec, RunRequest, SweepRequest

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


def _error(status: int, loc: tuple, message: str, detail: list | None = None) -> JSONResponse:
    """An error body: ``message`` names the field in one line; ``detail`` as FastAPI has it."""
    field = ".".join(str(part) for part in loc if part != "body")
    if detail is None:
        detail = [{"loc": list(loc), "msg": message, "type": "value_error"}]
    text = f"{field}: {message}" if field else message
    return JSONResponse(status_code=status, content={"message": text, "detail": detail})


def _build_problem(spec: ProblemSpec):
    try:
        return spec.build()
    except ValueError as exc:
        field = "expression" if spec.expression is not None else "name"
        raise InvalidInput(("body", "problem", field), str(exc)) from None


def _start(problem, start) -> np.ndarray:
    return problem.x0.copy() if start is None else np.array(start, dtype=np.float64)


def _label(spec) -> str:
    """A legend label: the name, the preset if not the seed's, and the step size."""
    optimizer = spec.build()
    preset = "" if spec.preset == "seed" else f" ({spec.preset})"
    return f"{spec.name}{preset} α={optimizer.lr:.3g}"


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


def create_app() -> FastAPI:
    """The web lab as an ASGI app (serve it with uvicorn; ``steplab serve`` does)."""
    app = FastAPI(
        title="steplab web lab",
        version=__version__,
        description="Run and compare first-order optimizers on 2-D test functions.",
    )

    @app.middleware("http")
    async def limit_body_and_add_headers(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _error(413, ("body",), f"request body larger than {MAX_BODY_BYTES} bytes")
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # pydantic's list (minus raw inputs, which may be large), led by the first problem.
        detail = [
            {"loc": list(e["loc"]), "msg": _clean(e["msg"]), "type": e.get("type", "")}
            for e in exc.errors()
        ] or [{"loc": [], "msg": "invalid request", "type": ""}]
        return _error(422, tuple(detail[0]["loc"]), detail[0]["msg"], detail)

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput):
        return _error(422, exc.loc, exc.message)

    @app.get("/api/meta")
    def meta() -> dict:
        functions = []
        for name in engine.FUNCTIONS:
            problem = engine.build_problem(name, None, 0.0)
            functions.append(engine.problem_info(problem))
        return {
            "version": __version__,
            "optimizers": [optimizer_meta(cls) for cls in optim.OPTIMIZERS.values()],
            "seed_optimizers": list(optim.SEED_OPTIMIZERS),
            "functions": functions,
            "expression_grammar": EXPRESSION_GRAMMAR,
            "limits": LIMITS,
        }

    @app.post("/api/grid")
    def grid(request: GridRequest) -> dict:
        problem = _build_problem(request.problem)
        return {
            "problem": engine.problem_info(problem),
            "grid": engine.contour_grid(problem, request.resolution),
        }

    @app.post("/api/run")
    def run(request: RunRequest) -> dict:
        problem = _build_problem(request.problem)
        start = _start(problem, request.start)
        runs = []
        for spec in request.optimizers:
            optimizer = spec.build()
            result = engine.trajectory(problem, optimizer, start, request.steps, request.seed)
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

    @app.post("/api/sweep")
    def sweep(request: SweepRequest) -> dict:
        problem = _build_problem(request.problem)
        start = _start(problem, request.start)
        lrs = np.geomspace(request.lr_min, request.lr_max, request.points)
        results = []
        for spec in request.optimizers:
            final = engine.sweep_final_loss(
                problem, spec.build(), start, lrs, request.steps, request.seed
            )
            results.append(
                {
                    "name": spec.name,
                    "preset": spec.preset,
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

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
