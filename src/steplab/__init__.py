"""steplab: a lab for first-order optimizers with adaptive step sizes.

AdaGrad, RMSProp and Adam exactly as the lecture "Adam and friends" writes them, their
friends, and the tools to run, see, compare and sweep them.

``import steplab`` itself imports nothing heavy (not even NumPy): every public name (the
optimizers, ``sl.make``, ``sl.problems``, ``sl.minimize``, and the subpackages that need an
extra: ``sl.viz``, ``sl.fast``, ``sl.web``, ``sl.torch``, …) is imported on first access.
That keeps the ``steplab`` command's first tenths of a second free of work, so Ctrl+C there
ends it quietly (``steplab.__main__``). A subpackage whose extra is missing says which
``pip install "steplab[...]"`` brings it.
"""

import importlib

from steplab import _plugins

# Not ``from typing import TYPE_CHECKING``: importing typing costs more than all the rest of
# this module, and a checker treats any constant of this name as True. (No ``from __future__
# import annotations`` either, hence the quoted annotation: each import is a moment in which
# Ctrl+C would still print a traceback.)
TYPE_CHECKING = False

__version__ = "0.1.0"

# The package wires its layers, by name, so that wiring imports nothing:
# - the core's fused step backend is steplab.fast, imported the first time a step asks for it
#   (optim never imports fast; fast registers the same object when it is imported first);
_plugins.provide("step backend fused", "steplab.fast.dispatch:STEP_BACKEND")
# - Run.plot and RunSet.plot draw with steplab.viz (run never imports viz).
_plugins.provide("plot runs", "steplab.viz.plots:run_figure")

if TYPE_CHECKING:  # the checker sees the lazy names below as ordinary imports
    from typing import Any

    from steplab import experiments, fast, optim, problems, reproductions, run, viz, web
    from steplab.optim import (
        NONFINITE_POLICIES,
        OPTIMIZERS,
        SEED_OPTIMIZERS,
        SGD,
        AdaDelta,
        AdaGrad,
        Adam,
        Adamax,
        AdamW,
        Lion,
        Momentum,
        Nadam,
        Nesterov,
        Optimizer,
        RAdam,
        RMSProp,
        State,
        make,
        matrix,
        schedules,
    )
    from steplab.run import Run, RunSet, minimize
    from steplab.run.sweep import sweep

_OPTIM_NAMES = (
    "NONFINITE_POLICIES OPTIMIZERS SEED_OPTIMIZERS SGD AdaDelta AdaGrad Adam Adamax AdamW Lion"
    " Momentum Nadam Nesterov Optimizer RAdam RMSProp State make schedules"
).split()

# Names imported on first access: attribute -> module (and the name in it, if not a module).
_LAZY: dict[str, tuple[str, str | None]] = {
    **{name: ("steplab.optim", name) for name in _OPTIM_NAMES},
    "optim": ("steplab.optim", None),
    "problems": ("steplab.problems", None),
    "run": ("steplab.run", None),
    "minimize": ("steplab.run", "minimize"),
    "sweep": ("steplab.run", "sweep"),
    "Run": ("steplab.run", "Run"),
    "RunSet": ("steplab.run", "RunSet"),
    "fast": ("steplab.fast", None),
    "viz": ("steplab.viz", None),
    "experiments": ("steplab.experiments", None),
    "reproductions": ("steplab.reproductions", None),
    "web": ("steplab.web", None),
    "torch": ("steplab.torch", None),
    "matrix": ("steplab.optim.matrix", None),  # per-tensor optimizers: sl.matrix.Muon, …
}


def __getattr__(name: str) -> "Any":
    if name not in _LAZY:
        raise AttributeError(f"module 'steplab' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "NONFINITE_POLICIES",
    "OPTIMIZERS",
    "SEED_OPTIMIZERS",
    "SGD",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Momentum",
    "Nadam",
    "Nesterov",
    "Optimizer",
    "RAdam",
    "RMSProp",
    "Run",
    "RunSet",
    "State",
    "make",
    "minimize",
    "problems",
    "sweep",
]
