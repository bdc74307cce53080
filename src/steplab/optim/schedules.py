"""Learning-rate schedules: α as a function of the step count t.

A schedule is a small frozen object: ``schedule(t)`` gives the step size of the step
computed at t = 1, 2, … (the same t as Adam's bias correction 1 − ρᵗ). Any optimizer
takes one wherever it takes a number for ``lr``::

    sl.Adam(lr=sl.schedules.cosine_decay_schedule(1e-2, decay_steps=1000))

Names and parameters follow optax where optax has the schedule. optax counts the updates
already done (0 for the first), steplab counts the step being computed (1 for the first),
so ``steplab_schedule(t) == optax_schedule(t - 1)`` and an optimizer given the same
schedule takes the same steps in both. Values are computed in Python floats (float64).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar


def _number(name: str, value: Any, *, positive: bool = False, low: float = 0.0) -> float:
    """``value`` as a finite Python float ≥ low (> 0 with ``positive``), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # NumPy scalars
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    value = float(value)
    if not math.isfinite(value) or value < low or (positive and value <= 0):
        bound = "> 0" if positive else f">= {low:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def _steps(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        try:
            import numpy as np

            if isinstance(value, np.integer) and value >= minimum:
                return int(value)
        except ImportError:  # pragma: no cover - numpy is a core dependency
            pass
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _step_count(t: Any) -> int:
    if isinstance(t, bool) or not isinstance(t, int):
        try:
            import numpy as np

            if isinstance(t, np.integer):
                t = int(t)
        except ImportError:  # pragma: no cover
            pass
    if not isinstance(t, int) or isinstance(t, bool) or t < 1:
        raise ValueError(f"a schedule is evaluated at steps t = 1, 2, …, got t={t!r}")
    return t


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base class: ``schedule(t) -> float`` for t = 1, 2, …; ``config()`` for JSON."""

    name: ClassVar[str] = "schedule"

    def __call__(self, t: int) -> float:
        return self.value(_step_count(t))

    def value(self, t: int) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-ready: ``{"schedule": name, parameter: value, …}`` (see :func:`from_config`)."""
        return {"schedule": self.name, **dataclasses.asdict(self)}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items())
        return f"{self.name}({arguments})"


@dataclasses.dataclass(frozen=True, repr=False)
class ConstantSchedule(Schedule):
    """α(t) = value."""

    name: ClassVar[str] = "constant_schedule"
    value_: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value_", _number("value", self.value_))

    def value(self, t: int) -> float:
        return self.value_

    def config(self) -> dict[str, Any]:
        return {"schedule": self.name, "value": self.value_}

    def __repr__(self) -> str:
        return f"{self.name}(value={self.value_!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class InverseSqrtSchedule(Schedule):
    """α(t) = init_value/√t (Kingma & Ba 2015, §6.1 and the convergence analysis, §4)."""

    name: ClassVar[str] = "inverse_sqrt_schedule"
    init_value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_value", _number("init_value", self.init_value))

    def value(self, t: int) -> float:
        return self.init_value / math.sqrt(t)


@dataclasses.dataclass(frozen=True, repr=False)
class ExponentialDecay(Schedule):
    """α(t) = init_value · decay_rate^((t−1)/transition_steps), the exponent floored with
    ``staircase`` (step decay: ×decay_rate every transition_steps steps). optax's
    ``exponential_decay`` without transition_begin/end_value."""

    name: ClassVar[str] = "exponential_decay"
    init_value: float
    transition_steps: int
    decay_rate: float
    staircase: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_value", _number("init_value", self.init_value))
        steps = _steps("transition_steps", self.transition_steps)
        object.__setattr__(self, "transition_steps", steps)
        object.__setattr__(
            self, "decay_rate", _number("decay_rate", self.decay_rate, positive=True)
        )
        if not isinstance(self.staircase, bool):
            raise ValueError(f"staircase must be True or False, got {self.staircase!r}")

    def value(self, t: int) -> float:
        exponent = (t - 1) / self.transition_steps
        if self.staircase:
            exponent = float(math.floor(exponent))
        return self.init_value * self.decay_rate**exponent


@dataclasses.dataclass(frozen=True, repr=False)
class CosineDecay(Schedule):
    """α(t) = init_value·((1−alpha)·½(1 + cos(π·min(t−1, decay_steps)/decay_steps)) + alpha)
    (Loshchilov & Hutter 2017 without restarts; optax's ``cosine_decay_schedule``)."""

    name: ClassVar[str] = "cosine_decay_schedule"
    init_value: float
    decay_steps: int
    alpha: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_value", _number("init_value", self.init_value))
        object.__setattr__(self, "decay_steps", _steps("decay_steps", self.decay_steps))
        alpha = _number("alpha", self.alpha)
        object.__setattr__(self, "alpha", alpha)

    def value(self, t: int) -> float:
        progress = min(t - 1, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.init_value * ((1 - self.alpha) * cosine + self.alpha)


@dataclasses.dataclass(frozen=True, repr=False)
class LinearSchedule(Schedule):
    """From init_value to end_value in transition_steps steps, then constant (optax's
    ``linear_schedule``): α(t) = init + (end − init)·min(t−1, transition_steps)/transition_steps."""

    name: ClassVar[str] = "linear_schedule"
    init_value: float
    end_value: float
    transition_steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_value", _number("init_value", self.init_value))
        object.__setattr__(self, "end_value", _number("end_value", self.end_value))
        steps = _steps("transition_steps", self.transition_steps)
        object.__setattr__(self, "transition_steps", steps)

    def value(self, t: int) -> float:
        fraction = min(t - 1, self.transition_steps) / self.transition_steps
        return self.init_value + (self.end_value - self.init_value) * fraction


@dataclasses.dataclass(frozen=True, repr=False)
class LinearWarmup(Schedule):
    """α(t) = peak_value · min(1, t/warmup_steps): a linear warm-up that never takes a zero
    step (t = 1 already moves by peak/warmup_steps), then constant."""

    name: ClassVar[str] = "linear_warmup"
    peak_value: float
    warmup_steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak_value", _number("peak_value", self.peak_value))
        object.__setattr__(self, "warmup_steps", _steps("warmup_steps", self.warmup_steps))

    def value(self, t: int) -> float:
        return self.peak_value * min(t, self.warmup_steps) / self.warmup_steps


@dataclasses.dataclass(frozen=True, repr=False)
class WarmupCosineDecay(Schedule):
    """Linear warm-up from init_value to peak_value over warmup_steps, then cosine decay
    to end_value at decay_steps (counted from the start, warm-up included), as optax's
    ``warmup_cosine_decay_schedule``."""

    name: ClassVar[str] = "warmup_cosine_decay_schedule"
    init_value: float
    peak_value: float
    warmup_steps: int
    decay_steps: int
    end_value: float = 0.0

    def __post_init__(self) -> None:
        for key in ("init_value", "peak_value", "end_value"):
            object.__setattr__(self, key, _number(key, getattr(self, key)))
        object.__setattr__(self, "warmup_steps", _steps("warmup_steps", self.warmup_steps, 0))
        decay = _steps("decay_steps", self.decay_steps, self.warmup_steps + 1)
        object.__setattr__(self, "decay_steps", decay)

    def value(self, t: int) -> float:
        count = t - 1
        if count < self.warmup_steps:
            fraction = count / self.warmup_steps
            return self.init_value + (self.peak_value - self.init_value) * fraction
        span = self.decay_steps - self.warmup_steps
        progress = min(count - self.warmup_steps, span) / span
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.end_value + (self.peak_value - self.end_value) * cosine


# -- the public constructors (optax's names) ----------------------------------------------


def constant_schedule(value: float) -> ConstantSchedule:
    """α(t) = value."""
    return ConstantSchedule(value)


def inverse_sqrt_schedule(init_value: float) -> InverseSqrtSchedule:
    """α(t) = init_value/√t (Kingma & Ba 2015, §6.1)."""
    return InverseSqrtSchedule(init_value)


def exponential_decay(
    init_value: float, *, transition_steps: int, decay_rate: float, staircase: bool = False
) -> ExponentialDecay:
    """α(t) = init_value·decay_rate^((t−1)/transition_steps); ``staircase`` floors the
    exponent (step decay). Keyword-only, since optax and other libraries order them
    differently."""
    return ExponentialDecay(init_value, transition_steps, decay_rate, staircase)


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0) -> CosineDecay:
    """Cosine decay from init_value to alpha·init_value at t − 1 = decay_steps."""
    return CosineDecay(init_value, decay_steps, alpha)


def linear_schedule(init_value: float, end_value: float, transition_steps: int) -> LinearSchedule:
    """Linear from init_value (t = 1) to end_value (t − 1 = transition_steps), then constant."""
    return LinearSchedule(init_value, end_value, transition_steps)


def linear_warmup(peak_value: float, warmup_steps: int) -> LinearWarmup:
    """α(t) = peak_value·min(1, t/warmup_steps)."""
    return LinearWarmup(peak_value, warmup_steps)


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
) -> WarmupCosineDecay:
    """Linear warm-up to peak_value, then cosine decay to end_value (optax's)."""
    return WarmupCosineDecay(init_value, peak_value, warmup_steps, decay_steps, end_value)


_CONSTRUCTORS: dict[str, Callable[..., Schedule]] = {
    "constant_schedule": constant_schedule,
    "inverse_sqrt_schedule": inverse_sqrt_schedule,
    "exponential_decay": exponential_decay,
    "cosine_decay_schedule": cosine_decay_schedule,
    "linear_schedule": linear_schedule,
    "linear_warmup": linear_warmup,
    "warmup_cosine_decay_schedule": warmup_cosine_decay_schedule,
}


def from_config(config: dict[str, Any]) -> Schedule:
    """The schedule a :meth:`Schedule.config` dictionary describes."""
    if not isinstance(config, dict) or config.get("schedule") not in _CONSTRUCTORS:
        raise ValueError(
            f"not a schedule configuration: {config!r}; "
            f"'schedule' must be one of {', '.join(_CONSTRUCTORS)}"
        )
    arguments = {k: v for k, v in config.items() if k != "schedule"}
    try:
        return _CONSTRUCTORS[config["schedule"]](**arguments)
    except TypeError as exc:
        raise ValueError(f"bad schedule configuration {config!r}: {exc}") from None


__all__ = [
    "Schedule",
    "constant_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "from_config",
    "inverse_sqrt_schedule",
    "linear_schedule",
    "linear_warmup",
    "warmup_cosine_decay_schedule",
]
