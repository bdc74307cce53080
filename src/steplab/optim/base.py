"""What every optimizer shares: hyperparameter checks, the state, the step's guard rails.

An optimizer is a frozen dataclass of hyperparameters. It never owns parameters or
moments: ``init(theta)`` makes a fresh :class:`State`, and ``step(theta, grad, state)``
updates ``theta`` and ``state`` in place, exactly like one pass through the loop body
of the seed's pseudo-code. Subclasses write only that loop body, once, as ``rule``.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import math
from types import SimpleNamespace
from typing import Any, ClassVar, NoReturn

import numpy as np

from steplab.optim.ops import NUMPY_OPS, Ops
from steplab.optim.schedules import Schedule

NONFINITE_POLICIES = ("raise", "skip", "propagate")
FUSED_MIN_SIZE = 4096  # theta.size from which impl="auto" takes steplab.fast's kernel

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
    # Only real numbers: a bool is not the number 1 and a string is not a number (NumPy would
    # convert both silently), and an int too large for a float is out of range, not a crash.
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name} must be a number in {interval}, got {shown}")
    try:
        raw = np.asarray(value)
        if raw.dtype.kind == "O":  # e.g. a Python int beyond int64: convert element-wise
            raw = np.asarray(raw.tolist(), dtype=np.float64)
        if raw.dtype.kind not in "iuf":
            raise TypeError
        array = raw.astype(np.float64)
    except OverflowError:
        raise ValueError(f"{name} must be in {interval}, got {shown} (too large)") from None
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {interval}, got {shown}") from None
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
        """Write the state (and, if given, the optimizer's configuration) to a ``.npz`` file,
        atomically; see :mod:`steplab.optim.checkpoint`."""
        from steplab.optim import checkpoint

        config = optimizer.config() if optimizer is not None else None
        checkpoint.save(path, vars(self), config, reserved=_state_reserved())

    @classmethod
    def load(cls, path, optimizer: Optimizer | None = None) -> State:
        """Read a state saved by :meth:`save` (any damaged or foreign file: ``ValueError``).

        With ``optimizer`` given, the file must have been saved from the same kind of
        optimizer; a mismatch raises ``ValueError`` naming both.
        """
        from steplab.optim import checkpoint

        fields, config = checkpoint.load(path, reserved=_state_reserved())
        saved = (config or {}).get("name")
        if optimizer is not None and saved is not None and saved != optimizer.name:
            raise ValueError(f"{path} holds the state of {saved!r}, not of {optimizer.name!r}")
        return cls(**fields)


def _state_reserved() -> frozenset[str]:
    """Names a state field may not take: State's own methods and attributes (a field
    called ``arrays`` would hide the method ``arrays()``)."""
    return frozenset(name for name in dir(State) if not name.startswith("__"))


# --------------------------------------------------------------------------------------
# The optimizer base class
# --------------------------------------------------------------------------------------

IMPLEMENTATIONS = ("auto", "numpy", "fused")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Optimizer:
    """Base class: validation, hyperparameters at step t, and the three ways to run a rule.

    A subclass is its hyperparameters (``hyper`` fields) plus one element-wise ``rule``
    written in the seed's symbols and order (see :mod:`steplab.optim.ops`), a typed
    ``state_type`` (a NamedTuple: ``t``, per-configuration scalars, then the rule's moments)
    and, if the rule needs per-step scalars such as 1 − ρᵗ, ``step_scalars``. From that
    alone come the pure :meth:`update`, the in-place :meth:`step` (NumPy, or numba's fused
    kernel for large arrays) and the sweep kernels of ``steplab.fast``.

    ``nonfinite`` says what a step does with a gradient holding NaN or inf:
    ``"raise"`` (default) raises ``FloatingPointError`` and leaves theta and the state
    untouched; ``"skip"`` leaves them untouched and counts the step in ``state.skipped``;
    ``"propagate"`` applies the step anyway, as torch.optim does (in a sweep each
    configuration's row is independent, so a NaN stays in its own row).

    ``impl`` picks how :meth:`step` runs the rule: ``"numpy"`` (whole-array NumPy),
    ``"fused"`` (one numba pass over memory, on all cores; needs numba) or ``"auto"``
    (fused for contiguous float32/float64 arrays of at least ``steplab.fast.MIN_SIZE``
    elements with scalar hyperparameters when numba is installed, else NumPy). Both give
    the same bits, because both run the same rule in the same arithmetic: float32 arrays
    step in float32 (the hyperparameters and per-step scalars, computed in float64, are
    rounded to float32 first), float64 arrays in float64, float16 in float64 rounded once
    when stored. ``state.impl`` says which one ran last.
    """

    name: ClassVar[str] = "optimizer"
    # framework -> hyperparameters that reproduce that framework's default algorithm
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # Whether the rule applies weight decay itself (AdamW, Lion) rather than as L2.
    DECOUPLED_WEIGHT_DECAY: ClassVar[bool] = False
    # Hyperparameters that switch a feature off when zero everywhere: the rule sees a
    # static flag ``hp.<name>_on`` and skips their extra work (and state) when False.
    OFF_WHEN_ZERO: ClassVar[tuple[str, ...]] = ("weight_decay",)
    # Per-configuration scalars the state carries besides t, with their initial values
    # (Nadam's running product of μ); ``step_scalars`` returns their new values.
    SCALAR_STATE: ClassVar[dict[str, float]] = {}
    # The typed state: NamedTuple("t", *SCALAR_STATE, *the rule's moments).
    state_type: ClassVar[Any] = tuple
    _moment_names: ClassVar[tuple[str, ...] | None] = None
    _has_step_scalars: ClassVar[bool] = False

    weight_decay: float = hyper(0.0, "[0, inf)", "L2 penalty: adds λ·θ to the gradient")
    nonfinite: str = dataclasses.field(
        default="raise", metadata={"doc": "raise | skip | propagate"}
    )
    impl: str = dataclasses.field(default="auto", metadata={"doc": "auto | numpy | fused"})

    # -- what a subclass writes ----------------------------------------------------------

    @staticmethod
    def rule(ops: Ops, hp: Any, theta: Any, g: Any, *moments: Any) -> tuple:
        """The loop body for one coordinate (or whole arrays): returns (θ, *moments)."""
        raise NotImplementedError

    @staticmethod
    def step_scalars(ops: Ops, hp: Any, t: Any, state: Any) -> dict[str, Any]:
        """Per-step scalars the rule reads from ``hp`` (e.g. 1 − ρᵗ), in float64.

        ``hp`` holds the hyperparameters (floats, or float64 arrays with one value per
        configuration), ``state`` the ``SCALAR_STATE`` values before the step. ``t`` is
        the step count, or (for a sweep's table) a column of step counts, with ``state``
        as columns too: write element-wise arithmetic, no branching on t. Use
        ``ops.pow`` for powers (see :mod:`steplab.optim.ops`). A scalar state that is
        a running product (new = old × factor of t) is tabulated in one pass; any other
        is carried step by step.
        """
        return {}

    def kept_moments(self, hp: Any) -> tuple[str, ...]:
        """The moments this configuration keeps (default: all the rule's); the others are
        switched off and reach the rule as None (e.g. r_max without amsgrad)."""
        return self.moment_names()

    def initial_moment(self, name: str, hp: Any) -> Any:
        """A moment's value before the first step (default 0, as in the seed)."""
        return 0.0

    def _init_moments(self, theta: np.ndarray, hp: SimpleNamespace) -> dict[str, Any]:
        return {n: moment_like(theta, self.initial_moment(n, hp)) for n in self.kept_moments(hp)}

    def _step_size(self, hp: Any, state: Any) -> Any:
        """Each coordinate's step size after the step that ``hp`` (at state.t) describes."""
        return hp.lr

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
        if self.impl not in IMPLEMENTATIONS:
            raise ValueError(f"impl must be one of {', '.join(IMPLEMENTATIONS)}, got {self.impl!r}")
        if self.impl == "fused":
            from steplab.fast import _numba

            if not _numba.available():
                raise ImportError(
                    f"impl='fused' needs numba ({_numba.UNAVAILABLE_REASON}); install it with "
                    "pip install 'steplab[fast]', or use impl='auto' or impl='numpy'"
                )
        object.__setattr__(self, "_hyper_cache", {})

    @classmethod
    def hyperparameters(cls) -> dict[str, dataclasses.Field]:
        """The tunable fields (name -> dataclass field with ``interval`` and ``doc``), in the
        algorithm's order with the inherited ``weight_decay`` last."""
        tunable = [f for f in dataclasses.fields(cls) if "interval" in f.metadata]
        tunable.sort(key=lambda f: f.name == "weight_decay")  # stable: keeps the rest in order
        return {f.name: f for f in tunable}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The rule's moments, read once from its signature when the class is defined, so
        # a bad signature fails there, and tracers (torch's dynamo) that watch class
        # attributes see one that never changes afterwards.
        if cls.rule is not Optimizer.rule:
            parameters = list(inspect.signature(cls.rule).parameters)
            if parameters[:4] != ["ops", "hp", "theta", "g"]:
                raise TypeError(
                    f"{cls.__name__}.rule must take (ops, hp, theta, g, *moments), "
                    f"got ({', '.join(parameters)})"
                )
            cls._moment_names = tuple(parameters[4:])
        # Rules without per-step scalars (SGD, AdaGrad, ...) skip building their namespace.
        cls._has_step_scalars = cls.step_scalars is not Optimizer.step_scalars

    @classmethod
    def moment_names(cls) -> tuple[str, ...]:
        """The rule's moments, from its signature: ``rule(ops, hp, theta, g, *moments)``."""
        if cls._moment_names is None:
            raise TypeError(f"{cls.__name__} has no rule: it is not a complete optimizer")
        return cls._moment_names

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
        """A fresh, mutable state for :meth:`step` (moments as the seed sets them, ``t = 0``)."""
        _check_theta(theta)
        # Broadcasting now makes a misfit fail here, not at the first step.
        hp = SimpleNamespace(**self._hyper(theta.shape))
        moments = self._init_moments(theta, hp)
        return State(
            t=0,
            made_by=self.name,
            shape=theta.shape,
            dtype=theta.dtype.str,
            **dict(self.SCALAR_STATE),
            **moments,
        )

    def init_state(self, theta: np.ndarray) -> Any:
        """A fresh typed state (``state_type``, a NamedTuple) for the pure :meth:`update`;
        moments that this configuration switches off are None."""
        return self.typed(self.init(theta))

    def typed(self, state: Any) -> Any:
        """``state`` (mutable or typed) as this optimizer's NamedTuple, sharing its arrays."""
        return self.state_type(
            **{name: getattr(state, name, None) for name in self.state_type._fields}
        )

    def update(self, theta: Any, grad: Any, state: Any, ops: Ops = NUMPY_OPS) -> tuple[Any, Any]:
        """One step as a pure function: ``(new_theta, new_state)``; nothing is mutated.

        ``state`` is a typed state (:meth:`init_state`) or a mutable one (:meth:`init`);
        the result is typed. With other ``ops`` (jax.numpy, torch) the same rule runs on
        those arrays; hyperparameters must then be scalars. No checks, no ``nonfinite``
        policy: this is the algorithm itself (``step`` adds the guard rails).
        """
        hp = self._hyper(np.shape(theta))
        t = state.t + 1
        hp_t, scalars = self._at_step(hp, t, state, ops)
        theta_new, moments = self._apply_rule(ops, hp_t, theta, grad, state)
        return theta_new, self.state_type(t=t, **scalars, **moments)

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State) -> np.ndarray:
        """One iteration of the loop body: updates ``theta`` and ``state`` in place."""
        grad = _check_grad(theta, grad)
        _check_state(theta, state, self)
        hp = self._hyper(theta.shape)
        t = state.t + 1
        hp_t, scalars = self._at_step(hp, t, state, NUMPY_OPS)  # a bad lr(t) raises here
        fused = None
        if self.impl == "fused" or (self.impl == "auto" and theta.size >= FUSED_MIN_SIZE):
            fused = self._fused(theta, grad, state, hp)  # (tested here: a call costs)
        check = self.nonfinite != "propagate"
        finite = True
        if fused:
            try:
                # the kernel checks ĝ first, in the same call, and writes nothing if it
                # holds NaN or inf
                finite = fused.step(self, hp, hp_t, theta, grad, state, check=check)
                if finite:
                    state.impl = "fused"
            except fused.CompileError as exc:  # nothing written: NumPy takes the step
                if self.impl == "fused":
                    raise
                fused.warn_slow_path(str(exc))
                fused = None
        if not fused:
            finite = not check or _all_finite(grad)
        if not finite:
            if self.nonfinite == "raise":
                raise FloatingPointError(
                    f"{self.name}: the gradient holds NaN or inf at step {t}; theta and "
                    "the state are unchanged (nonfinite='skip' skips such steps, "
                    "nonfinite='propagate' applies them)"
                )
            state.skipped = getattr(state, "skipped", 0) + 1
            return theta
        if not fused:
            theta_new, moments = self._apply_rule(NUMPY_OPS, hp_t, theta, grad, state, False)
            theta[...] = theta_new
            for name, value in moments.items():  # the moments this state holds
                getattr(state, name)[...] = value
            state.impl = "numpy"
        state.t = t
        for name, value in scalars.items():
            setattr(state, name, value)
        return theta

    def step_size(self, state: State) -> np.ndarray:
        """Each coordinate's effective step size after the last step.

        The factor that multiplies the optimizer's search direction (the gradient for
        AdaGrad/RMSProp, the corrected first moment ŝ for Adam): α/(β+√r) for AdaGrad.
        Evaluated in float64 at the last step's t (t = 1 before any step).
        """
        hp = self._hyper(state.shape)
        t = max(state.t, 1)
        values = {**hp, "lr": self._lr_at(hp, t)}
        # The scalar state after the step: rules' step sizes do not depend on it (Nadam's
        # running product only weighs ĝ against s).
        now = SimpleNamespace(**{k: getattr(state, k) for k in self.SCALAR_STATE})
        values.update(self.step_scalars(NUMPY_OPS, SimpleNamespace(**values), t, now))
        moments = SimpleNamespace(
            **{name: _float64(getattr(state, name, None)) for name in self.moment_names()}
        )
        size = self._step_size(SimpleNamespace(**values), moments)
        return np.broadcast_to(size, state.shape).astype(state.dtype)

    # -- the machinery every path shares -----------------------------------------------

    def _hyper(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Hyperparameters ready to combine with an array of ``shape``, in float64.

        Scalars stay Python floats; an array of shape (K,) becomes (K, 1, …) to line up
        with theta's leading axis, and must broadcast to theta's shape. Booleans stay
        Python bools, and each name in ``OFF_WHEN_ZERO`` adds a static flag ``<name>_on``.
        """
        key = tuple(shape)
        cache = self.__dict__["_hyper_cache"]
        cached = cache.get(key)
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
            values[name] = value
        for name in self.OFF_WHEN_ZERO:
            values[f"{name}_on"] = bool(np.any(values[name]))
        cache[key] = values
        return values

    def _expected_moments(self, shape: tuple[int, ...]) -> frozenset[str]:
        """The moments a state for theta of ``shape`` holds (cached with ``_hyper``)."""
        key = ("moments", tuple(shape))
        cache = self.__dict__["_hyper_cache"]
        if key not in cache:
            cache[key] = frozenset(self.kept_moments(SimpleNamespace(**self._hyper(shape))))
        return cache[key]

    def _lr_at(self, hp: dict, t: int) -> Any:
        return scheduled_lr(self, t) if isinstance(hp["lr"], Schedule) else hp["lr"]

    def _at_step(self, hp: dict, t: int, state: Any, ops: Ops) -> tuple[Any, dict]:
        """(hyperparameters of the step computed at t, with its per-step scalars; the new
        SCALAR_STATE values)."""
        # For NumPy, what does not change from step to step is prepared once per ``hp``
        # (the dict ``_hyper`` caches; one slot, so fresh dicts cannot pile up): on a tiny
        # array this Python is most of a step's time. JAX and torch values (tracers
        # among them) are never kept.
        known = self.__dict__.get("_at_step_cache") if ops is NUMPY_OPS else None
        if known is None or known[0] is not hp:
            fixed = None
            if not self._has_step_scalars and not isinstance(hp.get("lr"), Schedule):
                fixed = hyper_tuple(type(self), tuple(hp))(**hp)  # the same at every step
            known = (hp, SimpleNamespace(**hp), fixed)
            if ops is NUMPY_OPS:
                self.__dict__["_at_step_cache"] = known
        if known[2] is not None:
            return known[2], {}
        values, namespace = dict(hp), known[1]
        if isinstance(values.get("lr"), Schedule):
            values["lr"] = scheduled_lr(self, t)
            namespace = SimpleNamespace(**values)
        scalars = {}
        if self._has_step_scalars:
            before = _NO_SCALAR_STATE
            if self.SCALAR_STATE:
                before = SimpleNamespace(**{k: getattr(state, k) for k in self.SCALAR_STATE})
            values.update(self.step_scalars(ops, namespace, t, before))
            if self.SCALAR_STATE:
                scalars = {k: values[k] for k in self.SCALAR_STATE}
        return hyper_tuple(type(self), tuple(values))(*values.values()), scalars

    def _apply_rule(self, ops: Ops, hp_t: Any, theta: Any, grad: Any, state: Any,
                    cast: bool = True):  # fmt: skip
        """The rule on whole arrays in the step's arithmetic (:func:`compute_dtype` for NumPy
        arrays, the arrays' own for other frameworks); with ``cast``, results in the
        inputs' dtypes (``step`` skips it: writing into the arrays casts)."""
        if isinstance(theta, np.ndarray) and theta.dtype.char == "f":  # compute_dtype: float32
            hp_t = in_dtype(hp_t, np.float32)
        # float16 computes in float64 (float32 and float64 as they are; other frameworks'
        # arrays in their own dtype)
        widen = isinstance(theta, np.ndarray) and theta.dtype.char not in ("f", "d")
        x, g = (_opmath(theta), _opmath(grad)) if widen else (theta, grad)
        if hp_t.weight_decay_on:
            if self.DECOUPLED_WEIGHT_DECAY:
                x = decay_weights(hp_t, x)
            else:
                g = l2_penalty(hp_t, x, g)
        held = [getattr(state, name, None) for name in self.moment_names()]
        theta_new, *new = type(self).rule(ops, hp_t, x, g, *(map(_opmath, held) if widen else held))
        if not cast:
            names = zip(self.moment_names(), held, new, strict=True)
            return theta_new, {name: value for name, old, value in names if old is not None}
        out = {
            name: None if old is None else _like(value, old)
            for name, old, value in zip(self.moment_names(), held, new, strict=True)
        }
        return _like(theta_new, theta), out

    def _fused(self, theta: np.ndarray, grad: np.ndarray, state: State, hp: dict) -> Any:
        """steplab.fast's kernels if this step, which ``impl`` and the size send there, can
        take them, else None (``impl="fused"`` raises instead)."""
        from steplab import fast  # here, not at import: the core needs NumPy alone

        reason = fast.why_not_fused(self, theta, grad, state, hp)
        if reason is None:
            return fast
        if self.impl == "fused":
            raise ValueError(f"{self.name}: impl='fused' cannot run this step: {reason}")
        return None


_HYPER_TUPLES: dict[tuple, type] = {}
_NO_SCALAR_STATE = SimpleNamespace()  # what step_scalars gets without SCALAR_STATE (only read)


def hyper_tuple(cls: type, fields: tuple[str, ...]) -> type:
    """The NamedTuple type of ``cls``'s hyperparameters at a step (cached: numba and JAX
    see one type per optimizer and configuration of switches)."""
    key = (cls, fields)
    if key not in _HYPER_TUPLES:
        name = f"{cls.__name__}Hyper{len(_HYPER_TUPLES)}"
        # a module attribute, so that tools which look a type up by name (numba's parallel
        # lowering, pickle) find it
        _HYPER_TUPLES[key] = globals()[name] = collections.namedtuple(name, fields)
    return _HYPER_TUPLES[key]


def compute_dtype(theta: Any) -> Any:
    """The dtype a step on NumPy array ``theta`` computes in: float32 for float32 (as torch
    does: the data stays in the type it is stored in, so a step moves 4-byte numbers and
    vectorizes twice as wide), float64 for float64 and float16 (no float16 arithmetic:
    it is rounded once, when stored). None for other frameworks' arrays."""
    if not isinstance(theta, np.ndarray):
        return None
    return np.dtype(np.float32) if theta.dtype == np.float32 else np.dtype(np.float64)


def in_dtype(hp_t: Any, dtype: Any) -> Any:
    """``hp_t`` (a hyperparameter NamedTuple) with its numbers rounded to ``dtype``: the
    scalars the fused kernels receive, so that the NumPy rule multiplies by the same
    float32 values (switches stay bools)."""
    return type(hp_t)(*(
        v if isinstance(v, (bool, np.bool_)) else
        np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) else np.dtype(dtype).type(v)
        for v in hp_t
    ))  # fmt: skip


def _opmath(value: Any) -> Any:
    """A NumPy array in its compute dtype (float16 in float64; float32, float64 as they are)."""
    if isinstance(value, np.ndarray) and value.dtype.char not in ("f", "d"):  # float32, 64
        return value.astype(np.float64)
    return value


def _float64(value: Any) -> Any:
    return value.astype(np.float64) if isinstance(value, np.ndarray) else value


def _like(value: Any, reference: Any) -> Any:
    if isinstance(reference, np.ndarray):
        return np.asarray(value).astype(reference.dtype, copy=False)
    return value


def l2_penalty(hp: Any, theta: Any, g: Any) -> Any:
    """Weight decay as an L2 penalty: ĝ + λ·θ (torch's weight_decay, for most optimizers)."""
    return g + hp.weight_decay * theta


def decay_weights(hp: Any, theta: Any) -> Any:
    """Decoupled weight decay θ ← θ·(1 − α·λ), before the step (AdamW, Lion)."""
    return theta * (1 - hp.lr * hp.weight_decay)


def scheduled_lr(optimizer: Optimizer, t: int) -> float:
    """The value of ``optimizer.lr`` (a schedule) at step ``t``, checked to be in [0, inf)
    (a schedule may end at 0, as a cosine decay does; a constant lr must be > 0)."""
    schedule: Any = optimizer.lr  # type: ignore[attr-defined]  # every class with a schedule has lr
    value = schedule(t)
    if not (isinstance(value, (float, int)) and np.isfinite(value) and value >= 0):
        raise ValueError(
            f"{optimizer.name}: the lr schedule {schedule!r} gives {value!r} at step t={t}; "
            "a scheduled step size must be a finite number >= 0"
        )
    return float(value)


def moment_like(theta: np.ndarray, fill: Any = 0.0) -> np.ndarray:
    """A moment array: theta's shape and dtype, filled with ``fill`` (a scalar or a
    hyperparameter already broadcast against theta)."""
    array = np.empty_like(theta)
    array[...] = fill
    return array


def bias_correction(rho: Any, t: int, ops: Ops = NUMPY_OPS) -> Any:
    """1 − ρᵗ: how much of the truth an exponential moving average started at 0 holds."""
    return 1 - ops.pow(rho, t)


# --------------------------------------------------------------------------------------
# Input checks with messages that name the problem
# --------------------------------------------------------------------------------------


def _all_finite(grad: np.ndarray) -> bool:
    """Whether every element of ``grad`` is finite. A tiny array (a 2-D test function's
    gradient) is checked as Python floats: NumPy's ``isfinite(...).all()`` costs several
    times more there than the step's arithmetic."""
    if grad.size <= 16:
        return all(map(math.isfinite, grad.ravel().tolist()))
    return bool(np.isfinite(grad).all())


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
    # Options that add or remove moments (amsgrad, centered, momentum) must match; each
    # moment is an array like theta. (One pass: this runs at every step.)
    expected = optimizer._expected_moments(theta.shape)
    for name in optimizer.moment_names():
        array = getattr(state, name, None)
        if (array is None) == (name in expected):
            _refuse_moments(state, optimizer, expected)
        if array is not None and not (
            isinstance(array, np.ndarray)
            and array.shape == theta.shape
            and array.dtype == theta.dtype
        ):
            _refuse_state_array(name, array, theta)
    for key in optimizer.SCALAR_STATE:  # a float, or one per configuration (Nadam's Πμ)
        array = getattr(state, key, None)
        if isinstance(array, np.ndarray) and not (
            array.dtype == np.float64 and _broadcasts_to(array.shape, theta.shape)
        ):
            _refuse_state_array(key, array, theta)


def _refuse_moments(state: Any, optimizer: Optimizer, expected: frozenset[str]) -> NoReturn:
    def listed(names):
        return ", ".join(sorted(names)) or "none"

    held = [name for name in optimizer.moment_names() if getattr(state, name, None) is not None]
    raise ValueError(
        f"this state holds the moments {listed(held)}, but {optimizer.name} with these "
        f"options keeps {listed(expected)}: it was made by {optimizer.name} with other "
        "options (e.g. amsgrad, centered, momentum); call init(theta) again"
    )


def _refuse_state_array(key: str, array: Any, theta: np.ndarray) -> NoReturn:
    raise ValueError(
        f"state.{key} has shape {np.shape(array)} and dtype {getattr(array, 'dtype', None)}, "
        f"but theta has shape {theta.shape} and dtype {theta.dtype}; call init(theta) again"
    )


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False
