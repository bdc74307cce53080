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

from collections.abc import Iterator, Mapping
from typing import Any

try:
    import torch  # noqa: F401
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("steplab.torch needs PyTorch: pip install 'steplab[torch]'") from exc

from steplab.optim import OPTIMIZERS as _CORE_OPTIMIZERS
from steplab.optim import lookup as _lookup
from steplab.torch.adadelta import AdaDelta
from steplab.torch.adagrad import AdaGrad
from steplab.torch.adam import Adam, AdamW
from steplab.torch.adam_variants import Adamax, Nadam, RAdam
from steplab.torch.base import TorchOptimizer, twin
from steplab.torch.lion import Lion
from steplab.torch.modifiers import MARS, Prodigy
from steplab.torch.rmsprop import RMSProp
from steplab.torch.sgd import SGD, Momentum, Nesterov


class _Twins(Mapping[str, type[TorchOptimizer]]):
    """The core's registry seen through :func:`twin`: always the same names, in its order."""

    def __getitem__(self, name: str) -> type[TorchOptimizer]:
        return twin(_CORE_OPTIMIZERS[name])

    def __iter__(self) -> Iterator[str]:
        return iter(list(_CORE_OPTIMIZERS))

    def __len__(self) -> int:
        return len(_CORE_OPTIMIZERS)

    def __repr__(self) -> str:
        return f"steplab.torch.OPTIMIZERS({', '.join(self)})"


#: Every optimizer by the core's name, in the core's order (derived from steplab.optim's
#: registry: a newly registered optimizer has its torch class here at once).
OPTIMIZERS: Mapping[str, type[TorchOptimizer]] = _Twins()


def make(name: str, params, preset: str = "seed", **hyperparameters: Any) -> Any:
    """An optimizer by name (case-insensitive), e.g. ``make("adam", params, preset="torch")``;
    a per-tensor one (``"muon"``, …) comes from :mod:`steplab.torch.matrix`."""
    core = _lookup(name)
    if core.KIND == "per_tensor":
        from steplab.torch import matrix

        return matrix.make(name, params, preset, **hyperparameters)
    return twin(core).like(preset, params, **hyperparameters)


__all__ = [
    "OPTIMIZERS",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "MARS",
    "Momentum",
    "Nadam",
    "Nesterov",
    "Prodigy",
    "RAdam",
    "RMSProp",
    "SGD",
    "TorchOptimizer",
    "make",
    "twin",
]
