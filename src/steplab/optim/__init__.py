"""The algorithms: one short module per family, NumPy only, no I/O, no plotting.

Every optimizer follows one contract::

    opt = Adam()                       # frozen dataclass; defaults reproduce the seed
    state = opt.init(theta)            # moments (zeros) and step counter t = 0
    opt.step(theta, grad, state)       # updates theta and state in place, returns theta
"""

from __future__ import annotations

from typing import Any

from steplab.optim import schedules
from steplab.optim.adadelta import AdaDelta
from steplab.optim.adagrad import AdaGrad
from steplab.optim.adam import Adam, AdamW
from steplab.optim.adam_variants import Adamax, Nadam, RAdam
from steplab.optim.base import NONFINITE_POLICIES, Optimizer, State
from steplab.optim.lion import Lion
from steplab.optim.rmsprop import RMSProp
from steplab.optim.sgd import SGD, Momentum, Nesterov

#: Every optimizer by name, in the order the lecture meets them.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls
    for cls in (
        SGD,
        Momentum,
        Nesterov,
        AdaGrad,
        RMSProp,
        AdaDelta,
        Adam,
        AdamW,
        Adamax,
        Nadam,
        RAdam,
        Lion,
    )
}

#: The seed's three algorithms.
SEED_OPTIMIZERS = ("adagrad", "rmsprop", "adam")


def make(name: str, preset: str = "seed", **hyperparameters: Any) -> Optimizer:
    """An optimizer by name (case-insensitive), e.g. ``make("rmsprop", lr=0.01)``.

    ``preset`` picks a framework's conventions first (``"seed"``, ``"torch"``, …).
    """
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[key]
    allowed = {f for f in cls.hyperparameters()} | {"nonfinite", "impl"}
    unknown = sorted(set(hyperparameters) - allowed)
    if unknown:
        raise ValueError(
            f"{key} has no hyperparameter {', '.join(unknown)}; "
            f"its hyperparameters are: {', '.join(sorted(allowed))}"
        )
    return cls.like(preset, **hyperparameters)


__all__ = [
    "OPTIMIZERS",
    "SEED_OPTIMIZERS",
    "NONFINITE_POLICIES",
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
    "SGD",
    "State",
    "make",
    "schedules",
]

# Schedule-Free, weight averaging, the modern modifiers and gradient transformations
# (issue 23). Not yet in OPTIMIZERS/make: they join the one registry after issue 28.
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
