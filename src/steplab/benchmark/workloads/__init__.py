"""PyTorch workloads for the AlgoPerf-style benchmark (``pip install "steplab[torch,data]"``).

Each has a "small" size that trains on a 2-core CPU in seconds and a "full" size for a GPU,
a validation metric and a recorded target (``targets.json``: the value, how it was set and
the command that set it).
"""

from __future__ import annotations

import json
from importlib import resources

from steplab.benchmark.workloads.base import (
    DEVICES,
    SIZES,
    Budget,
    Task,
    Workload,
    require_device,
    train,
)

NAMES = ("mnist1d_mlp", "mnist1d_cnn", "digits_autoencoder", "digits_resnet", "shakespeare_char")


def get(name: str) -> Workload:
    """A workload by name (importing torch lazily)."""
    if name not in NAMES:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(NAMES)}")
    from steplab.benchmark.workloads import digits, mnist1d, shakespeare

    found = {
        w.name: w
        for w in (mnist1d.MLP, mnist1d.CNN, digits.AUTOENCODER, digits.RESNET, shakespeare.WORKLOAD)
    }
    return found[name]


def targets() -> dict:
    """The recorded validation targets: ``{size: {workload: {"target": …, …}}, "how": …}``."""
    path = resources.files("steplab.benchmark.workloads") / "targets.json"
    return json.loads(path.read_text())


def target(name: str, size: str) -> float:
    recorded = targets().get(size, {})
    if name not in recorded:
        raise ValueError(
            f"no validation target recorded for {name} at size {size!r}; set one with "
            f"`python -m steplab.benchmark.targets --size {size}`"
        )
    return float(recorded[name]["target"])


__all__ = [
    "DEVICES",
    "NAMES",
    "SIZES",
    "Budget",
    "Task",
    "Workload",
    "get",
    "require_device",
    "target",
    "targets",
    "train",
]
