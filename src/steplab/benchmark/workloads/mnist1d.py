"""The MLP and the CNN of the MNIST-1D paper (Greydanus & Kobak, "Scaling down deep
learning with MNIST-1D", ICML 2024), on data generated locally by the ``mnist1d`` package.

MLP: 40 → 100 → 100 → 10 with ReLU. CNN: three 1-D convolutions of 25 channels (kernel 5
then 3, 3; stride 2, padding 1) with ReLU, then a linear layer on the 25 × 5 features.
Training set: MNIST-1D's 4000 training examples; validation: its 1000 held-out ones.
"""

from __future__ import annotations

from steplab.benchmark.workloads.base import Budget, Task, Workload, classifier


def _data():
    import torch

    from steplab.problems.datasets import mnist1d_arrays

    a = mnist1d_arrays(5000, 42)
    x, x_val = (torch.as_tensor(a[k], dtype=torch.float32) for k in ("x", "x_test"))
    mean, std = x.mean(), x.std()
    y, y_val = (torch.as_tensor(a[k], dtype=torch.long) for k in ("y", "y_test"))
    return (x - mean) / std, y, (x_val - mean) / std, y_val


def build_mlp(size: str, seed: int) -> Task:
    from torch import nn

    x, y, x_val, y_val = _data()
    width = 100 if size == "small" else 512
    model = nn.Sequential(
        nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )
    return classifier(model, x, y, x_val, y_val)


def build_cnn(size: str, seed: int) -> Task:
    from torch import nn

    x, y, x_val, y_val = _data()
    channels = 25 if size == "small" else 64
    model = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, channels, 5, stride=2, padding=1),  # 40 → 19
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),  # 19 → 10
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),  # 10 → 5
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 5, 10),
    )
    return classifier(model, x, y, x_val, y_val)


MLP = Workload(
    "mnist1d_mlp",
    "MNIST-1D MLP (40-100-100-10) of the MNIST-1D paper",
    "val_accuracy",
    True,
    {"small": Budget(400, 100, 40), "full": Budget(6000, 100, 250)},
    build_mlp,
)
CNN = Workload(
    "mnist1d_cnn",
    "MNIST-1D CNN (3 conv layers of 25 channels) of the MNIST-1D paper",
    "val_accuracy",
    True,
    {"small": Budget(400, 100, 40), "full": Budget(6000, 100, 250)},
    build_cnn,
)
