"""The one registry of optimizers: every list of optimizers in steplab is read from it.

``OPTIMIZERS`` maps each name to its class, in the order they were registered (the order
the lecture meets them). The torch classes, the JAX transformations, the command line's and
the web lab's choices, the benchmark's streams and the tests' cases are all derived from
it, so an optimizer registered here (one module in ``steplab/optim`` ending with
``register(MyOptimizer)``) gets every one of them with no other edit; see
docs/adding-an-optimizer.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from steplab.optim.base import Optimizer

#: Every optimizer by name, in the order of registration.
OPTIMIZERS: dict[str, type[Optimizer]] = {}


def register(cls: type[Optimizer]) -> type[Optimizer]:
    """Add ``cls`` to :data:`OPTIMIZERS` under ``cls.name`` (usable as a decorator).

    The class must be a complete optimizer (a ``rule``) with a lower-case name not taken by
    another class; registering the same class again changes nothing.
    """
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(f"only steplab.optim.Optimizer subclasses can be registered, got {cls!r}")
    cls.moment_names()  # TypeError if it has no rule
    name = cls.name
    if not name or name != name.strip().lower() or name == Optimizer.name:
        raise ValueError(f"{cls.__name__}.name must be a lower-case name of its own, got {name!r}")
    known = OPTIMIZERS.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"the name {name!r} is taken by {known.__module__}.{known.__name__}")
    OPTIMIZERS[name] = cls
    return cls


#: Modifiers that wrap an optimizer, by the name an optimizer spec appends after ``+``
#: (``"adamw+cautious"``): name -> function from the optimizer to the wrapped one.
WRAPPERS: dict[str, Callable[[Optimizer], Any]] = {}


def register_wrapper(name: str, wrap: Callable[[Optimizer], Any]) -> None:
    """Make ``wrap`` the modifier ``name`` (lower case), e.g. ``register_wrapper("cautious",
    lambda opt: Cautious(base=opt))``; the command line and sweeps then accept
    ``"<optimizer>+<name>"``."""
    if not name or name != name.strip().lower() or "+" in name or not callable(wrap):
        raise ValueError(
            f"a wrapper needs a lower-case name without '+' and a function, got {name!r}"
        )
    WRAPPERS[name] = wrap


def unregister(name: str) -> None:
    """Remove the optimizer ``name`` (for tests that register a toy optimizer)."""
    OPTIMIZERS.pop(name, None)


def lookup(name: str) -> type[Optimizer]:
    """The class registered as ``name`` (case-insensitive); ``ValueError`` listing them."""
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key]


def make(name: str, preset: str = "seed", **hyperparameters: Any) -> Optimizer:
    """An optimizer by name (case-insensitive), e.g. ``make("rmsprop", lr=0.01)``.

    ``preset`` picks a framework's conventions first (``"seed"``, ``"torch"``, …).
    """
    cls = lookup(name)
    allowed = {f for f in cls.hyperparameters()} | {"nonfinite", "impl"}
    unknown = sorted(set(hyperparameters) - allowed)
    if unknown:
        raise ValueError(
            f"{cls.name} has no hyperparameter {', '.join(unknown)}; "
            f"its hyperparameters are: {', '.join(sorted(allowed))}"
        )
    return cls.like(preset, **hyperparameters)
