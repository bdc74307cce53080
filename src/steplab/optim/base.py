"""What every optimizer shares: hyperparameter checks, the state, the step's guard rails.

An optimizer is a frozen dataclass of hyperparameters. It never owns parameters or
moments: ``init(theta)`` makes a fresh :class:`State`, and ``step(theta, grad, state)``
updates ``theta`` and ``state`` in place, exactly like one pass through the loop body
of the seed's pseudo-code. Subclasses write only that loop body, in ``_update``.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from steplab.optim.schedules import Schedule

NONFINITE_POLICIES = ("raise", "skip", "propagate")
_FUSED_MIN_SIZE = 4096  # theta.size from which Optimizer.step tries steplab.fast

# --------------------------------------------------------------------------------------
# Hyperparameters: a dataclass field that knows its allowed interval
# --------------------------------------------------------------------------------------


def hyper(default: Any, interval: str, doc: str = "") -> Any:
    """A hyperparameter field: ``interval`` is ``"(0, inf)"``, ``"[0, 1)"``, … or ``"bool"``.

    Numbers may be scalars or arrays (one value per configuration of a sweep); every
    element must lie in the interval.
    """
    return dataclasses.field(default=default, metadata={"interval": interval, "doc": doc})


def _parse_interval(text: str) -> tuple[float, float, bool, bool]:
    low, high = (part.strip() for part in text[1:-1].split(","))
    return float(low), float(high), text[0] == "[", text[-1] == "]"


def _check_in_interval(name: str, value: Any, interval: str) -> Any:
    """Return ``value`` as a Python float or a read-only float64 array, or raise ValueError."""
    if interval == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        return bool(value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}") from None
    if array.size == 0:
        raise ValueError(f"{name} must be a number in {interval}, got an empty array")
    low, high, low_closed, high_closed = _parse_interval(interval)
    above = array >= low if low_closed else array > low
    below = array <= high if high_closed else array < high
    bad = ~(np.isfinite(array) & above & below)
    if bad.any():
        first = float(array.flat[int(np.argmax(bad))])
        raise ValueError(f"{name} must be in {interval}, got {first!r}")
    if array.ndim == 0:
        return float(array)  # a Python float: combines with float32 arrays as float32
    array = array.copy()
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------


class State(SimpleNamespace):
    """An optimizer's state: the step counter ``t`` and moment arrays shaped like theta.

    Attribute names are the seed's symbols (``r`` for AdaGrad's accumulator, ``s`` and
    ``r`` for Adam's moments, …). ``save``/``load`` round-trip it bit for bit.
    """

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}

    def save(self, path, optimizer: Optimizer | None = None) -> None:
        """Write the state (and, if given, the optimizer's configuration) to a ``.npz`` file."""
        meta = {"fields": {k: type(v).__name__ for k, v in vars(self).items()}}
        if optimizer is not None:
            meta["optimizer"] = optimizer.config()
        with open(path, "wb") as handle:  # a file object: numpy won't append ".npz"
            np.savez(handle, __meta__=json.dumps(meta), **vars(self))

    @classmethod
    def load(cls, path, optimizer: Optimizer | None = None) -> State:
        """Read a state saved by :meth:`save`.

        With ``optimizer`` given, the file must have been saved from the same kind of
        optimizer; a mismatch raises ``ValueError`` naming both.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["__meta__"]))
                values = {k: data[k] for k in data.files if k != "__meta__"}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path} is not a steplab optimizer state file ({exc})") from None
        saved = meta.get("optimizer", {}).get("name")
        if optimizer is not None and saved is not None and saved != optimizer.name:
            raise ValueError(f"{path} holds the state of {saved!r}, not of {optimizer.name!r}")
        # Scalars come back as 0-d arrays: give them back their Python type.
        scalar_types = {"int": int, "float": float, "str": str, "bool": bool}
        fields = {}
        for key, kind in meta["fields"].items():
            value = values[key]
            if kind in scalar_types:
                value = scalar_types[kind](value.item())
            elif kind == "tuple":  # theta's shape
                value = tuple(int(n) for n in value.tolist())
            fields[key] = value
        return cls(**fields)


# --------------------------------------------------------------------------------------
# The optimizer base class
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Optimizer:
    """Base class: validation, broadcasting of hyperparameters, guards around ``_update``.

    ``nonfinite`` says what a step does with a gradient holding NaN or inf:
    ``"raise"`` (default) raises ``FloatingPointError`` and leaves theta and the state
    untouched; ``"skip"`` leaves them untouched and counts the step in ``state.skipped``;
    ``"propagate"`` applies the step anyway, as torch.optim does (in a sweep each
    configuration's row is independent, so a NaN stays in its own row).
    """

    name: ClassVar[str] = "optimizer"
    # framework -> hyperparameters that reproduce that framework's default algorithm
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # Whether the class applies weight decay itself (AdamW, Lion) rather than as L2.
    DECOUPLED_WEIGHT_DECAY: ClassVar[bool] = False
    # Hyperparameters that switch a feature off when zero everywhere: ``_broadcast``
    # turns them into None, so the plain algorithm runs without their extra work.
    OFF_WHEN_ZERO: ClassVar[tuple[str, ...]] = ("weight_decay",)

    weight_decay: float = hyper(0.0, "[0, inf)", "L2 penalty: adds λ·θ to the gradient")
    nonfinite: str = dataclasses.field(
        default="raise", metadata={"doc": "raise | skip | propagate"}
    )

    # -- construction ------------------------------------------------------------------

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "lr" and isinstance(getattr(self, f.name), Schedule):
                continue  # a schedule: each value is checked at the step that uses it
            if "interval" in f.metadata:
                value = _check_in_interval(f.name, getattr(self, f.name), f.metadata["interval"])
                object.__setattr__(self, f.name, value)
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(
                f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {self.nonfinite!r}"
            )
        object.__setattr__(self, "_broadcast_cache", {})

    @classmethod
    def hyperparameters(cls) -> dict[str, dataclasses.Field]:
        """The tunable fields (name -> dataclass field with ``interval`` and ``doc``), in the
        algorithm's order with the inherited ``weight_decay`` last."""
        tunable = [f for f in dataclasses.fields(cls) if "interval" in f.metadata]
        tunable.sort(key=lambda f: f.name == "weight_decay")  # stable: keeps the rest in order
        return {f.name: f for f in tunable}

    @classmethod
    def like(cls, preset: str = "seed", **overrides: Any) -> Optimizer:
        """The optimizer as ``preset`` defines it: ``"seed"`` (the lecture), ``"torch"``, …

        ``overrides`` change single hyperparameters on top of the preset.
        """
        presets = {"seed": {}, **cls.PRESETS}
        if preset not in presets:
            raise ValueError(
                f"{cls.name} has no preset {preset!r}; available: {', '.join(presets)}"
            )
        return cls(**{**presets[preset], **overrides})

    def replace(self, **changes: Any) -> Optimizer:
        """A copy with some hyperparameters changed (validated like the constructor)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            allowed = ", ".join(f.name for f in dataclasses.fields(self))
            raise ValueError(f"{self.name} has no hyperparameter {sorted(unknown)}; use {allowed}")
        return dataclasses.replace(self, **changes)

    def config(self) -> dict[str, Any]:
        """JSON-ready description: name and every hyperparameter."""
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Schedule):
                value = value.config()
            values[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return {"name": self.name, **values}

    # -- the contract ------------------------------------------------------------------

    def init(self, theta: np.ndarray) -> State:
        """A fresh state for parameters shaped like ``theta`` (moments zero, ``t = 0``)."""
        _check_theta(theta)
        # Broadcasting now makes a misfit fail here, not at the first step.
        hp = self._broadcast(theta.shape, theta.dtype)
        moments = self._init_moments(theta, hp)
        return State(t=0, made_by=self.name, shape=theta.shape, dtype=theta.dtype.str, **moments)

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State) -> np.ndarray:
        """One iteration of the loop body: updates ``theta`` and ``state`` in place."""
        grad = _check_grad(theta, grad)
        _check_state(theta, state, self)
        # Fast path: for large arrays, steplab.fast runs this same step (the same numbers as
        # _update, which stays the reference) as one fused numba pass over memory; it says
        # False when it does not apply (small, strided, array hyperparameters, no numba).
        if theta.size >= _FUSED_MIN_SIZE and not isinstance(getattr(self, "lr", None), Schedule):
            from steplab.fast import fused_step

            if fused_step(self, theta, grad, state):
                return theta
        if self.nonfinite != "propagate" and not np.isfinite(grad).all():
            if self.nonfinite == "raise":
                raise FloatingPointError(
                    f"{self.name}: the gradient holds NaN or inf at step {state.t + 1}; "
                    "theta and the state are unchanged (nonfinite='skip' skips such steps, "
                    "nonfinite='propagate' applies them)"
                )
            state.skipped = getattr(state, "skipped", 0) + 1
            return theta
        hp = self._hp_at(theta.shape, theta.dtype, state.t + 1)
        if hp.weight_decay is not None and not self.DECOUPLED_WEIGHT_DECAY:
            grad = grad + hp.weight_decay * theta  # L2 penalty, as torch's weight_decay
        self._update(theta, grad, state, hp)
        return theta

    def step_size(self, state: State) -> np.ndarray:
        """Each coordinate's effective step size after the last step.

        The factor that multiplies the optimizer's search direction (the gradient for
        AdaGrad/RMSProp, the corrected first moment ŝ for Adam): α/(β+√r) for AdaGrad.
        """
        hp = self._hp_at(state.shape, np.dtype(state.dtype), max(state.t, 1))
        return np.broadcast_to(self._step_size(state, hp), state.shape).astype(state.dtype)

    # -- what subclasses write ---------------------------------------------------------

    def _init_moments(self, theta: np.ndarray, hp: SimpleNamespace) -> dict[str, np.ndarray]:
        return {}

    def _update(self, theta: np.ndarray, g: np.ndarray, state: State, hp: SimpleNamespace):
        raise NotImplementedError

    def _step_size(self, state: State, hp: SimpleNamespace):
        return hp.lr

    # -- broadcasting hyperparameters against theta -------------------------------------

    def _hp_at(self, shape: tuple[int, ...], dtype: np.dtype, t: int) -> SimpleNamespace:
        """The hyperparameters of the step computed at ``t``: a scheduled ``lr`` evaluated."""
        hp = self._broadcast(shape, dtype)
        if isinstance(hp.lr if hasattr(hp, "lr") else None, Schedule):
            hp = SimpleNamespace(**{**vars(hp), "lr": scheduled_lr(self, t)})
        return hp

    def _broadcast(self, shape: tuple[int, ...], dtype: np.dtype) -> SimpleNamespace:
        """Hyperparameters ready to combine with ``theta``.

        Scalars stay Python floats (so float32 stays float32). An array of shape (K,)
        becomes (K, 1, …) to line up with theta's leading axis; every array must
        broadcast to theta's shape and is cast to theta's dtype. Switches such as
        ``weight_decay`` are ``None`` when zero everywhere (see ``OFF_WHEN_ZERO``).
        """
        key = (tuple(shape), np.dtype(dtype).str)
        cached = self._broadcast_cache.get(key)
        if cached is not None:
            return cached
        values = {}
        for name in self.hyperparameters():
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                if value.ndim == 1 and len(shape) > 1:
                    value = value.reshape((-1,) + (1,) * (len(shape) - 1))
                if not _broadcasts_to(value.shape, tuple(shape)):
                    raise ValueError(
                        f"{self.name}: {name} of shape {getattr(self, name).shape} does not "
                        f"broadcast against theta's leading axis (theta has shape {shape})"
                    )
                value = value.astype(dtype)
            values[name] = value
        for name in self.OFF_WHEN_ZERO:
            if not np.any(values[name]):
                values[name] = None
        hp = SimpleNamespace(**values)
        self._broadcast_cache[key] = hp
        return hp


def scheduled_lr(optimizer: Optimizer, t: int) -> float:
    """The value of ``optimizer.lr`` (a schedule) at step ``t``, checked to be in (0, inf)."""
    value = optimizer.lr(t)
    if not (isinstance(value, float) and np.isfinite(value) and value > 0):
        raise ValueError(
            f"{optimizer.name}: the lr schedule {optimizer.lr!r} gives {value!r} at step t={t}; "
            "a step size must be a finite number > 0"
        )
    return value


def moment_like(theta: np.ndarray, fill: Any = 0.0) -> np.ndarray:
    """A moment array: theta's shape and dtype, filled with ``fill`` (a scalar or a
    hyperparameter already broadcast against theta)."""
    array = np.empty_like(theta)
    array[...] = fill
    return array


def bias_correction(rho: Any, t: int) -> Any:
    """1 − ρᵗ: how much of the truth an exponential moving average started at 0 holds."""
    return 1 - rho**t


# --------------------------------------------------------------------------------------
# Input checks with messages that name the problem
# --------------------------------------------------------------------------------------


def _check_theta(theta: Any) -> None:
    if not isinstance(theta, np.ndarray):
        raise TypeError(
            f"theta must be a NumPy array (it is updated in place), got {type(theta).__name__}"
        )
    if theta.dtype.kind != "f":
        raise TypeError(
            f"theta must have a floating dtype (float16, float32, float64), got {theta.dtype}"
        )
    if not theta.flags.writeable:
        raise ValueError("theta is read-only; the optimizer updates it in place")


def _check_grad(theta: np.ndarray, grad: Any) -> np.ndarray:
    _check_theta(theta)
    grad = np.asarray(grad)
    if grad.shape != theta.shape:
        raise ValueError(f"grad has shape {grad.shape} but theta has shape {theta.shape}")
    if grad.dtype != theta.dtype:
        raise TypeError(
            f"grad has dtype {grad.dtype} but theta has dtype {theta.dtype}; "
            f"cast one of them (the optimizer keeps theta's dtype)"
        )
    return grad


def _check_state(theta: np.ndarray, state: Any, optimizer: Optimizer) -> None:
    if not isinstance(state, State):
        raise TypeError(f"state must come from {optimizer.name}.init(theta), got {state!r}")
    made_by = getattr(state, "made_by", None)
    if made_by != optimizer.name:
        raise ValueError(f"this state was made by {made_by}.init, not by {optimizer.name}.init")
    for key, array in state.arrays().items():
        if array.shape == theta.shape:
            if array.dtype == theta.dtype:
                continue
        elif array.dtype == np.float64 and _broadcasts_to(array.shape, theta.shape):
            continue  # a per-configuration scalar, e.g. Nadam's running product of μ
        raise ValueError(
            f"state.{key} has shape {array.shape} and dtype {array.dtype}, but theta has "
            f"shape {theta.shape} and dtype {theta.dtype}; call init(theta) again"
        )


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False
