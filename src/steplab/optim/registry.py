"""The one registry of optimizers: every list of optimizers in steplab is read from it.

``OPTIMIZERS`` maps each name to its class, in the order they were registered (the order
the lecture meets them). The torch classes, the JAX transformations, the command line's and
the web lab's choices, the benchmark's streams and the tests' cases are all derived from
it, so an optimizer registered here (one module in ``steplab/optim`` ending with
``register(MyOptimizer)``) gets every one of them with no other edit; see
docs/adding-an-optimizer.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from steplab.optim.base import Optimizer

_Class = TypeVar("_Class", bound=type)

#: Every element-wise optimizer (``KIND = "elementwise"``) by name, in the order of
#: registration: what every backend, sweep, the web lab and the benchmark list.
OPTIMIZERS: dict[str, type[Optimizer]] = {}

#: Every per-tensor optimizer (``KIND = "per_tensor"``: Muon, Adafactor, … in
#: ``steplab.optim.matrix``) by name. Kept apart from :data:`OPTIMIZERS` because the
#: element-wise backends cannot run them; :func:`lookup`, :func:`make` and the command line
#: find both.
PER_TENSOR_OPTIMIZERS: dict[str, Any] = {}

# What a per-tensor class must provide: the protocol of steplab.optim.base, with a rule.
_PER_TENSOR_PROTOCOL = ("rule", "state_shapes", "declared_for", "prepare_step", "apply_rule",
                        "hyperparameters", "like", "init", "step")  # fmt: skip


def registered(kind: str | None = None) -> dict[str, Any]:
    """Every registered optimizer by name (element-wise first), or those of one ``kind``
    (``"elementwise"`` or ``"per_tensor"``)."""
    tables: dict[str, dict[str, Any]] = {
        "elementwise": OPTIMIZERS,
        "per_tensor": PER_TENSOR_OPTIMIZERS,
    }
    if kind is None:
        return {**OPTIMIZERS, **PER_TENSOR_OPTIMIZERS}
    if kind not in tables:
        raise ValueError(f"kind must be one of {', '.join(tables)}, got {kind!r}")
    return dict(tables[kind])


def register(cls: _Class) -> _Class:
    """Add ``cls`` to :data:`OPTIMIZERS` under ``cls.name`` (usable as a decorator).

    The class must be a complete optimizer (a ``rule``) with a lower-case name not taken by
    another class; registering the same class again changes nothing.
    """
    per_tensor = isinstance(cls, type) and getattr(cls, "KIND", None) == "per_tensor"
    if per_tensor:
        missing = [a for a in _PER_TENSOR_PROTOCOL if not callable(getattr(cls, a, None))]
        if missing:
            raise TypeError(
                f"{cls.__name__} is KIND='per_tensor' but lacks {', '.join(missing)} "
                "(see steplab.optim.matrix.MatrixOptimizer)"
            )
    elif not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(
            "only steplab.optim.Optimizer subclasses and per-tensor optimizers "
            f"(steplab.optim.matrix.MatrixOptimizer) can be registered, got {cls!r}"
        )
    else:
        cls.moment_names()  # TypeError if it has no rule
    name = getattr(cls, "name", None)
    if (
        not isinstance(name, str)
        or not name
        or name != name.strip().lower()
        or name in (Optimizer.name, "matrix")
    ):
        raise ValueError(f"{cls.__name__}.name must be a lower-case name of its own, got {name!r}")
    known = registered().get(name)
    if known is not None and known is not cls:
        raise ValueError(f"the name {name!r} is taken by {known.__module__}.{known.__name__}")
    (PER_TENSOR_OPTIMIZERS if per_tensor else OPTIMIZERS)[name] = cls
    return cls


#: Modifiers that wrap an optimizer, by the name an optimizer spec appends after ``+``
#: (``"adamw+cautious"``, ``"adam+ema"``): name -> function ``wrap(optimizer, **settings)``.
WRAPPERS: dict[str, Callable[..., Any]] = {}

#: Each modifier's own settings, name -> interval as a hyperparameter declares it
#: (``"[0, 1)"``, ``"bool"``): the keys a spec may give it (``"adam+ema:decay=0.99"``).
WRAPPER_SETTINGS: dict[str, dict[str, str]] = {}


def register_wrapper(
    name: str, wrap: Callable[..., Any], settings: Mapping[str, str] | None = None
) -> None:
    """Make ``wrap`` the modifier ``name`` (lower case), e.g. ``register_wrapper("ema",
    lambda opt, **s: EMA(base=opt, **s), {"decay": "[0, 1)"})``; the command line and sweeps
    then accept ``"<optimizer>+<name>"``, with ``settings`` among the spec's keys."""
    if not name or name != name.strip().lower() or "+" in name or not callable(wrap):
        raise ValueError(
            f"a wrapper needs a lower-case name without '+' and a function, got {name!r}"
        )
    WRAPPERS[name] = wrap
    WRAPPER_SETTINGS[name] = dict(settings or {})


def wrapper_settings(cls: type) -> dict[str, str]:
    """The settings of a wrapper dataclass (its ``hyper`` fields) and their intervals."""
    return {
        f.name: str(f.metadata["interval"])
        for f in dataclasses.fields(cls)
        if "interval" in f.metadata
    }


def unregister(name: str) -> None:
    """Remove the optimizer ``name`` (for tests that register a toy optimizer)."""
    OPTIMIZERS.pop(name, None)
    PER_TENSOR_OPTIMIZERS.pop(name, None)


def lookup(name: str) -> Any:
    """The class registered as ``name`` (case-insensitive), of either kind; ``ValueError``
    listing them."""
    key = str(name).strip().lower()
    every = registered()
    if key not in every:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(every)}")
    return every[key]


def make(name: str, preset: str = "seed", **hyperparameters: Any) -> Any:
    """An optimizer by name (case-insensitive), e.g. ``make("rmsprop", lr=0.01)``.

    ``preset`` picks a framework's conventions first (``"seed"``, ``"torch"``, …).
    """
    cls = lookup(name)
    # every constructor argument: the hyperparameters, nonfinite, impl (element-wise) and a
    # per-tensor optimizer's static options (Muon's ns_steps, …)
    allowed = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(hyperparameters) - allowed)
    if unknown:
        raise ValueError(
            f"{cls.name} has no hyperparameter {', '.join(unknown)}; "
            f"its hyperparameters are: {', '.join(sorted(allowed))}"
        )
    return cls.like(preset, **hyperparameters)
