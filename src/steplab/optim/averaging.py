"""Weight averaging around any optimizer: EMA, SWA and Lookahead.

Each wrapper runs its base optimizer's step unchanged and keeps one more array in the
same state (so ``State.save``/``load`` checkpoint it with the base's moments):

- :class:`EMA`: an exponential moving average of the iterates, with or without bias
  correction (``optax.ema`` applied to the parameters);
- :class:`SWA`: the equal-weight average of the iterates from step ``start`` on, every
  ``every`` steps (``torch.optim.swa_utils.AveragedModel``);
- :class:`Lookahead`: every k steps, the slow weights move a fraction α towards the
  fast ones and the fast ones restart there (Zhang et al., 2019; ``optax.lookahead``).

EMA and SWA leave the trajectory alone and give a second point to evaluate at,
:meth:`averaged`; Lookahead changes the trajectory itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from steplab.optim.base import State, check_in_interval, hyper
from steplab.optim.registry import register_wrapper, wrapper_settings

_WRAPPER_FIELD = "wrapped_by"  # which wrapper (and configuration) a state carries


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Averaging:
    """A wrapper: ``base`` (any optimizer with ``init``/``step``) plus one array of state."""

    base: Any
    FIELD = "average"  # the wrapper's array in the state

    def __post_init__(self) -> None:
        if not (callable(getattr(self.base, "init", None)) and callable(
                getattr(self.base, "step", None))):  # fmt: skip
            raise TypeError(f"{type(self).__name__} wraps an optimizer, got {self.base!r}")
        for f in dataclasses.fields(self):
            if "interval" in f.metadata:
                value = check_in_interval(f.name, getattr(self, f.name), f.metadata["interval"])
                object.__setattr__(self, f.name, value)

    @property
    def name(self) -> str:
        return f"{self.base.name}+{type(self).__name__.lower()}"

    def config(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "base"}
        return {"name": self.name, "base": self.base.config(), **own}

    def init(self, theta: np.ndarray) -> State:
        state = self.base.init(theta)
        setattr(state, _WRAPPER_FIELD, self.name)
        setattr(state, self.FIELD, self.initial(theta))
        state.steps_seen = 0  # the wrapper's own count (the base's t may skip steps)
        return state

    def initial(self, theta: np.ndarray) -> np.ndarray:
        return np.zeros_like(theta)

    # -- what the training loop reads of an optimizer, answered by the base ------------

    def hyperparameters(self) -> dict[str, Any]:
        """The base's hyperparameters (the wrapper's own settings are not tuned per run)."""
        return self.base.hyperparameters()

    def __getattr__(self, name: str) -> Any:
        base = self.__dict__.get("base")  # (absent while the dataclass is being built)
        if base is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(base, name)  # the base's hyperparameters: ema.lr is the base's lr

    def replace(self, **changes: Any) -> Averaging:
        """A copy with ``changes``: the wrapper's own settings here, the rest on the base."""
        own = {f.name for f in dataclasses.fields(self)} - {"base"}
        mine = {k: v for k, v in changes.items() if k in own}
        theirs = {k: v for k, v in changes.items() if k not in own}
        base = self.base.replace(**theirs) if theirs else self.base
        return dataclasses.replace(self, base=base, **mine)

    def step_size(self, state: State) -> np.ndarray:
        return self.base.step_size(state)

    def eval_params(self, theta: np.ndarray, state: State) -> np.ndarray:
        """The point to evaluate at: :meth:`averaged`, or θ itself before the average
        holds an iterate (a new array)."""
        raise NotImplementedError

    #: the wrapper's counters in the state (SWA adds its own)
    COUNTS: ClassVar[tuple[str, ...]] = ("steps_seen",)

    def own_state_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A loaded state's fields without the wrapper's own, after checking those (for
        ``State.load``'s checks): this wrapper's name, its array (theta's shape and dtype,
        no NaN) and its counters (integers >= 0). ValueError names what is wrong."""
        if fields.get(_WRAPPER_FIELD) != self.name:
            held = fields.get(_WRAPPER_FIELD) or "no wrapper"
            raise ValueError(f"it holds the state of {held}, not of {self.name}")
        array = fields.get(self.FIELD)
        if not (
            isinstance(array, np.ndarray)
            and array.shape == fields.get("shape")
            and array.dtype == np.dtype(fields.get("dtype", "float64"))
            and not np.isnan(array).any()
        ):
            raise ValueError(f"{self.FIELD} must be an array of theta's shape and dtype, no NaN")
        for count in self.COUNTS:
            value = fields.get(count)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"{count} must be an integer >= 0, got {value!r}")
        own = {_WRAPPER_FIELD, self.FIELD, *self.COUNTS}
        return {k: v for k, v in fields.items() if k not in own}

    def _check(self, state: Any) -> None:
        if getattr(state, _WRAPPER_FIELD, None) != self.name:
            raise ValueError(
                f"this state belongs to {getattr(state, _WRAPPER_FIELD, None) or 'no wrapper'}"
                f", not to {self.name}: call {self.name}'s init(theta)"
            )

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State, *,
             grad_norm: Any = None) -> np.ndarray:  # fmt: skip
        self._check(state)  # before anything changes
        if grad_norm is None:
            self.base.step(theta, grad, state)
        else:  # a chain that clips by global norm, given its norm (per run in the loop)
            self.base.step(theta, grad, state, grad_norm=grad_norm)
        state.steps_seen += 1
        self.after_step(theta, state)
        return theta

    def after_step(self, theta: np.ndarray, state: State) -> None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class EMA(Averaging):
    """θ̄ ← ρ·θ̄ + (1 − ρ)·θ after every step (θ̄₀ = 0); :meth:`averaged` gives
    θ̄/(1 − ρᵗ) with ``debias`` (optax.ema's default), θ̄ itself without."""

    decay: float = hyper(0.999, "[0, 1)", "decay rate ρ of the average")
    debias: bool = hyper(True, "bool", "divide by 1 − ρᵗ (the average starts at 0)")
    FIELD = "ema"

    def after_step(self, theta: np.ndarray, state: State) -> None:
        state.ema[...] = self.decay * state.ema + (1 - self.decay) * theta

    def averaged(self, state: State) -> np.ndarray:
        """The point to evaluate at (a new array)."""
        self._check(state)
        if self.debias and state.steps_seen > 0:
            return state.ema / (1 - self.decay**state.steps_seen)
        return state.ema.copy()

    def eval_params(self, theta: np.ndarray, state: State) -> np.ndarray:
        return self.averaged(state) if state.steps_seen else theta.copy()


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SWA(Averaging):
    """Stochastic weight averaging (Izmailov et al., 2018): the mean of θ after steps
    ``start``, ``start + every``, …; θ̄ ← θ̄ + (θ − θ̄)/(n + 1) as AveragedModel does."""

    start: float = hyper(1.0, "[1, inf)", "the first step whose iterate is averaged")
    every: float = hyper(1.0, "[1, inf)", "average every this many steps")
    FIELD = "swa"
    COUNTS = ("steps_seen", "n_averaged")

    def init(self, theta: np.ndarray) -> State:
        state = super().init(theta)
        state.n_averaged = 0
        return state

    def after_step(self, theta: np.ndarray, state: State) -> None:
        due = state.steps_seen - self.start
        if due < 0 or due % self.every:
            return
        n = state.n_averaged
        state.swa[...] = theta if n == 0 else state.swa + (theta - state.swa) / (n + 1)
        state.n_averaged = n + 1

    def averaged(self, state: State) -> np.ndarray:
        """The point to evaluate at (θ itself until the first averaged step)."""
        self._check(state)
        if state.n_averaged == 0:
            raise ValueError(f"{self.name}: no iterate averaged yet (start={self.start:g})")
        return state.swa.copy()

    def eval_params(self, theta: np.ndarray, state: State) -> np.ndarray:
        return self.averaged(state) if state.n_averaged else theta.copy()


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Lookahead(Averaging):
    """Lookahead: k fast steps, then φ ← φ + α(θ − φ) and θ ← φ (φ₀ = θ₀)."""

    sync_period: float = hyper(5.0, "[1, inf)", "k: fast steps between synchronizations")
    slow_step_size: float = hyper(0.5, "[0, 1]", "α: how far the slow weights move")
    FIELD = "slow"

    def initial(self, theta: np.ndarray) -> np.ndarray:
        return theta.copy()  # the slow weights start at θ₀

    def after_step(self, theta: np.ndarray, state: State) -> None:
        if state.steps_seen % self.sync_period:
            return
        difference = theta - state.slow  # fast − slow
        theta[...] = theta - (1 - self.slow_step_size) * difference  # = φ + α(θ − φ)
        state.slow[...] = state.slow + self.slow_step_size * difference

    def averaged(self, state: State) -> np.ndarray:
        """The slow weights φ."""
        self._check(state)
        return state.slow.copy()

    def eval_params(self, theta: np.ndarray, state: State) -> np.ndarray:
        return self.averaged(state)  # the slow weights (θ₀ before the first sync)


# Modifiers of a spec, with their settings among its keys: "adam+ema:decay=0.99,lr=1e-3".
for _cls in (EMA, SWA, Lookahead):
    register_wrapper(
        _cls.__name__.lower(),
        lambda optimizer, _cls=_cls, **settings: _cls(base=optimizer, **settings),
        wrapper_settings(_cls),
    )

__all__ = ["EMA", "SWA", "Averaging", "Lookahead"]
