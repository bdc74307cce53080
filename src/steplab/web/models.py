"""The web lab's request models: every field typed, bounded and validated before any work.

The limits below keep one request from hogging the machine: a run is at most
``MAX_STEPS`` steps of at most ``MAX_OPTIMIZERS`` optimizers, a sweep at most
``MAX_SWEEP_WORK`` optimizer steps in all, a formula at most ``MAX_EXPRESSION`` characters.
A request that breaks a rule gets HTTP 422 with a message naming the field (pydantic's
``loc``); :func:`steplab.web.app.create_app` turns it into one readable line as well.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from steplab._extras import requires

with requires("web", "the web lab"):
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        ValidationInfo,
        field_validator,
        model_validator,
    )

from steplab import optim
from steplab.web import engine

MAX_STEPS = 2000
MAX_OPTIMIZERS = 12
MAX_EXPRESSION = 200
MAX_RESOLUTION = 200
MAX_SWEEP_POINTS = 40
MAX_SWEEP_WORK = 200_000  # optimizers × step sizes × steps
MAX_NOISE = 100.0
MAX_COORDINATE = 1e6

LIMITS = {
    "steps": MAX_STEPS,
    "optimizers": MAX_OPTIMIZERS,
    "expression_length": MAX_EXPRESSION,
    "resolution": MAX_RESOLUTION,
    "sweep_points": MAX_SWEEP_POINTS,
    "sweep_work": MAX_SWEEP_WORK,
    "noise": MAX_NOISE,
}

if TYPE_CHECKING:  # a Literal built at run time is opaque to the type checker
    OptimizerName = str
else:
    OptimizerName = Literal[tuple(optim.OPTIMIZERS)]
FunctionName = Literal[engine.FUNCTIONS]  # type: ignore[valid-type]
Coordinate = Field(allow_inf_nan=False, ge=-MAX_COORDINATE, le=MAX_COORDINATE)


class Strict(BaseModel):
    """Unknown fields are an error, not silently ignored (a typo must not go unnoticed), and
    types are strict: ``"steps": true`` or ``"steps": "200"`` is refused, not converted
    (an integer is still accepted where a float is expected)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ProblemSpec(Strict):
    """A catalogued 2-D test function by ``name``, or a typed ``expression`` in x and y."""

    name: FunctionName | None = None
    expression: str | None = Field(default=None, max_length=MAX_EXPRESSION)
    noise: float = Field(default=0.0, ge=0.0, le=MAX_NOISE, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> ProblemSpec:
        if (self.name is None) == (self.expression is None):
            raise ValueError("give exactly one of 'name' (a test function) or 'expression'")
        return self

    def build(self):
        """The problem; raises ``ValueError`` for a formula the parser rejects."""
        try:
            return engine.build_problem(self.name, self.expression, self.noise)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError, RecursionError) as exc:
            raise ValueError(str(exc)) from None


class OptimizerSpec(Strict):
    """One optimizer: its name, a framework preset and hyperparameters on top of it."""

    name: OptimizerName
    preset: str = "seed"
    hyperparameters: dict[str, float | bool] = Field(default_factory=dict, max_length=16)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str, info: ValidationInfo) -> str:
        name = info.data.get("name")
        if name is not None:
            presets = ["seed", *optim.OPTIMIZERS[name].PRESETS]
            if preset not in presets:
                raise ValueError(f"{name} has no preset {preset!r}; choose one of {presets}")
        return preset

    @field_validator("hyperparameters")
    @classmethod
    def _valid_hyperparameters(
        cls, values: dict[str, float | bool], info: ValidationInfo
    ) -> dict[str, float | bool]:
        for key, value in values.items():
            if not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value!r}")
        name, preset = info.data.get("name"), info.data.get("preset")
        if name is not None:
            fields = optim.OPTIMIZERS[name].hyperparameters()
            for key, value in values.items():
                numeric = key in fields and fields[key].metadata["interval"] != "bool"
                if numeric and isinstance(value, bool):  # JSON true is not the number 1
                    raise ValueError(f"{key} must be a number, got {value!r}")
        if name is not None and preset is not None:
            # The optimizer's own checks: unknown hyperparameters, intervals.
            optim.make(name, preset=preset, **values)
        return values

    def build(self) -> optim.Optimizer:
        return optim.make(self.name, preset=self.preset, **self.hyperparameters)


# A JSON array of two numbers (a list: strict mode would take only a Python tuple).
Point = Annotated[list[float], Field(min_length=2, max_length=2)]


def _check_point(point: Point | None) -> Point | None:
    if point is not None:
        for value in point:
            if not (math.isfinite(value) and abs(value) <= MAX_COORDINATE):
                raise ValueError(f"coordinates must be finite and within ±{MAX_COORDINATE:g}")
    return point


class GridRequest(Strict):
    """Loss values on a square grid, for the contour plot."""

    problem: ProblemSpec
    resolution: int = Field(default=120, ge=10, le=MAX_RESOLUTION)


class RunRequest(Strict):
    """Trajectories of several optimizers from one start point."""

    problem: ProblemSpec
    optimizers: list[OptimizerSpec] = Field(min_length=1, max_length=MAX_OPTIMIZERS)
    start: Point | None = None  # default: the problem's start point
    steps: int = Field(default=200, ge=1, le=MAX_STEPS)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    _start = field_validator("start")(classmethod(lambda cls, v: _check_point(v)))


class SweepRequest(Strict):
    """Final loss against step size (log-spaced from ``lr_min`` to ``lr_max``) per optimizer."""

    problem: ProblemSpec
    optimizers: list[OptimizerSpec] = Field(min_length=1, max_length=MAX_OPTIMIZERS)
    start: Point | None = None
    steps: int = Field(default=200, ge=1, le=MAX_STEPS)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    lr_min: float = Field(default=1e-4, gt=0, le=1e3, allow_inf_nan=False)
    lr_max: float = Field(default=1.0, gt=0, le=1e3, allow_inf_nan=False)
    points: int = Field(default=25, ge=2, le=MAX_SWEEP_POINTS)

    _start = field_validator("start")(classmethod(lambda cls, v: _check_point(v)))

    @model_validator(mode="after")
    def _bounded(self) -> SweepRequest:
        if self.lr_min >= self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min:g}) must be below lr_max ({self.lr_max:g})")
        work = len(self.optimizers) * self.points * self.steps
        if work > MAX_SWEEP_WORK:
            raise ValueError(
                f"sweep too large: optimizers × points × steps = {work} > {MAX_SWEEP_WORK}; "
                "use fewer steps, points or optimizers"
            )
        return self
