"""steplab: a lab for first-order optimizers with adaptive step sizes.

AdaGrad, RMSProp and Adam exactly as the lecture "Adam and friends" writes them, their
friends, and the tools to run, see, compare and sweep them.
"""

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
    schedules,
)

__version__ = "0.1.0"

from steplab import problems  # noqa: E402, F401
from steplab.run import Run, minimize, sweep  # noqa: E402, F401
