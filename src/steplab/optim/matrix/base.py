"""Per-tensor optimizers: a rule that sees a whole tensor, written once, run on any array library.

An element-wise rule (``adam_rule``) sees one coordinate at a time; a *per-tensor* rule sees a
whole weight matrix and may multiply it, transpose it, reduce it along an axis or
eigendecompose it. Such a rule is still written once, in the paper's symbols and the order of
its pseudo-code, over a :class:`~steplab.optim.matrix.ops.MatrixOps` table::

    def muon_rule(ops, hp, t, theta, g, B): ... return theta, {"B": B}

``t`` is the step count (1, 2, …), ``theta`` and ``g`` have the configurations as a leading
axis (``(K, m, n)`` for a weight of shape ``(m, n)``), the named state arrays likewise, with the
shapes the optimizer declares in :meth:`MatrixOptimizer.state_shapes` (Adafactor's row and
column factors are ``(m, 1)`` and ``(1, n)``, not ``(m, n)``). K configurations are a batch of
matrix products, so K configurations give the bits of K single runs.

A :class:`MatrixOptimizer` runs its rule on one NumPy tensor (``init``/``step``/``update``
like every steplab optimizer); :class:`steplab.optim.matrix.Routed` runs it on the matrices of
a flat parameter vector and an element-wise optimizer on the rest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from steplab.optim.base import (
    NONFINITE_POLICIES,
    PreparedStep,
    State,
    check_in_interval,
    check_step_arrays,
    hyper,
)
from steplab.optim.matrix.ops import NUMPY_MATRIX_OPS, MatrixOps
from steplab.optim.ops import exact_pow

__all__ = ["MatrixOptimizer", "hyper", "option"]


def option(default: Any, choices: tuple | None = None, doc: str = "", *, kind: str = "") -> Any:
    """A static option (the same for every configuration): one of ``choices``, or with
    ``kind="int"`` a whole number >= 0, or with ``kind="float_or_none"`` None or a number >= 0."""
    meta = {"doc": doc, "choices": choices, "kind": kind}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class MatrixOptimizer:
    """Base class of per-tensor optimizers: hyperparameters, declared state, the NumPy step.

    A subclass gives ``rule`` (see the module doc), ``state_shapes`` and, if its rule cannot
    take a vector, ``NEEDS_MATRIX = True``. ``hyper`` fields may be arrays of K values (one
    per configuration: ``theta`` then has the configurations as its first axis); ``option``
    fields are the same for all.

    ``nonfinite`` as for the element-wise optimizers: ``"raise"`` raises ``FloatingPointError``
    and changes nothing, ``"skip"`` changes nothing and counts ``state.skipped``,
    ``"propagate"`` applies the step (as torch.optim does).
    """

    name: ClassVar[str] = "matrix"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    NEEDS_MATRIX: ClassVar[bool] = False  # True: refuses tensors that are not 2-D
    # The protocol's class attributes (steplab.optim.base): a rule over whole tensors, no
    # scalar state, no off-switches; weight decay, where an optimizer has it, is the rule's.
    KIND: ClassVar[str] = "per_tensor"
    SCALAR_STATE: ClassVar[dict[str, float]] = {}
    OFF_WHEN_ZERO: ClassVar[tuple[str, ...]] = ()
    DECOUPLED_WEIGHT_DECAY: ClassVar[bool] = True

    nonfinite: str = dataclasses.field(
        default="raise", metadata={"doc": "raise | skip | propagate"}
    )

    # -- what a subclass writes ------------------------------------------------------------

    # The rule: rule(ops, hp, t, theta, g, **state) -> (θ, {name: array}), one step on whole
    # tensors whose first axis holds the configurations (see the module doc).
    rule: ClassVar[Callable[..., tuple]]

    def state_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """The state arrays for a tensor of ``shape`` (no configuration axis): name -> shape."""
        raise NotImplementedError

    def initial_state(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A state array before the first step (default zeros)."""
        return np.zeros(shape, dtype=dtype)

    # -- construction ----------------------------------------------------------------------

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "interval" in f.metadata:
                checked = check_in_interval(f.name, value, f.metadata["interval"])
                object.__setattr__(self, f.name, checked)
            elif f.metadata.get("choices") is not None and value not in f.metadata["choices"]:
                allowed = ", ".join(map(repr, f.metadata["choices"]))
                raise ValueError(f"{self.name}: {f.name} must be one of {allowed}, got {value!r}")
            elif f.metadata.get("kind") == "int" and not (
                isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0
            ):
                raise ValueError(
                    f"{self.name}: {f.name} must be a whole number >= 0, got {value!r}"
                )
            elif (
                f.metadata.get("kind") == "int_or_none"
                and value is not None
                and (not isinstance(value, (int, np.integer)) or isinstance(value, bool))
            ):
                raise ValueError(f"{self.name}: {f.name} must be a whole number or None")
            elif f.metadata.get("kind") == "float_or_none" and value is not None:
                checked = check_in_interval(f.name, value, "[0, inf)")
                if not isinstance(checked, float):
                    raise ValueError(f"{self.name}: {f.name} must be one number or None")
                object.__setattr__(self, f.name, checked)
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(
                f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {self.nonfinite!r}"
            )

    @classmethod
    def hyperparameters(cls) -> dict[str, dataclasses.Field]:
        """Fields that may differ between configurations (name -> field)."""
        return {f.name: f for f in dataclasses.fields(cls) if "interval" in f.metadata}

    @classmethod
    def options(cls) -> dict[str, dataclasses.Field]:
        """The static options (the same for every configuration: ``ns_steps``, ``nesterov``,
        ``graft``, …): name -> field; ``nonfinite`` is not among them."""
        return {f.name: f for f in dataclasses.fields(cls)
                if "choices" in f.metadata and f.name != "nonfinite"}  # fmt: skip

    @classmethod
    def parse_option(cls, name: str, text: str) -> Any:
        """An option's value from its text on a command line (``"7"``, ``"true"``, ``"none"``,
        ``"bfloat16"``); the constructor then checks it. ValueError naming the options for an
        unknown name, and the allowed values for a text that is none of them."""
        options = cls.options()
        if name not in options:
            raise ValueError(f"{cls.name} has no option {name!r}; its options are: "
                             f"{', '.join(options)}")  # fmt: skip
        meta, word = options[name].metadata, text.strip()
        words: dict[str, Any] = {"true": True, "false": False, "none": None}
        if meta["choices"] is not None:
            for choice in meta["choices"]:
                if word.lower() == str(choice).lower():
                    return choice
            allowed = ", ".join(str(c).lower() if isinstance(c, bool) else str(c)
                                for c in meta["choices"])  # fmt: skip
            raise ValueError(f"{cls.name}: {name} must be one of {allowed}, got {word!r}")
        if meta["kind"] in ("int", "int_or_none"):
            if meta["kind"] == "int_or_none" and word.lower() == "none":
                return None
            try:
                return int(word)
            except ValueError:
                problem = f"{cls.name}: {name} must be a whole number, got {word!r}"
                raise ValueError(problem) from None
        if meta["kind"] == "float_or_none":
            if word.lower() in words:
                return words[word.lower()]
            try:
                return float(word)
            except ValueError:
                problem = f"{cls.name}: {name} must be a number or none, got {word!r}"
                raise ValueError(problem) from None
        raise ValueError(f"{cls.name}: {name} cannot be read from text")

    @classmethod
    def like(cls, preset: str = "seed", **overrides: Any) -> MatrixOptimizer:
        """The optimizer as ``preset`` defines it (``"seed"`` = the paper, ``"torch"``, …)."""
        presets = {"seed": {}, **cls.PRESETS}
        if preset not in presets:
            raise ValueError(
                f"{cls.name} has no preset {preset!r}; available: {', '.join(presets)}"
            )
        return cls(**{**presets[preset], **overrides})

    def replace(self, **changes: Any) -> MatrixOptimizer:
        """A copy with some fields changed (validated like the constructor)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{self.name} has no option {unknown}; use {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def config(self) -> dict[str, Any]:
        """JSON-ready description: name and every field."""
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return {"name": self.name, **values}

    # -- hyperparameters for a step ----------------------------------------------------------

    def configurations(self) -> int | None:
        """K if some hyperparameter holds one value per configuration, else None."""
        sizes = {np.size(getattr(self, n)) for n in self.hyperparameters()
                 if isinstance(getattr(self, n), np.ndarray)}  # fmt: skip
        if len(sizes) > 1:
            raise ValueError(f"{self.name}: hyperparameter arrays differ in length: {sizes}")
        return sizes.pop() if sizes else None

    def hyper_values(self, tensor_ndim: int, dtype: Any = np.float64) -> SimpleNamespace:
        """Every field, with hyperparameter arrays shaped ``(K, 1, …)`` to broadcast against a
        ``(K, *shape)`` tensor; in ``dtype`` (float32 tensors step in float32)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value.reshape((-1,) + (1,) * tensor_ndim).astype(dtype)
            elif "interval" in f.metadata and not isinstance(value, bool):
                value = float(np.dtype(dtype).type(value)) if dtype == np.float32 else value
            values[f.name] = value
        values["float_eps"] = float(np.finfo(dtype).eps)
        return SimpleNamespace(**values)

    # -- the protocol every backend uses (steplab.optim.base's module doc) --------------------

    def declared_for(self, shape: tuple[int, ...], dtype: Any = np.float64) -> dict[str, Any]:
        """The declared hyperparameters for one configuration's tensor of ``shape``: every
        field, arrays of K values shaped ``(K, 1, …)``, in ``dtype``'s precision, and
        ``float_eps`` (the NumPy dtype's machine epsilon)."""
        return vars(self.hyper_values(len(shape), np.dtype(dtype)))

    def prepare_step(self, declared: dict[str, Any], t: Any, state: Any, ops: Any) -> PreparedStep:
        """Step ``t``'s values ``hp``: the declared ones and ``t`` itself (the rules compute
        their own powers of t); no scalar state."""
        return PreparedStep(SimpleNamespace(**declared, t=t), {})

    def apply_rule(self, ops: MatrixOps, hp: Any, theta: Any, grad: Any,
                   state: Any) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        """The rule on whole tensors with the configurations as the first axis: ``(new θ,
        {state name: new value})`` for the arrays ``state`` holds (as attributes), nothing
        mutated."""
        arrays = {k: getattr(state, k) for k in self.state_shapes(tuple(theta.shape[1:]))}
        return type(self).rule(ops, hp, hp.t, theta, grad, **arrays)

    def check_tensor(self, shape: tuple[int, ...], name: str = "theta") -> None:
        """Raise ValueError if this optimizer cannot take a tensor of ``shape`` (the message
        names it and says how to route it elsewhere)."""
        if len(shape) == 0 or (self.NEEDS_MATRIX and len(shape) != 2):
            raise ValueError(
                f"{self.name} takes 2-D weight matrices only, but {name} has shape {tuple(shape)}; "
                "route it to an element-wise optimizer (steplab.optim.matrix.Routed, or "
                "labels/a predicate in steplab.torch.matrix.route / steplab.jax.matrix)"
            )

    # -- the contract on one NumPy tensor --------------------------------------------------

    def init(self, theta: np.ndarray, name: str = "theta") -> State:
        """A fresh state for ``theta`` (one tensor; with hyperparameter arrays of K values,
        ``theta``'s first axis holds the K configurations)."""
        _check_theta(theta)
        K = self.configurations()
        shape = theta.shape if K is None else theta.shape[1:]
        if K is not None and (theta.ndim == 0 or theta.shape[0] != K):
            raise ValueError(
                f"{self.name}: hyperparameter arrays hold {K} configurations, so theta's first "
                f"axis must have length {K}; theta has shape {theta.shape}"
            )
        self.check_tensor(shape, name)
        arrays = self.init_arrays(shape, theta.dtype, K)
        return State(t=0, made_by=self.name, shape=theta.shape, dtype=theta.dtype.str, **arrays)

    def init_arrays(self, shape: tuple[int, ...], dtype: Any, K: int | None) -> dict:
        """The state arrays for a tensor of ``shape``, with a leading axis of K if K is given."""
        arrays = {}
        for key, state_shape in self.state_shapes(tuple(shape)).items():
            one = self.initial_state(key, state_shape, dtype)
            arrays[key] = one if K is None else np.repeat(one[None], K, axis=0)
        return arrays

    def update(self, theta: Any, grad: Any, state: Any, ops: MatrixOps = NUMPY_MATRIX_OPS,
               batched: bool | None = None) -> tuple[Any, State]:  # fmt: skip
        """One step as a pure function: ``(new_theta, new_state)``; nothing is mutated. No
        checks and no ``nonfinite`` policy: the algorithm itself."""
        if batched is None:
            batched = self.configurations() is not None
        arrays = {k: getattr(state, k) for k in self.state_shapes(_tensor_shape(theta, batched))}
        t = state.t + 1
        new_theta, new = self.apply(ops, t, theta, grad, arrays, batched)
        fields = {k: v for k, v in vars(state).items() if k not in new}
        return new_theta, State(**{**fields, "t": t, **new})

    def apply(self, ops: MatrixOps, t: Any, theta: Any, grad: Any, arrays: dict,
              batched: bool) -> tuple[Any, dict]:  # fmt: skip
        """The rule on one tensor: adds the configuration axis if absent, removes it after."""
        if not batched:
            theta, grad = theta[None], grad[None]
            arrays = {k: v[None] for k, v in arrays.items()}
        # NumPy float32 steps in float32; other libraries' arrays keep their own dtype
        # (Python floats) and only read the dtype's epsilon
        dtype = getattr(theta, "dtype", np.float64)
        if not isinstance(theta, np.ndarray):
            declared = {**self.declared_for(theta.shape[1:]), "float_eps": _float_eps(theta)}
        else:
            declared = self.declared_for(theta.shape[1:], np.float32 if dtype == np.float32
                                         else np.float64)  # fmt: skip
        hp, _ = self.prepare_step(declared, t, arrays, ops)
        new_theta, new = self.apply_rule(ops, hp, theta, grad, SimpleNamespace(**arrays))
        if not batched:
            new_theta = new_theta[0]
            new = {k: v[0] for k, v in new.items()}
        return new_theta, new

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State) -> np.ndarray:
        """One iteration: updates ``theta`` and ``state`` in place, returns ``theta``."""
        grad = _check_grad(theta, grad)
        self.check_state(theta, state)
        t = state.t + 1
        if self.nonfinite != "propagate" and not np.isfinite(grad).all():
            if self.nonfinite == "raise":
                raise FloatingPointError(
                    f"{self.name}: the gradient holds NaN or inf at step {t}; theta and the "
                    "state are unchanged (nonfinite='skip' skips such steps, "
                    "nonfinite='propagate' applies them)"
                )
            state.skipped = getattr(state, "skipped", 0) + 1
            return theta
        batched = self.configurations() is not None
        shape = _tensor_shape(theta, batched)
        arrays = {k: getattr(state, k) for k in self.state_shapes(shape)}
        new_theta, new = self.apply(NUMPY_MATRIX_OPS, t, theta, grad, arrays, batched)
        theta[...] = new_theta
        for key, value in new.items():
            getattr(state, key)[...] = value
        state.t = t
        return theta

    def check_state(self, theta: np.ndarray, state: Any, batched: bool | None = None) -> None:
        """Raise unless ``state`` was made by this optimizer, with these options, for a
        tensor like ``theta``."""
        if not isinstance(state, State):
            raise TypeError(f"state must come from {self.name}.init(theta), got {state!r}")
        made_by = getattr(state, "made_by", None)
        if made_by != self.name:
            raise ValueError(f"this state was made by {made_by}.init, not by {self.name}.init")
        if batched is None:
            batched = self.configurations() is not None
        lead = theta.shape[:1] if batched else ()
        expected = self.state_shapes(_tensor_shape(theta, batched))
        held = sorted(k for k, v in vars(state).items() if isinstance(v, np.ndarray))
        if held != sorted(expected):
            raise ValueError(
                f"this state holds {', '.join(held) or 'no arrays'}, but {self.name} with these "
                f"options keeps {', '.join(sorted(expected))} for a tensor of shape "
                f"{theta.shape}: it was made with other options; call init(theta) again"
            )
        for key, shape in expected.items():
            array = getattr(state, key)
            if array.shape != lead + shape or array.dtype != theta.dtype:
                raise ValueError(
                    f"state.{key} has shape {array.shape} and dtype {array.dtype}, but "
                    f"{self.name} needs {lead + shape} and {theta.dtype} for theta of shape "
                    f"{theta.shape}; call init(theta) again"
                )


# --------------------------------------------------------------------------------------
# Helpers rules share
# --------------------------------------------------------------------------------------


def _count(shape: tuple[int, ...], axes: int | tuple[int, ...]) -> int:
    """How many entries a reduction over ``axes`` (the last k, or a tuple) takes together."""
    picked = axes if isinstance(axes, tuple) else tuple(range(-axes, 0))
    return math.prod(shape[a] for a in picked)


def rms(ops: MatrixOps, x: Any, axes: int) -> Any:
    """Root mean square of each configuration's tensor (over the last ``axes`` axes):
    ‖x‖/√n, one pass over x (the square is never stored)."""
    return ops.norm(x, axes) / math.sqrt(_count(tuple(x.shape), axes))


def frobenius_norm(ops: MatrixOps, x: Any) -> Any:
    """‖X‖_F of each configuration's matrix, shaped ``(K, 1, 1)``."""
    return ops.norm(x, 2)


def power(ops: MatrixOps, base: Any, exponent: Any) -> Any:
    """``base ** exponent`` for per-step scalars: C's pow element by element on NumPy (so an
    array of K values gives the bits of K floats), the library's own elsewhere."""
    if ops is NUMPY_MATRIX_OPS:
        return exact_pow(base, exponent)
    return base**exponent


def _float_eps(theta: Any) -> float:
    """Machine epsilon of another library's array (torch spells its dtypes "torch.float32")."""
    return float(np.finfo(np.dtype(str(theta.dtype).rsplit(".", 1)[-1])).eps)


def _tensor_shape(theta: Any, batched: bool) -> tuple[int, ...]:
    shape = tuple(np.shape(theta))
    return shape[1:] if batched else shape


MATRIX_DTYPES = ("float32", "float64")  # the dtypes a NumPy matrix step takes


def _check_theta(theta: Any) -> None:
    check_step_arrays(theta, dtypes=MATRIX_DTYPES)


def _check_grad(theta: np.ndarray, grad: Any) -> np.ndarray:
    return check_step_arrays(theta, grad, dtypes=MATRIX_DTYPES)


def shape_factor(kind: str, m: int, n: int) -> float:
    """Muon's scale of the orthogonalized update for an m×n matrix (see muon.py)."""
    if kind == "rows/cols":
        return math.sqrt(max(1.0, m / n))
    if kind == "cols/rows":
        return math.sqrt(max(1.0, n / m))
    if kind == "match_rms":
        return 0.2 * math.sqrt(max(m, n))
    return 1.0
