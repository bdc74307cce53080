"""The web lab's request models: every field typed, bounded and validated before any work.

The limits below keep one request from hogging the machine: a run is at most
``MAX_STEPS`` steps of at most ``MAX_OPTIMIZERS`` optimizers, a sweep at most
``MAX_SWEEP_WORK`` optimizer steps in all, a formula at most ``MAX_EXPRESSION`` characters.
A request that breaks a rule gets HTTP 422 with a message naming the field (pydantic's
``loc``); :func:`steplab.web.app.create_app` turns it into one readable line as well.

An optimizer's step size may follow a schedule (:data:`ScheduleSpec`): its ``lr`` is then
the schedule's scale α (the initial or peak value) and ``schedule`` its shape, e.g.
``{"name": "cosine", "decay_steps": 300}`` for ``cosine_decay_schedule(α, 300)``. A sweep
then varies that α, one step size at a time (a schedule's value is one number per step,
so the K step sizes cannot share one vectorized run): ``MAX_SCHEDULED_SWEEP_WORK`` bounds
that part of a sweep.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, get_args

from steplab._extras import requires

with requires("web", "the web lab"):
    from pydantic import (
        BaseModel,
        ConfigDict,
        Discriminator,
        Field,
        Tag,
        ValidationInfo,
        field_validator,
        model_validator,
    )

from steplab import optim
from steplab.cli import spec as cli_spec
from steplab.optim import schedules
from steplab.optim.registry import WRAPPER_SETTINGS, WRAPPERS
from steplab.optim.schedules import Schedule
from steplab.viz import palette
from steplab.web import engine

MAX_STEPS = 2000
MAX_OPTIMIZERS = 12
MAX_EXPRESSION = 200
MAX_RESOLUTION = 200
MAX_SWEEP_POINTS = 40
MAX_SWEEP_WORK = 200_000  # optimizers × step sizes × steps
MAX_SCHEDULED_SWEEP_WORK = 50_000  # scheduled optimizers × step sizes × steps, run one by one
MAX_SCHEDULE_STEPS = 1_000_000  # a schedule's decay_steps, warmup_steps, transition_steps
MAX_NOISE = 100.0
MAX_MODIFIERS = 4  # modifiers around one optimizer (cautious, ema, clip_by_global_norm, …)
MAX_COORDINATE = 1e6

LIMITS = {
    "steps": MAX_STEPS,
    "optimizers": MAX_OPTIMIZERS,
    "expression_length": MAX_EXPRESSION,
    "resolution": MAX_RESOLUTION,
    "sweep_points": MAX_SWEEP_POINTS,
    "sweep_work": MAX_SWEEP_WORK,
    "scheduled_sweep_work": MAX_SCHEDULED_SWEEP_WORK,
    "noise": MAX_NOISE,
    "modifiers": MAX_MODIFIERS,
}

FunctionName = Literal[engine.FUNCTIONS]  # type: ignore[valid-type]
Coordinate = Field(allow_inf_nan=False, ge=-MAX_COORDINATE, le=MAX_COORDINATE)


class Strict(BaseModel):
    """Unknown fields are an error, not silently ignored (a typo must not go unnoticed), and
    types are strict: ``"steps": true`` or ``"steps": "200"`` is refused, not converted
    (an integer is still accepted where a float is expected)."""

    model_config = ConfigDict(extra="forbid", strict=True)


Bounds = Annotated[
    list[Annotated[list[float], Field(min_length=2, max_length=2)]],
    Field(min_length=2, max_length=2),
]


class ProblemSpec(Strict):
    """A catalogued 2-D test function by ``name``, or a typed ``expression`` in x and y;
    ``bounds`` ``[[x_low, x_high], [y_low, y_high]]`` replaces its plot box (the page frames
    the contours to the paths with it)."""

    name: FunctionName | None = None
    expression: str | None = Field(default=None, max_length=MAX_EXPRESSION)
    noise: float = Field(default=0.0, ge=0.0, le=MAX_NOISE, allow_inf_nan=False)
    bounds: Bounds | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ProblemSpec:
        if (self.name is None) == (self.expression is None):
            raise ValueError("give exactly one of 'name' (a test function) or 'expression'")
        return self

    @field_validator("bounds")
    @classmethod
    def _a_box(cls, bounds: list[list[float]] | None) -> list[list[float]] | None:
        for axis, (low, high) in zip("xy", bounds or [], strict=False):
            if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (low, high)):
                raise ValueError(f"{axis} bounds must be finite and within ±{MAX_COORDINATE:g}")
            if not high - low > 1e-9 * max(1.0, abs(low), abs(high)):
                raise ValueError(f"{axis} bounds must be [low, high] with low < high")
        return bounds

    def build(self):
        """The problem; raises ``ValueError`` for a formula the parser rejects."""
        try:
            return engine.build_problem(self.name, self.expression, self.noise, self.bounds)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError, RecursionError) as exc:
            raise ValueError(str(exc)) from None


# -- step-size schedules: the shape; the optimizer's lr is its scale α ----------------------

ScheduleSteps = Annotated[int, Field(ge=1, le=MAX_SCHEDULE_STEPS)]
# a decay's end value as a fraction of α (cosine and warm-up + cosine)
EndFraction = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        allow_inf_nan=False,
        title="end ×α",
        description="the end value as a fraction of α, in [0, 1]",
    ),
]


class _Shape(Strict):
    """A schedule's shape; :meth:`build` scales it by the optimizer's α."""

    LABEL: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        # Before pydantic's own "Extra inputs are not permitted": name what is allowed.
        if isinstance(data, dict):
            allowed = [k for k in cls.model_fields if k != "name"]
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                takes = ", ".join(allowed) if allowed else "no parameters"
                raise ValueError(
                    f"schedule {data.get('name')!r} has no parameter {unknown[0]!r}; "
                    f"it takes: {takes}"
                )
        return data

    def build(self, lr: float) -> Schedule | float:
        raise NotImplementedError

    def describe(self) -> str:
        """What a legend label adds after ``α=…``."""
        raise NotImplementedError


class ConstantShape(_Shape):
    """α at every step: the same as no schedule."""

    LABEL: ClassVar[str] = "constant"
    name: Literal["constant"]

    def build(self, lr: float) -> float:
        return lr

    def describe(self) -> str:
        return ""


class InverseSqrtShape(_Shape):
    """α/√t (``inverse_sqrt_schedule(α)``)."""

    LABEL: ClassVar[str] = "1/√t"
    name: Literal["inverse_sqrt"]

    def build(self, lr: float) -> Schedule:
        return schedules.inverse_sqrt_schedule(lr)

    def describe(self) -> str:
        return "/√t"


class StepShape(_Shape):
    """Step decay: α·decay_rate^⌊(t−1)/transition_steps⌋ (``exponential_decay(α,
    transition_steps=…, decay_rate=…, staircase=True)``)."""

    LABEL: ClassVar[str] = "step decay"
    name: Literal["step"]
    transition_steps: ScheduleSteps = Field(
        title="every", description="steps between two decays", json_schema_extra={"of_steps": 0.25}
    )
    decay_rate: float = Field(
        default=0.5,
        gt=0,
        le=1,
        allow_inf_nan=False,
        title="factor",
        description="α is multiplied by this factor at each decay, in (0, 1]",
    )

    def build(self, lr: float) -> Schedule:
        return schedules.exponential_decay(
            lr, transition_steps=self.transition_steps, decay_rate=self.decay_rate, staircase=True
        )

    def describe(self) -> str:
        return f" ×{self.decay_rate:g} every {self.transition_steps} steps"


class CosineShape(_Shape):
    """Cosine decay from α to alpha·α at step decay_steps + 1 (``cosine_decay_schedule``)."""

    LABEL: ClassVar[str] = "cosine"
    name: Literal["cosine"]
    decay_steps: ScheduleSteps = Field(
        title="decay steps",
        description="steps until the end value",
        json_schema_extra={"of_steps": 1.0},
    )
    alpha: EndFraction = 0.0

    def build(self, lr: float) -> Schedule:
        return schedules.cosine_decay_schedule(lr, self.decay_steps, self.alpha)

    def describe(self) -> str:
        end = f" to {self.alpha:g}α" if self.alpha else ""
        return f" cosine{end} over {self.decay_steps} steps"


class WarmupCosineShape(_Shape):
    """Linear warm-up from 0 to α over warmup_steps, then cosine decay to alpha·α at
    decay_steps (``warmup_cosine_decay_schedule(0, α, warmup_steps, decay_steps, alpha·α)``)."""

    LABEL: ClassVar[str] = "warm-up + cosine"
    name: Literal["warmup_cosine"]
    warmup_steps: int = Field(
        ge=0,
        le=MAX_SCHEDULE_STEPS,
        title="warm-up",
        description="steps of linear warm-up from 0 to α",
        json_schema_extra={"of_steps": 0.1},
    )
    decay_steps: ScheduleSteps = Field(
        title="decay steps",
        description="steps until the end value, warm-up included",
        json_schema_extra={"of_steps": 1.0},
    )
    alpha: EndFraction = 0.0

    @model_validator(mode="after")
    def _decay_after_warmup(self) -> WarmupCosineShape:
        if self.decay_steps <= self.warmup_steps:
            raise ValueError(
                f"decay_steps ({self.decay_steps}) must be above warmup_steps ({self.warmup_steps})"
            )
        return self

    def build(self, lr: float) -> Schedule:
        return schedules.warmup_cosine_decay_schedule(
            0.0, lr, self.warmup_steps, self.decay_steps, end_value=self.alpha * lr
        )

    def describe(self) -> str:
        end = f" to {self.alpha:g}α" if self.alpha else ""
        return f" warm-up {self.warmup_steps} + cosine{end} to step {self.decay_steps}"


SHAPES: tuple[type[_Shape], ...] = (
    ConstantShape,
    InverseSqrtShape,
    StepShape,
    CosineShape,
    WarmupCosineShape,
)


def _shape_name(value: Any) -> Any:
    """The discriminator: a schedule's ``name`` (None when there is none)."""
    name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
    return name if isinstance(name, str) else None


SCHEDULE_NAMES = tuple(get_args(shape.model_fields["name"].annotation)[0] for shape in SHAPES)
#: The schedules the web lab offers, by ``name``: a discriminated union, so a missing or
#: unknown name gets one 422 message listing the known ones.
ScheduleSpec = Annotated[
    Annotated[ConstantShape, Tag("constant")]
    | Annotated[InverseSqrtShape, Tag("inverse_sqrt")]
    | Annotated[StepShape, Tag("step")]
    | Annotated[CosineShape, Tag("cosine")]
    | Annotated[WarmupCosineShape, Tag("warmup_cosine")],
    Discriminator(
        _shape_name,
        custom_error_type="schedule_name",
        custom_error_message="a schedule is an object whose 'name' is one of "
        + ", ".join(map(repr, SCHEDULE_NAMES))
        + " (each with its parameters: see /api/meta)",
    ),
]


def schedule_meta() -> list[dict]:
    """The schedules for ``/api/meta``, from which the page builds its controls: name,
    label, doc and each parameter's kind, bounds, default (``of_steps``: a default that is
    that fraction of the run's steps) and doc."""
    out = []
    for shape in SHAPES:
        parameters = []
        for key, info in shape.model_fields.items():
            if key == "name":
                continue
            bounds = {}
            for rule in info.metadata:
                for bound in ("ge", "gt", "le", "lt"):
                    if getattr(rule, bound, None) is not None:
                        bounds[bound] = getattr(rule, bound)
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            parameters.append(
                {
                    "name": key,
                    "title": info.title or key,
                    "doc": info.description or "",
                    "kind": "int" if info.annotation is int else "number",
                    "default": None if info.is_required() else info.default,
                    **extra,
                    **bounds,
                }
            )
        name = get_args(shape.model_fields["name"].annotation)[0]
        doc = " ".join((shape.__doc__ or "").replace("``", "").split())
        out.append({"name": name, "label": shape.LABEL, "doc": doc, "parameters": parameters})
    return out


class ModifierSpec(Strict):
    """A modifier wrapped around the optimizer, as the command line's ``NAME+MODIFIER``
    (``adamw+cautious``, ``adam+ema:decay=0.99``): a registered modifier's ``name`` and its
    own ``settings``. Names and setting keys are checked by the command line's own
    functions (:func:`steplab.cli.spec.check_modifier`), so the messages are the same."""

    name: str
    settings: dict[str, float | bool] = Field(default_factory=dict, max_length=8)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        cli_spec.check_modifier(name)  # the registry as it is now, like optimizers
        return name

    @field_validator("settings")
    @classmethod
    def _known_settings(
        cls, values: dict[str, float | bool], info: ValidationInfo
    ) -> dict[str, float | bool]:
        name = info.data.get("name")
        if name is None:
            return values
        cli_spec.check_modifier_settings(name, values)
        for key, value in values.items():
            is_bool = WRAPPER_SETTINGS[name][key] == "bool"
            if is_bool != isinstance(value, bool):
                kind = "true or false" if is_bool else "a number"
                raise ValueError(f"{name}: {key} must be {kind}, got {value!r}")
            if not is_bool and not math.isfinite(value):
                raise ValueError(f"{name}: {key} must be a finite number, got {value!r}")
        return values

    def wrap(self, optimizer: Any) -> Any:
        """``optimizer`` with this modifier around it (the registry's function, as the
        command line applies it)."""
        return WRAPPERS[self.name](optimizer, **self.settings)


def modifier_meta() -> list[dict]:
    """The modifiers for ``/api/meta``: each name and its settings' intervals and defaults
    (read off the modifier wrapped around the first registered optimizer)."""
    some = next(iter(optim.OPTIMIZERS.values()))()
    out = []
    for name in WRAPPERS:
        wrapped = WRAPPERS[name](some)
        settings = [
            {
                "name": key,
                "interval": interval,
                "kind": "bool" if interval == "bool" else "number",
                "default": getattr(wrapped, key, None),
            }
            for key, interval in WRAPPER_SETTINGS[name].items()
        ]
        out.append({"name": name, "settings": settings})
    return out


class OptimizerSpec(Strict):
    """One optimizer: its name, a framework preset, hyperparameters on top of it,
    optionally a schedule for its step size (``lr`` is then the schedule's scale α) and
    modifiers around it, innermost first (``[{"name": "cautious"}]`` is ``adamw+cautious``)."""

    name: str  # a registered optimizer, checked per request (see _registered)
    preset: str = "seed"
    hyperparameters: dict[str, float | bool] = Field(default_factory=dict, max_length=16)
    schedule: ScheduleSpec | None = None
    modifiers: list[ModifierSpec] = Field(default_factory=list, max_length=MAX_MODIFIERS)

    # Messages about one optimizer name it as the lecture spells it ("Adam: lr must be in
    # (0, inf), got -1.0"), not only by its place in the list ("optimizers.2"): the page
    # shows them next to that optimizer's fields, a script's user sees which one it was.

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        # Against the registry as it is now, not as it was when this module was imported:
        # an optimizer registered later is accepted, an unregistered one refused.
        if name not in optim.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose one of {list(optim.OPTIMIZERS)}")
        return name

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str, info: ValidationInfo) -> str:
        name = info.data.get("name")
        if name is not None:
            presets = ["seed", *optim.OPTIMIZERS[name].PRESETS]
            if preset not in presets:
                raise ValueError(
                    f"{palette.pretty(name)} has no preset {preset!r}; choose one of {presets}"
                )
        return preset

    @field_validator("hyperparameters")
    @classmethod
    def _valid_hyperparameters(
        cls, values: dict[str, float | bool], info: ValidationInfo
    ) -> dict[str, float | bool]:
        name, preset = info.data.get("name"), info.data.get("preset")
        who = f"{palette.pretty(name)}: " if name is not None else ""
        for key, value in values.items():
            if not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"{who}{key} must be a finite number, got {value!r}")
        if name is not None:
            fields = optim.OPTIMIZERS[name].hyperparameters()
            for key, value in values.items():
                numeric = key in fields and fields[key].metadata["interval"] != "bool"
                if numeric and isinstance(value, bool):  # JSON true is not the number 1
                    raise ValueError(f"{who}{key} must be a number, got {value!r}")
        if name is not None and preset is not None:
            # The optimizer's own checks: unknown hyperparameters, intervals.
            try:
                optim.make(name, preset=preset, **values)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{who}{exc}") from None
        return values

    @model_validator(mode="after")
    def _valid_modifiers(self) -> OptimizerSpec:
        names = [m.name for m in self.modifiers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"the modifier {name!r} is given twice")
        if self.modifiers:  # the modifiers' own checks: ranges, what they can wrap
            try:
                self.build()
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{self.label()}: {exc}") from None
        return self

    def label(self) -> str:
        """The name as the command line writes it: ``adamw+cautious``."""
        return "+".join([self.name, *(m.name for m in self.modifiers)])

    def build(self) -> Any:
        """The optimizer, with its lr schedule when it has one, in its modifiers."""
        return self.build_at(self.step_size())

    def build_at(self, lr: float) -> Any:
        """The optimizer at step size (or schedule scale) α = ``lr``, in its modifiers."""
        optimizer = self.plain()
        scaled = lr if self.schedule is None else self.schedule.build(lr)
        optimizer = optimizer.replace(lr=scaled)
        for modifier in self.modifiers:  # innermost first, as NAME+A+B on the command line
            optimizer = modifier.wrap(optimizer)
        return optimizer

    def constant(self) -> optim.Optimizer:
        """The optimizer without its schedule (lr = α) and without modifiers."""
        return self.plain()

    def plain(self) -> optim.Optimizer:
        """The registered optimizer with its preset and hyperparameters alone."""
        return optim.make(self.name, preset=self.preset, **self.hyperparameters)

    def step_size(self) -> float:
        """α: the constant step size, or the schedule's scale."""
        return float(self.plain().lr)  # type: ignore[attr-defined]  # every optimizer has lr

    @property
    def scheduled(self) -> bool:
        """Whether the step size changes from step to step."""
        return self.schedule is not None and not isinstance(self.schedule, ConstantShape)

    @property
    def one_by_one(self) -> bool:
        """Whether a sweep runs this optimizer one step size at a time (a schedule, or a
        modifier: the vectorized sweep steps plain optimizers only)."""
        return self.scheduled or bool(self.modifiers)


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
        scheduled = sum(spec.one_by_one for spec in self.optimizers)
        work = scheduled * self.points * self.steps
        if work > MAX_SCHEDULED_SWEEP_WORK:
            raise ValueError(
                "sweep too large: optimizers with a schedule run one step size at a time (so "
                f"do those with a modifier), and those optimizers × points × steps = {work} > "
                f"{MAX_SCHEDULED_SWEEP_WORK}; use fewer steps or points, a constant step size "
                "or no modifier"
            )
        return self
