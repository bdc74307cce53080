"""steplab's optimizers as drop-in ``torch.optim`` optimizers (``pip install steplab[torch]``).

Same hyperparameter names, defaults (the seed's) and presets as the NumPy core, because
they are read from it::

    import steplab.torch as st
    opt = st.Adam(model.parameters(), lr=1e-3)          # the seed's Adam
    opt = st.Adam.like("torch", model.parameters())     # torch.optim.Adam
    opt = st.make("rmsprop", model.parameters(), preset="torch", lr=0.01)

Param groups, ``state_dict``/``load_state_dict``, LR schedulers, ``zero_grad``, closures
and ``maximize`` work as in torch.optim. See docs/torch.md.
"""

from __future__ import annotations

from typing import Any

try:
    import torch  # noqa: F401
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("steplab.torch needs PyTorch: pip install 'steplab[torch]'") from exc

from steplab.torch.adadelta import AdaDelta
from steplab.torch.adagrad import AdaGrad
from steplab.torch.adam import Adam, AdamW
from steplab.torch.adam_variants import Adamax, Nadam, RAdam
from steplab.torch.base import TorchOptimizer
from steplab.torch.lion import Lion
from steplab.torch.rmsprop import RMSProp
from steplab.torch.sgd import SGD, Momentum, Nesterov

#: Every optimizer by the core's name, in the core's order.
OPTIMIZERS: dict[str, type[TorchOptimizer]] = {
    cls.core.name: cls
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


def make(name: str, params, preset: str = "seed", **hyperparameters: Any) -> TorchOptimizer:
    """An optimizer by name (case-insensitive), e.g. ``make("adam", params, preset="torch")``."""
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key].like(preset, params, **hyperparameters)


__all__ = [
    "OPTIMIZERS",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Momentum",
    "Nadam",
    "Nesterov",
    "RAdam",
    "RMSProp",
    "SGD",
    "TorchOptimizer",
    "make",
]
