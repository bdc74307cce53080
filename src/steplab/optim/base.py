"""What every optimizer shares: hyperparameter checks, the state, the step's guard rails,
and the protocol every backend runs a rule through.

An optimizer is a frozen dataclass of hyperparameters. It never owns parameters or
moments: ``init(theta)`` makes a fresh :class:`State`, and ``step(theta, grad, state)``
updates ``theta`` and ``state`` in place, exactly like one pass through the loop body
of the seed's pseudo-code. Subclasses write only that loop body, once, as ``rule``.

**The protocol between the layers.** Every backend (NumPy here, numba in ``steplab.fast``,
torch, JAX) runs a rule in the same two public moves, and through nothing else:

1. **Prepare step t.** ``declared = opt.declared_for(shape)`` gives the *declared
   hyperparameters* (what the user set, checked, shaped to broadcast against an array of
   ``shape``, with a static flag ``<name>_on`` per :attr:`Optimizer.OFF_WHEN_ZERO`; a dict,
   cached per shape). ``hp, scalars = opt.prepare_step(declared, t, state, ops)`` turns them
   into the *step values* ``hp`` of step ``t``: a NamedTuple (:func:`step_values_type`) with
   the scheduled ``lr`` and the rule's per-step scalars (1 − ρᵗ, …), and the new values of
   the optimizer's scalar state (``SCALAR_STATE``, e.g. Nadam's Πμ).
2. **Apply the rule on an Ops.** ``theta, moments = opt.apply_rule(ops, hp, theta, g, state)``
   runs the optimizer's pieces and ``rule`` on the backend's arrays with the backend's
   :class:`~steplab.optim.ops.Ops` (``state``: anything with the moments as attributes;
   a missing one is switched off). A compiling backend (numba) may instead compile
   ``type(opt).rule`` itself, with the pieces of :meth:`Optimizer.pieces` before and
   after it (:mod:`steplab.optim.pieces`), for one coordinate.

**Pieces.** Weight decay and a chain's clipping are element-wise *pieces* around the rule
(``pieces()`` gives ``(before, after)``, each piece with a static switch ``hp.<name>_on``
or none): an optimizer's own weight decay is one, and
:func:`steplab.optim.transforms.fuse` adds more, so every path runs "pieces, rule, pieces"
in one pass. A piece that needs ĝ's global norm (``NEEDS_GRAD_NORM``) gets it through
``prepare_step(..., grad_norm=‖ĝ‖)``: one reduction before the pass.

What a backend reads besides: ``opt.moment_names()``, ``opt.kept_moments(declared)``
(the declared values as attributes),
``initial_value(opt, name, declared, theta)`` (``opt.initial_moment``'s constant, or θ₀
itself for a moment declared :data:`THETA0`), ``opt.state_shapes(shape, declared)``, the
class attributes ``SCALAR_STATE``, ``OFF_WHEN_ZERO``, ``DECOUPLED_WEIGHT_DECAY``,
``RULE_DECAYS_WEIGHTS`` (the rule decays weights itself: no generic decay),
``NEEDS_GRAD_NORM`` and ``KIND``.

``KIND`` is ``"elementwise"`` for every rule today: each coordinate's update reads only that
coordinate, so a backend may slice, pack or fuse the arrays freely. A later kind,
``"per_tensor"`` (a rule that sees a whole matrix, with state of shapes other than theta's,
declared by ``state_shapes``), goes through the same two moves; backends check ``KIND``
and refuse kinds they do not run.

Step backends (``steplab.fast``'s fused kernel) register themselves with
:func:`register_step_backend`; the core never imports them.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import inspect
import math
from types import SimpleNamespace
from typing import Any, ClassVar, NamedTuple, NoReturn, overload

import numpy as np

from steplab import _plugins
from steplab.optim.ops import NUMPY_OPS, Ops
from steplab.optim.pieces import L2_DECAY, Piece, clip_numbers, own_pieces
from steplab.optim.schedules import Schedule

NONFINITE_POLICIES = ("raise", "skip", "propagate")
FUSED_MIN_SIZE = 4096  # theta.size from which impl="auto" takes the fused step backend

#: What a rule's update of one coordinate reads (see the module docstring, "KIND").
KINDS = ("elementwise", "per_tensor")

#: What :meth:`Optimizer.initial_moment` returns for a moment that starts as a copy of θ₀
#: (Schedule-Free's base iterate z) rather than at a constant.
THETA0 = "theta0"

# --------------------------------------------------------------------------------------
# Hyperparameters: a dataclass field that knows its allowed interval
# --------------------------------------------------------------------------------------


class Interval(str):
    """A hyperparameter's allowed values, written as in mathematics: ``"(0, inf)"``,
    ``"[0, 1)"``, … or ``"bool"`` for a switch.

    It is the text itself (a ``str``: it prints, compares and serialises as written), parsed
    once: ``low``, ``high``, ``low_closed``, ``high_closed``, and :meth:`holds`.
    """

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    def __new__(cls, text: str) -> Interval:
        self = super().__new__(cls, text)
        if text == "bool":
            self.low, self.high, self.low_closed, self.high_closed = 0.0, 1.0, True, True
            return self
        try:
            if text[0] not in "[(" or text[-1] not in "])":
                raise ValueError
            low, high = (float(part.strip()) for part in text[1:-1].split(","))
        except (ValueError, IndexError):
            raise ValueError(
                f"an interval is written like '(0, inf)' or '[0, 1)', or is 'bool'; got {text!r}"
            ) from None
        self.low, self.high = low, high
        self.low_closed, self.high_closed = text[0] == "[", text[-1] == "]"
        return self

    @property
    def is_bool(self) -> bool:
        return str(self) == "bool"

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Element-wise: whether each of ``values`` (float64) is finite and in the interval."""
        above = values >= self.low if self.low_closed else values > self.low
        below = values <= self.high if self.high_closed else values < self.high
        return np.isfinite(values) & above & below


def hyper(default: Any, interval: str, doc: str = "") -> Any:
    """A hyperparameter field: ``interval`` is ``"(0, inf)"``, ``"[0, 1)"``, … or ``"bool"``
    (kept as an :class:`Interval` in the field's ``metadata["interval"]``).

    Numbers may be scalars or arrays (one value per configuration of a sweep); every
    element must lie in the interval.
    """
    return dataclasses.field(default=default, metadata={"interval": Interval(interval), "doc": doc})


def check_in_interval(name: str, value: Any, interval: Interval | str) -> Any:
    """Return ``value`` as a Python float or a read-only float64 array, or raise ValueError
    naming ``name`` and ``interval`` (the check every ``hyper`` field gets; public for
    classes outside :class:`Optimizer`, such as wrappers, that declare ``hyper`` fields)."""
    interval = interval if isinstance(interval, Interval) else Interval(interval)
    if interval.is_bool:
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
    bad = ~interval.holds(array)
    if bad.any():
        first = float(array.flat[int(np.argmax(bad))])
        raise ValueError(f"{name} must be in {interval}, got {first!r}")
    if array.ndim == 0:
        return float(array)  # a Python float: combines with float32 arrays as float32
    array = array.copy()
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------------------
# Step backends: registered by the packages that provide them (the core imports none)
# --------------------------------------------------------------------------------------

_STEP_BACKENDS: dict[str, Any] = {}


def register_step_backend(name: str, backend: Any) -> None:
    """Make ``backend`` the step backend ``name`` (today: ``"fused"``, for ``impl="fused"``
    and ``impl="auto"`` on large arrays).

    ``backend`` is the object itself, or the name of a module whose ``STEP_BACKEND`` it is,
    imported on first use (so that registering costs no import). The object has
    ``available() -> bool``, ``unavailable_reason() -> str``, ``why_not(opt, theta, grad,
    state, declared) -> str | None``, ``step(opt, declared, hp, theta, grad, state, check)
    -> bool`` (False: ĝ is not finite and nothing was written), ``CompileError`` and
    ``warn_slow_path(reason)``; see ``steplab.fast``.
    """
    _STEP_BACKENDS[name] = backend


def step_backend(name: str) -> Any:
    """The registered step backend ``name``, or None if none is registered (here, or by
    the package root as the provider of ``"step backend <name>"``, see ``steplab._plugins``)."""
    backend = _STEP_BACKENDS.get(name)
    if backend is None:
        backend = _plugins.provided(f"step backend {name}")
    if isinstance(backend, str):
        backend = _STEP_BACKENDS[name] = importlib.import_module(backend).STEP_BACKEND
    return backend


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
        checkpoint.check_state(path, fields, config, optimizer)  # before anything uses it
        return cls(**fields)


def _state_reserved() -> frozenset[str]:
    """Names a state field may not take: State's own methods and attributes (a field
    called ``arrays`` would hide the method ``arrays()``)."""
    return frozenset(name for name in dir(State) if not name.startswith("__"))


# --------------------------------------------------------------------------------------
# The optimizer base class
# --------------------------------------------------------------------------------------

IMPLEMENTATIONS = ("auto", "numpy", "fused")


class PreparedStep(NamedTuple):
    """What :meth:`Optimizer.prepare_step` gives: the step values ``hp`` the rule reads, and
    the optimizer's scalar state after the step (name -> value; empty without any)."""

    hp: Any
    scalars: dict[str, Any]


class _Memo:
    """An optimizer's caches, in one explicit place (the optimizer itself is frozen).

    ``by_shape``: shape -> (declared hyperparameters, the moments a state keeps, the step
    values if they are the same at every step else None, those in float32 or None). All
    are derived from the optimizer's fields, so they are never stale. A copy (pickle,
    ``replace``) starts empty.
    """

    __slots__ = ("by_shape",)

    def __init__(self) -> None:
        self.by_shape: dict[tuple, _ShapePlan] = {}

    def __reduce__(self) -> tuple:
        return (_Memo, ())


class _ShapePlan:
    """What a NumPy step on theta of one shape prepares once (see ``Optimizer._plan``)."""

    __slots__ = ("declared", "expected", "fixed", "fixed_float32", "namespace", "step_type")

    def __init__(self, declared: dict[str, Any], expected: frozenset[str], fixed: Any,
                 fixed_float32: Any) -> None:  # fmt: skip
        self.declared = declared
        self.expected = expected  # the moments a state for this shape holds
        self.fixed = fixed  # the step values, if the same at every step (else None)
        self.fixed_float32 = fixed_float32  # ``fixed`` rounded to float32
        # what step_scalars reads (None with a schedule: lr changes every step)
        self.namespace = None if isinstance(declared.get("lr"), Schedule) else (
            SimpleNamespace(**declared)
        )  # fmt: skip
        self.step_type: Any = None  # the step values' NamedTuple type, once known


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
    # What the rule's update of a coordinate reads: "elementwise" (see the module doc).
    KIND: ClassVar[str] = "elementwise"
    # framework -> hyperparameters that reproduce that framework's default algorithm
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # Whether the rule applies weight decay itself (AdamW, Lion) rather than as L2.
    DECOUPLED_WEIGHT_DECAY: ClassVar[bool] = False
    # Hyperparameters that switch a feature off when zero everywhere: the rule sees a
    # static flag ``hp.<name>_on`` and skips their extra work (and state) when False.
    OFF_WHEN_ZERO: ClassVar[tuple[str, ...]] = ("weight_decay",)
    # Whether the rule applies weight decay itself, where its paper puts it (it reads
    # ``hp.weight_decay_on``): then no backend applies the generic L2 or decoupled decay.
    RULE_DECAYS_WEIGHTS: ClassVar[bool] = False
    # Per-configuration scalars the state carries besides t, with their initial values
    # (Nadam's running product of μ); ``step_scalars`` returns their new values.
    SCALAR_STATE: ClassVar[dict[str, float]] = {}
    # The typed state: NamedTuple("t", *SCALAR_STATE, *the rule's moments).
    state_type: ClassVar[Any] = tuple
    # Pieces a chain adds around the rule (steplab.optim.transforms.fuse), in chain order;
    # the optimizer's own weight decay follows the ones before the rule.
    CHAIN: ClassVar[tuple[Piece, ...]] = ()
    # Whether a piece needs ĝ's global norm (a reduction before the pass).
    NEEDS_GRAD_NORM: ClassVar[bool] = False
    _moment_names: ClassVar[tuple[str, ...] | None] = None
    _has_step_scalars: ClassVar[bool] = False
    _before: ClassVar[tuple[Piece, ...]] = (L2_DECAY,)
    _after: ClassVar[tuple[Piece, ...]] = ()

    weight_decay: float = hyper(0.0, "[0, inf)", "L2 penalty: adds λ·θ to the gradient")
    nonfinite: str = dataclasses.field(
        default="raise", metadata={"doc": "raise | skip | propagate"}
    )
    impl: str = dataclasses.field(default="auto", metadata={"doc": "auto | numpy | fused"})
    _memo: _Memo = dataclasses.field(default_factory=_Memo, init=False, repr=False, compare=False)

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
        """A moment's value before the first step (default 0, as in the seed), or
        :data:`THETA0` for a moment that starts as a copy of θ₀."""
        return 0.0

    def state_shapes(self, shape: tuple[int, ...], declared: Any) -> dict[str, tuple[int, ...]]:
        """Each kept moment's shape for theta of ``shape``: theta's, for an element-wise
        rule. (A per-tensor rule would declare others here.) ``declared`` is what
        ``declared_for`` gives (a dict) or the same values as attributes."""
        if isinstance(declared, dict):
            declared = SimpleNamespace(**declared)  # kept_moments reads attributes
        return dict.fromkeys(self.kept_moments(declared), tuple(shape))

    def _init_moments(self, theta: np.ndarray, hp: SimpleNamespace) -> dict[str, Any]:
        return {n: moment_like(theta, initial_value(self, n, hp, theta))
                for n in self.kept_moments(hp)}  # fmt: skip

    def _step_size(self, hp: Any, state: Any) -> Any:
        """Each coordinate's step size after the step that ``hp`` (at state.t) describes."""
        return hp.lr

    # -- construction ------------------------------------------------------------------

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "lr" and isinstance(getattr(self, f.name), Schedule):
                continue  # a schedule: each value is checked at the step that uses it
            if "interval" in f.metadata:
                value = check_in_interval(f.name, getattr(self, f.name), f.metadata["interval"])
                object.__setattr__(self, f.name, value)  # the checked value, once, at creation
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(
                f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {self.nonfinite!r}"
            )
        if self.impl not in IMPLEMENTATIONS:
            raise ValueError(f"impl must be one of {', '.join(IMPLEMENTATIONS)}, got {self.impl!r}")
        if self.impl == "fused":
            backend = step_backend("fused")
            if backend is None or not backend.available():
                reason = backend.unavailable_reason() if backend else "no fused backend"
                raise ImportError(
                    f"impl='fused' needs numba ({reason}); install it with "
                    "pip install 'steplab[fast]', or use impl='auto' or impl='numpy'"
                )

    @classmethod
    def hyperparameters(cls) -> dict[str, dataclasses.Field]:
        """The tunable fields (name -> dataclass field with ``interval`` and ``doc``), in the
        algorithm's order with the inherited ``weight_decay`` last."""
        tunable = [f for f in dataclasses.fields(cls) if "interval" in f.metadata]
        tunable.sort(key=lambda f: f.name == "weight_decay")  # stable: keeps the rest in order
        return {f.name: f for f in tunable}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.KIND not in KINDS:
            raise TypeError(f"{cls.__name__}.KIND must be one of {KINDS}, got {cls.KIND!r}")
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
        own = own_pieces(cls.DECOUPLED_WEIGHT_DECAY, cls.RULE_DECAYS_WEIGHTS)
        cls._before = tuple(p for p in cls.CHAIN if not p.after) + own
        cls._after = tuple(p for p in cls.CHAIN if p.after)
        cls.NEEDS_GRAD_NORM = any(p.needs_grad_norm for p in cls.CHAIN)

    @classmethod
    def pieces(cls) -> tuple[tuple[Piece, ...], tuple[Piece, ...]]:
        """The element-wise pieces ``(before, after)`` the rule runs between (see
        :mod:`steplab.optim.pieces`); a piece whose ``switch`` is off in ``hp`` is skipped."""
        return cls._before, cls._after

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
        names = [f.name for f in dataclasses.fields(self) if f.init]
        unknown = set(changes) - set(names)
        if unknown:
            raise ValueError(
                f"{self.name} has no hyperparameter {sorted(unknown)}; use {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)

    def config(self) -> dict[str, Any]:
        """JSON-ready description: name and every hyperparameter."""
        values = {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue  # the caches
            value = getattr(self, f.name)
            if isinstance(value, Schedule):
                value = value.config()
            values[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return {"name": self.name, **values}

    # -- the contract ------------------------------------------------------------------

    def init(self, theta: np.ndarray) -> State:
        """A fresh, mutable state for :meth:`step` (moments as the seed sets them, ``t = 0``)."""
        check_step_arrays(theta)
        # Broadcasting now makes a misfit fail here, not at the first step.
        hp = SimpleNamespace(**self.declared_for(theta.shape))
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
        declared = self.declared_for(np.shape(theta))
        t = state.t + 1
        norm = None
        if self.NEEDS_GRAD_NORM and isinstance(grad, np.ndarray):
            norm = math.sqrt(sum_of_squares(grad))
        hp, scalars = self.prepare_step(declared, t, state, ops, grad_norm=norm)
        theta_new, moments = self.apply_rule(ops, hp, theta, grad, state)
        return theta_new, self.state_type(t=t, **scalars, **moments)

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State, *,
             grad_norm: float | np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """One iteration of the loop body: updates ``theta`` and ``state`` in place.

        ``grad_norm``: for an optimizer that clips by the gradient's global norm
        (``NEEDS_GRAD_NORM``) when theta is one of several parameters, the norm over all
        of them; by default ‖grad‖ (one reduction pass). Others ignore it. For K runs
        stacked as the rows of theta, an array (K, 1) of each run's own norm (then NumPy's
        whole arrays take the step)."""
        grad = check_step_arrays(theta, grad)
        plan = self._plan(theta.shape)
        _check_state(theta, state, self, plan.expected)
        t = state.t + 1
        scalars: dict[str, Any] = {}
        check = self.nonfinite != "propagate"
        if self.NEEDS_GRAD_NORM:  # one reduction over ĝ before the pass
            if grad_norm is None:
                squares = sum_of_squares(grad)
                # a finite Σĝ² means every ĝ is finite: the pass need not check again
                check = check and not math.isfinite(squares)
                grad_norm = math.sqrt(squares)
            hp, scalars = self.prepare_step(plan.declared, t, state, NUMPY_OPS, grad_norm=grad_norm)
        elif plan.fixed is not None:  # no schedule, no per-step scalars: prepared once
            hp = plan.fixed
        elif plan.namespace is not None:  # no schedule: only the step scalars change
            hp, scalars = self._prepare_with_plan(plan, t, state)
        else:  # a bad lr(t) raises here, before anything changes
            hp, scalars = self.prepare_step(plan.declared, t, state, NUMPY_OPS)
        backend = None
        if isinstance(grad_norm, np.ndarray):  # per-run norms: the kernel takes one number
            pass
        elif self.impl == "fused" or (self.impl == "auto" and theta.size >= FUSED_MIN_SIZE):
            backend = self._fused_backend(theta, grad, state, plan.declared)  # (a call costs)
        finite = True
        if backend:
            try:
                # the kernel checks ĝ first, in the same call, and writes nothing if it
                # holds NaN or inf
                finite = backend.step(self, plan.declared, hp, theta, grad, state, check=check)
                if finite:
                    state.impl = "fused"
            except backend.CompileError as exc:  # nothing written: NumPy takes the step
                if self.impl == "fused":
                    raise
                backend.warn_slow_path(str(exc))
                backend = None
        if not backend:
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
        if not backend:
            if theta.dtype.char == "f":  # float32 steps in float32
                hp = plan.fixed_float32 if hp is plan.fixed else in_dtype(hp, np.float32)
            theta_new, moments = self._run_rule(NUMPY_OPS, hp, theta, grad, state, cast=False)
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
        declared = self.declared_for(state.shape)
        t = max(state.t, 1)
        values = {**declared, "lr": self.lr_at(t)}
        # The scalar state after the step: rules' step sizes do not depend on it (Nadam's
        # running product only weighs ĝ against s).
        now = SimpleNamespace(**{k: getattr(state, k) for k in self.SCALAR_STATE})
        values.update(self.step_scalars(NUMPY_OPS, SimpleNamespace(**values), t, now))
        moments = SimpleNamespace(
            **{name: _float64(getattr(state, name, None)) for name in self.moment_names()}
        )
        size = self._step_size(SimpleNamespace(**values), moments)
        return np.broadcast_to(size, state.shape).astype(state.dtype)

    # -- the protocol every backend uses (see the module docstring) ----------------------

    def declared_for(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The declared hyperparameters, ready to combine with an array of ``shape``
        (float64; cached per shape: read it, never change it).

        Scalars stay Python floats; an array of shape (K,) becomes (K, 1, …) to line up
        with theta's leading axis, and must broadcast to theta's shape. Booleans stay
        Python bools, and each name in ``OFF_WHEN_ZERO`` adds a static flag ``<name>_on``.
        ``lr`` may be a schedule (``prepare_step`` evaluates it at t).
        """
        return self._plan(shape).declared

    def lr_at(self, t: int) -> Any:
        """The step size α at step ``t`` (1, 2, …): ``lr`` itself, or its schedule's value
        there, checked to be a finite number ≥ 0."""
        lr = getattr(self, "lr", None)
        return scheduled_lr(self, t) if isinstance(lr, Schedule) else lr

    def prepare_step(self, declared: dict[str, Any], t: Any, state: Any, ops: Ops,
                     grad_norm: Any = None) -> PreparedStep:  # fmt: skip
        """Step ``t``'s values: ``(hp, scalars)``.

        ``grad_norm``: ĝ's global norm over every parameter the step moves, which an
        optimizer with ``NEEDS_GRAD_NORM`` (a chain that clips by global norm) needs, and
        others ignore; without it such an optimizer raises ValueError.

        ``hp`` (a NamedTuple of :func:`step_values_type`) holds the ``declared``
        hyperparameters with ``lr`` at step ``t`` and the rule's per-step scalars
        (``step_scalars``, computed with ``ops``: Python floats for numbers, the backend's
        arrays for traced values); ``scalars`` the optimizer's ``SCALAR_STATE`` after the
        step, read from ``state`` (anything with those attributes) before it.
        """
        values = dict(declared)
        if isinstance(values.get("lr"), Schedule):
            values["lr"] = scheduled_lr(self, t)
        if self.NEEDS_GRAD_NORM:
            if grad_norm is None:
                raise ValueError(
                    f"{self.name} clips by the global norm of the gradient: pass "
                    "grad_norm=‖ĝ‖ (over every parameter) to prepare_step"
                )
            values["clip_divisor"], values["clip_factor"] = clip_numbers(
                grad_norm, values["clip_norm"], ops)  # fmt: skip
        scalars: dict[str, Any] = {}
        if self._has_step_scalars:
            before = _NO_SCALAR_STATE
            if self.SCALAR_STATE:
                before = SimpleNamespace(**{k: getattr(state, k) for k in self.SCALAR_STATE})
            values.update(self.step_scalars(ops, SimpleNamespace(**values), t, before))
            if self.SCALAR_STATE:
                scalars = {k: values[k] for k in self.SCALAR_STATE}
        return PreparedStep(step_values_type(type(self), tuple(values))(*values.values()), scalars)

    def apply_rule(self, ops: Ops, hp: Any, theta: Any, grad: Any, state: Any,
                   cast: bool = True) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        """The rule on whole arrays: ``(new θ, {moment: new value})`` for the moments
        ``state`` holds (its attributes; a missing or None one is switched off and left
        out), weight decay included, nothing mutated.

        Computes in the step's arithmetic (:func:`compute_dtype` for NumPy arrays, the
        arrays' own for other frameworks); with ``cast``, results in the inputs' dtypes
        (``step`` skips it: writing into the arrays casts).
        """
        if isinstance(theta, np.ndarray) and theta.dtype.char == "f":  # compute_dtype: float32
            hp = in_dtype(hp, np.float32)
        return self._run_rule(ops, hp, theta, grad, state, cast)

    def _run_rule(self, ops: Ops, hp: Any, theta: Any, grad: Any, state: Any,
                  cast: bool) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        """:meth:`apply_rule` with ``hp`` already in the compute dtype."""
        # float16 computes in float64 (float32 and float64 as they are; other frameworks'
        # arrays in their own dtype)
        widen = isinstance(theta, np.ndarray) and theta.dtype.char not in ("f", "d")
        x, g = (_opmath(theta), _opmath(grad)) if widen else (theta, grad)
        start = x
        for piece in self._before:  # weight decay, a chain's clipping
            if piece.switch is None or getattr(hp, piece.switch):
                x, g = piece.function(ops, hp, x, g)
        names = self.moment_names()
        held = [getattr(state, name, None) for name in names]
        theta_new, *new = type(self).rule(ops, hp, x, g, *(map(_opmath, held) if widen else held))
        for piece in self._after:
            if piece.switch is None or getattr(hp, piece.switch):
                theta_new = piece.function(ops, hp, start, theta_new, g)
        if not cast:
            return theta_new, {
                name: value for name, old, value in zip(names, held, new, strict=True)
                if old is not None
            }  # fmt: skip
        out = {
            name: None if old is None else _like(value, old)
            for name, old, value in zip(names, held, new, strict=True)
        }
        return _like(theta_new, theta), out

    # -- the machinery behind step ---------------------------------------------------------

    def _prepare_with_plan(self, plan: _ShapePlan, t: int, state: Any) -> tuple[Any, dict]:
        """:meth:`prepare_step` for NumPy without a schedule, reusing what ``plan`` holds
        (the namespace step_scalars reads, the step values' type): the same values."""
        before = _NO_SCALAR_STATE
        if self.SCALAR_STATE:
            before = SimpleNamespace(**{k: getattr(state, k) for k in self.SCALAR_STATE})
        values = plan.declared | self.step_scalars(NUMPY_OPS, plan.namespace, t, before)
        step_type = plan.step_type
        if step_type is None or len(step_type._fields) != len(values):
            step_type = plan.step_type = step_values_type(type(self), tuple(values))
        scalars = {k: values[k] for k in self.SCALAR_STATE} if self.SCALAR_STATE else _NO_SCALARS
        return step_type(*values.values()), scalars  # a plain pair: this runs at every step

    def _plan(self, shape: tuple[int, ...]) -> _ShapePlan:
        """What does not change from step to step for theta of ``shape`` (cached in
        ``_memo``): on a tiny array this Python is most of a step's time."""
        key = tuple(shape)
        plan = self._memo.by_shape.get(key)
        if plan is None:
            declared = self._declare(key)
            expected = frozenset(self.kept_moments(SimpleNamespace(**declared)))
            fixed = fixed32 = None
            if not self._has_step_scalars and not isinstance(declared.get("lr"), Schedule):
                fixed = step_values_type(type(self), tuple(declared))(**declared)
                if not any(isinstance(v, np.ndarray) for v in fixed):
                    fixed32 = in_dtype(fixed, np.float32)
                else:
                    fixed = None  # per-configuration arrays: prepared at each step
            plan = self._memo.by_shape[key] = _ShapePlan(declared, expected, fixed, fixed32)
        return plan

    def _declare(self, shape: tuple[int, ...]) -> dict[str, Any]:
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
        return values

    def _fused_backend(self, theta: np.ndarray, grad: np.ndarray, state: State,
                       declared: dict) -> Any:  # fmt: skip
        """The fused step backend if this step, which ``impl`` and the size send there, can
        take it, else None (``impl="fused"`` raises instead)."""
        backend = step_backend("fused")
        if backend is None:
            reason = "no fused step backend is registered"
        else:
            reason = backend.why_not(self, theta, grad, state, declared)
            if reason is None:
                return backend
        if self.impl == "fused":
            raise ValueError(f"{self.name}: impl='fused' cannot run this step: {reason}")
        return None


_STEP_VALUE_TYPES: dict[tuple, type] = {}
_NO_SCALAR_STATE = SimpleNamespace()  # what step_scalars gets without SCALAR_STATE (only read)
_NO_SCALARS: dict[str, Any] = {}  # the new scalar state without SCALAR_STATE (only read)


def step_values_type(cls: type, fields: tuple[str, ...]) -> type:
    """The NamedTuple type of ``cls``'s step values with ``fields`` (cached: numba and JAX
    see one type per optimizer and configuration of switches)."""
    key = (cls, fields)
    if key not in _STEP_VALUE_TYPES:
        name = f"{cls.__name__}Hyper{len(_STEP_VALUE_TYPES)}"
        # a module attribute, so that tools which look a type up by name (numba's parallel
        # lowering, pickle) find it
        _STEP_VALUE_TYPES[key] = globals()[name] = collections.namedtuple(name, fields)
    return _STEP_VALUE_TYPES[key]


def compute_dtype(theta: Any) -> Any:
    """The dtype a step on NumPy array ``theta`` computes in: float32 for float32 (as torch
    does: the data stays in the type it is stored in, so a step moves 4-byte numbers and
    vectorizes twice as wide), float64 for float64 and float16 (no float16 arithmetic:
    it is rounded once, when stored). None for other frameworks' arrays."""
    if not isinstance(theta, np.ndarray):
        return None
    return np.dtype(np.float32) if theta.dtype == np.float32 else np.dtype(np.float64)


def in_dtype(hp: Any, dtype: Any) -> Any:
    """``hp`` (step values, a NamedTuple) with its numbers rounded to ``dtype``: the
    scalars the fused kernels receive, so that the NumPy rule multiplies by the same
    float32 values (switches stay bools)."""
    return type(hp)(*(
        v if isinstance(v, (bool, np.bool_)) else
        np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) else np.dtype(dtype).type(v)
        for v in hp
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


def sum_of_squares(grad: np.ndarray) -> float:
    """Σĝ² of a NumPy array in float64 (‖ĝ‖²): one pass. The fused backend's parallel
    reduction where it is registered and available (then the NumPy and the fused step use
    the same number, and so give the same bits), else NumPy."""
    backend = step_backend("fused")
    if backend is not None and backend.available() and hasattr(backend, "sum_of_squares"):
        return float(backend.sum_of_squares(grad))
    flat = np.asarray(grad, dtype=np.float64).reshape(-1)
    return float(np.dot(flat, flat))


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


def initial_value(optimizer: Optimizer, name: str, hp: Any, theta: Any) -> Any:
    """Moment ``name``'s value before the first step: ``optimizer.initial_moment``'s
    constant, or ``theta`` itself where that is :data:`THETA0` (every backend fills its
    moments from this)."""
    value = optimizer.initial_moment(name, hp)
    return theta if isinstance(value, str) and value == THETA0 else value


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


@overload
def check_step_arrays(theta: Any, grad: None = None, *,
                      dtypes: tuple[str, ...] | None = None) -> None: ...  # fmt: skip
@overload
def check_step_arrays(theta: Any, grad: Any, *,
                      dtypes: tuple[str, ...] | None = None) -> np.ndarray: ...  # fmt: skip
def check_step_arrays(theta: Any, grad: Any = None, *,
                      dtypes: tuple[str, ...] | None = None) -> np.ndarray | None:  # fmt: skip
    """The guard rails every NumPy ``init``/``step`` puts on its inputs (element-wise and
    matrix optimizers alike), raising a message that names the problem: ``theta`` must be a
    writeable NumPy array of a floating dtype (one of ``dtypes`` when given: the matrix
    rules take float32 and float64 only), and ``grad``, when given, theta's shape and dtype.
    Returns ``grad`` as a NumPy array (``None`` without one)."""
    if not isinstance(theta, np.ndarray):
        raise TypeError(
            f"theta must be a NumPy array (it is updated in place), got {type(theta).__name__}"
        )
    if theta.dtype.kind != "f" or (dtypes is not None and theta.dtype.name not in dtypes):
        listed = ", ".join(dtypes or ("float16", "float32", "float64"))
        raise TypeError(f"theta must have a floating dtype ({listed}), got {theta.dtype}")
    if not theta.flags.writeable:
        raise ValueError("theta is read-only; the optimizer updates it in place")
    if grad is None:
        return None
    grad = np.asarray(grad)
    if grad.shape != theta.shape:
        raise ValueError(f"grad has shape {grad.shape} but theta has shape {theta.shape}")
    if grad.dtype != theta.dtype:
        raise TypeError(
            f"grad has dtype {grad.dtype} but theta has dtype {theta.dtype}; "
            f"cast one of them (the optimizer keeps theta's dtype)"
        )
    return grad


def _check_state(theta: np.ndarray, state: Any, optimizer: Optimizer,
                 expected: frozenset[str]) -> None:  # fmt: skip
    if not isinstance(state, State):
        raise TypeError(f"state must come from {optimizer.name}.init(theta), got {state!r}")
    made_by = getattr(state, "made_by", None)
    if made_by != optimizer.name:
        raise ValueError(f"this state was made by {made_by}.init, not by {optimizer.name}.init")
    # Options that add or remove moments (amsgrad, centered, momentum) must match; each
    # moment is an array like theta. (One pass: this runs at every step.)
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
