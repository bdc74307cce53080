"""Parameter layouts and routing: which tensors of a flat θ go to a per-tensor optimizer.

A NumPy problem keeps its parameters in one flat row θ (``(d,)``, or ``(K, d)`` for K
configurations); only the problem knows that the first 30 numbers are a 5×6 weight matrix. A
:class:`ParameterLayout` says so: one :class:`Tensor` (name, shape, role) per parameter, in
θ's order. :class:`Routed` then runs a per-tensor optimizer (Muon, Adafactor, …) on the
routed matrices, as views into θ, and an element-wise optimizer (AdamW by default) on the rest.

The routing rule (:func:`default_route`), as torch's and optax's Muon examples do it: 2-D
weights of hidden layers go to the matrix optimizer; biases, gains, embeddings and the output
layer to the element-wise one. ``labels`` (name -> ``"matrix"`` or ``"other"``) or a
``predicate`` (Tensor -> bool) override it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from steplab.optim.base import Optimizer, State
from steplab.optim.matrix.base import MatrixOptimizer, _check_grad, _check_theta
from steplab.optim.matrix.ops import NUMPY_MATRIX_OPS

ROLES = ("hidden", "output", "embedding", "bias", "gain")
ROUTES = ("matrix", "other")


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One parameter inside a flat θ: its name, shape, role and first index."""

    name: str
    shape: tuple[int, ...]
    role: str = "hidden"
    start: int = 0

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclasses.dataclass(frozen=True)
class ParameterLayout:
    """The tensors of a flat θ, in θ's order (each starts where the one before ends)."""

    tensors: tuple[Tensor, ...]

    @classmethod
    def of(cls, entries: Any) -> ParameterLayout:
        """From ``[(name, shape), (name, shape, role), …]`` in θ's order; a tensor without a
        role is ``"hidden"`` if 2-D, else ``"bias"``."""
        tensors, start = [], 0
        for entry in entries:
            name, shape, *rest = entry
            shape = tuple(int(n) for n in shape)
            role = rest[0] if rest else ("hidden" if len(shape) == 2 else "bias")
            if role not in ROLES:
                raise ValueError(f"{name}: role must be one of {', '.join(ROLES)}, got {role!r}")
            tensors.append(Tensor(str(name), shape, role, start))
            start += math.prod(shape)
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}")
        return cls(tuple(tensors))

    @property
    def dim(self) -> int:
        return sum(t.size for t in self.tensors)

    def views(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Each tensor as a view ``(K, *shape)`` into θ of shape ``(K, d)``."""
        return {
            t.name: theta[:, t.start : t.start + t.size].reshape((theta.shape[0],) + t.shape)
            for t in self.tensors
        }


def default_route(tensor: Tensor) -> bool:
    """True (to the matrix optimizer) for 2-D weights of hidden layers."""
    return len(tensor.shape) == 2 and tensor.role == "hidden"


def route(layout: ParameterLayout, labels: Mapping[str, str] | None = None,
          predicate: Callable[[Tensor], bool] | None = None) -> dict[str, str]:  # fmt: skip
    """name -> ``"matrix"`` or ``"other"``: ``labels`` first, then ``predicate`` (default
    :func:`default_route`)."""
    labels = dict(labels or {})
    names = {t.name for t in layout.tensors}
    unknown = sorted(set(labels) - names)
    if unknown:
        raise ValueError(f"labels name no parameter {unknown}; the layout has {sorted(names)}")
    for name, label in labels.items():
        if label not in ROUTES:
            raise ValueError(f"label of {name} must be 'matrix' or 'other', got {label!r}")
    decide = predicate or default_route
    return {t.name: labels.get(t.name, "matrix" if decide(t) else "other") for t in layout.tensors}


@dataclasses.dataclass(frozen=True, eq=False)
class Routed:
    """A per-tensor optimizer on the routed tensors of a flat θ, an element-wise one on the rest.

    ``init(theta)``/``step(theta, grad, state)`` as every steplab optimizer, θ of shape ``(d,)``
    or ``(K, d)`` (K configurations: hyperparameter arrays of length K, or the same scalars for
    all). A tensor routed to an optimizer that cannot take it (Muon and a bias) is refused at
    ``init``, by name.
    """

    matrix: MatrixOptimizer
    layout: ParameterLayout
    other: Optimizer | None = None  # None: AdamW with its defaults
    labels: Mapping[str, str] | None = None
    predicate: Callable[[Tensor], bool] | None = None

    def __post_init__(self) -> None:
        if self.other is None:
            from steplab.optim.adam import AdamW

            object.__setattr__(self, "other", AdamW())
        routes = route(self.layout, self.labels, self.predicate)
        for t in self.layout.tensors:
            if routes[t.name] == "matrix":
                self.matrix.check_tensor(t.shape, f"parameter {t.name!r}")
        object.__setattr__(self, "routes", routes)
        # the element-wise optimizer never sees a non-finite gradient it must judge: Routed
        # applies the matrix optimizer's policy to the whole step first
        object.__setattr__(self, "_other_run", self.other.replace(nonfinite="propagate"))  # type: ignore[union-attr]

    @property
    def name(self) -> str:
        return f"{self.matrix.name}+{self.other.name}"  # type: ignore[union-attr]

    def hyperparameters(self) -> dict[str, Any]:
        """The matrix optimizer's: what a run varies by configuration (``lr=[…]`` on
        ``matrix``: K runs, each recorded with its value); the element-wise optimizer's are
        its own business (one value for all, or arrays of the same K given to it)."""
        return self.matrix.hyperparameters()

    def __getattr__(self, name: str) -> Any:
        # a run reads the hyperparameters it varies off the optimizer it runs: the matrix's
        if (
            name != "matrix"
            and not name.startswith("_")
            and name in type(self.matrix).hyperparameters()
        ):
            return getattr(self.matrix, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def replace(self, **changes: Any) -> Routed:
        """A copy with another ``nonfinite`` policy (the matrix optimizer's, which Routed
        applies to the whole step) or other values of the matrix optimizer's hyperparameters;
        the element-wise optimizer is changed on ``other``."""
        unknown = sorted(set(changes) - {"nonfinite"} - set(self.matrix.hyperparameters()))
        if unknown:
            raise ValueError(f"{self.name}: change matrix or other instead of {unknown}")
        if not changes:
            return self
        return dataclasses.replace(self, matrix=self.matrix.replace(**changes))

    def step_size(self, state: State) -> np.ndarray:
        """Not defined: a matrix step is no per-coordinate factor times a direction (a run
        records NaN)."""
        raise NotImplementedError(f"{self.name} has no per-coordinate step size")

    def config(self) -> dict[str, Any]:
        """JSON-ready: the two optimizers and the routes."""
        return {"name": self.name, "matrix": self.matrix.config(),
                "other": self.other.config(), "routes": dict(self.routes)}  # type: ignore[union-attr]  # fmt: skip

    def matrices(self) -> list[Tensor]:
        return [t for t in self.layout.tensors if self.routes[t.name] == "matrix"]

    def _other_index(self) -> np.ndarray:
        parts = [np.arange(t.start, t.start + t.size) for t in self.layout.tensors
                 if self.routes[t.name] == "other"]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)

    def _rows(self, theta: np.ndarray) -> np.ndarray:
        rows = theta[None] if theta.ndim == 1 else theta
        if rows.ndim != 2 or rows.shape[1] != self.layout.dim:
            raise ValueError(
                f"theta must have shape ({self.layout.dim},) or (K, {self.layout.dim}) for this "
                f"layout, got {theta.shape}"
            )
        K = self.matrix.configurations()
        if K is not None and K != rows.shape[0]:
            raise ValueError(
                f"{self.matrix.name}'s hyperparameter arrays hold {K} configurations but theta "
                f"has {rows.shape[0]} rows"
            )
        return rows

    def init(self, theta: np.ndarray) -> State:
        """A fresh state: each routed matrix's arrays (leading axis K) and the element-wise
        optimizer's state over the other coordinates."""
        _check_theta(theta)
        rows = self._rows(theta)
        K = rows.shape[0]
        tensors = {
            t.name: self.matrix.init_arrays(t.shape, theta.dtype, K) for t in self.matrices()
        }
        other_theta = np.ascontiguousarray(rows[:, self._other_index()])
        other = self.other.init(other_theta if theta.ndim == 2 else other_theta[0])  # type: ignore[union-attr]
        return State(t=0, made_by=self.name, shape=theta.shape, dtype=theta.dtype.str,
                     tensors=tensors, other=other)  # fmt: skip

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State) -> np.ndarray:
        """One step of both optimizers, in place. A non-finite gradient anywhere follows the
        matrix optimizer's ``nonfinite`` policy for the whole step."""
        grad = _check_grad(theta, grad)
        if getattr(state, "made_by", None) != self.name:
            raise ValueError(
                f"this state was made by {getattr(state, 'made_by', None)}, not by {self.name}"
            )
        rows, grad_rows = self._rows(theta), self._rows(grad)
        theta_views, grad_views = self.layout.views(rows), self.layout.views(grad_rows)
        for t in self.matrices():
            held = state.tensors.get(t.name)
            if held is None:
                raise ValueError(f"the state holds no arrays for {t.name!r}; call init again")
            self.matrix.check_state(theta_views[t.name], State(made_by=self.matrix.name, **held),
                                    batched=True)  # fmt: skip
        step_t = state.t + 1
        policy = self.matrix.nonfinite
        if policy != "propagate" and not np.isfinite(grad).all():
            if policy == "raise":
                raise FloatingPointError(
                    f"{self.name}: the gradient holds NaN or inf at step {step_t}; theta and "
                    "the state are unchanged (nonfinite='skip' skips such steps, "
                    "nonfinite='propagate' applies them)"
                )
            state.skipped = getattr(state, "skipped", 0) + 1
            return theta
        new = {}
        for t in self.matrices():  # every tensor's new values first: nothing half-written
            new[t.name] = self.matrix.apply(
                NUMPY_MATRIX_OPS, step_t, theta_views[t.name], grad_views[t.name],
                state.tensors[t.name], batched=True,
            )  # fmt: skip
        index = self._other_index()
        other_theta = np.ascontiguousarray(rows[:, index])
        other_grad = np.ascontiguousarray(grad_rows[:, index])
        if theta.ndim == 1:
            other_theta, other_grad = other_theta[0], other_grad[0]
        self._other_run.step(other_theta, other_grad, state.other)
        rows[:, index] = other_theta if theta.ndim == 2 else other_theta[None]
        for name, (value, arrays) in new.items():
            theta_views[name][...] = value
            for key, array in arrays.items():
                state.tensors[name][key][...] = array
        state.t = step_t
        return theta


def routed_on(matrix: MatrixOptimizer, problem: Any) -> Routed:
    """``matrix`` on the weight matrices of ``problem`` (its ``layout()``), AdamW on the rest:
    how ``steplab run muon --problem mlp`` and ``sl.minimize(problem, "muon")`` run a
    per-tensor optimizer. ValueError when the problem has no parameter layout."""
    layout = getattr(problem, "layout", None)
    if not callable(layout):
        raise ValueError(
            f"{matrix.name} is a per-tensor optimizer: it steps weight matrices, and the problem "
            f"{getattr(problem, 'name', problem)!r} has none (no parameter layout: its θ is one "
            "flat vector). Run it on an ML problem with a layout (--problem mlp, "
            "logistic_regression, …), or route explicitly with "
            "steplab.optim.matrix.Routed(optimizer, layout, labels=…/predicate=…)"
        )
    return Routed(matrix, layout())
