"""The algorithms: one short module per family, NumPy only, no I/O, no plotting.

Every optimizer follows one contract::

    opt = Adam()                       # frozen dataclass; defaults reproduce the seed
    state = opt.init(theta)            # moments (zeros) and step counter t = 0
    opt.step(theta, grad, state)       # updates theta and state in place, returns theta

Every optimizer is in the one registry, :data:`OPTIMIZERS` (:mod:`steplab.optim.registry`).
The protocol through which the other layers run a rule (``declared_for``,
``prepare_step``, ``apply_rule`` and an :class:`~steplab.optim.ops.Ops` table) is described
in :mod:`steplab.optim.base`.
"""

from __future__ import annotations

import importlib
import pkgutil

from steplab.optim import schedules
from steplab.optim.adadelta import AdaDelta
from steplab.optim.adagrad import AdaGrad
from steplab.optim.adam import Adam, AdamW
from steplab.optim.adam_variants import Adamax, Nadam, RAdam
from steplab.optim.base import (
    NONFINITE_POLICIES,
    Interval,
    Optimizer,
    PreparedStep,
    State,
    register_step_backend,
)
from steplab.optim.lion import Lion
from steplab.optim.registry import OPTIMIZERS, lookup, make, register, unregister
from steplab.optim.rmsprop import RMSProp
from steplab.optim.sgd import SGD, Momentum, Nesterov

# The optimizers in the order the lecture meets them.
for _cls in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam, AdamW, Adamax, Nadam,
             RAdam, Lion):  # fmt: skip
    register(_cls)

#: The seed's three algorithms.
SEED_OPTIMIZERS = ("adagrad", "rmsprop", "adam")

_WRITTEN_HERE = {"base", "checkpoint", "ops", "registry", "schedules", "sgd", "adagrad",
                 "rmsprop", "adadelta", "adam", "adam_variants", "lion"}  # fmt: skip


def _import_other_modules() -> None:
    """Import every other module of this package, so that a new optimizer's module, which
    ends with ``register(ItsClass)``, needs no line here (it comes after the lecture's)."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name not in _WRITTEN_HERE and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_other_modules()

__all__ = [
    "OPTIMIZERS",
    "SEED_OPTIMIZERS",
    "NONFINITE_POLICIES",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Interval",
    "Lion",
    "Momentum",
    "Nadam",
    "Nesterov",
    "Optimizer",
    "PreparedStep",
    "RAdam",
    "RMSProp",
    "SGD",
    "State",
    "lookup",
    "make",
    "register",
    "register_step_backend",
    "schedules",
    "unregister",
]

# Schedule-Free, weight averaging, the modern modifiers and gradient transformations
# (issue 23; the element-wise rules registered themselves when imported above).
from steplab.optim import averaging, modifiers, schedule_free, transforms  # noqa: E402
from steplab.optim.averaging import EMA, SWA, Lookahead  # noqa: E402
from steplab.optim.modifiers import ADOPT, MARS, AdEMAMix, Cautious, Prodigy  # noqa: E402
from steplab.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD  # noqa: E402

__all__ += [
    "ADOPT",
    "EMA",
    "MARS",
    "SWA",
    "AdEMAMix",
    "Cautious",
    "Lookahead",
    "Prodigy",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "averaging",
    "modifiers",
    "schedule_free",
    "transforms",
]
