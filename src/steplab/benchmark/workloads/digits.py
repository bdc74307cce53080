"""Two workloads on scikit-learn's 8 × 8 digits (bundled with scikit-learn, offline): a
convolutional autoencoder and a small residual network.

Images are scaled to [0, 1]; a fixed permutation (seed 0) holds out 397 of the 1797 images
for validation. The autoencoder is judged by its validation reconstruction error (mean
squared error per pixel, lower is better), the residual network by validation accuracy.
"""

from __future__ import annotations

from steplab.benchmark.workloads.base import Budget, Task, Workload, classifier

N_VAL = 397


def _data():
    import numpy as np
    import torch

    from steplab._extras import requires

    with requires("data", "the digits workloads"):
        from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    x = torch.as_tensor(bunch.images[order] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(bunch.target[order], dtype=torch.long)
    return x[N_VAL:], y[N_VAL:], x[:N_VAL], y[:N_VAL]


def build_autoencoder(size: str, seed: int) -> Task:
    import torch.nn.functional as F
    from torch import nn

    x, _, x_val, _ = _data()
    c = 16 if size == "small" else 64
    model = nn.Sequential(
        nn.Conv2d(1, c, 3, stride=2, padding=1),  # 8 → 4
        nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),  # 4 → 2: the code, 2c × 2 × 2
        nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 2, stride=2),  # 2 → 4
        nn.ReLU(),
        nn.ConvTranspose2d(c, 1, 2, stride=2),  # 4 → 8
        nn.Sigmoid(),
    )
    return Task(
        model,
        x,
        x,
        loss=lambda m, xb, yb: F.mse_loss(m(xb), yb),
        evaluate=lambda m: float(F.mse_loss(m(x_val), x_val)),
    )


def _residual_block(channels: int):
    from torch import nn

    class Block(nn.Module):
        """x + conv(relu(bn(conv(relu(bn(x)))))) — a pre-activation residual block."""

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            )

        def forward(self, x):
            return x + self.body(x)

    return Block()


def build_resnet(size: str, seed: int) -> Task:
    from torch import nn

    x, y, x_val, y_val = _data()
    c, blocks = (12, 2) if size == "small" else (64, 6)
    model = nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1, bias=False),
        *(_residual_block(c) for _ in range(blocks)),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c, 10),
    )
    return classifier(model, x, y, x_val, y_val)


AUTOENCODER = Workload(
    "digits_autoencoder",
    "convolutional autoencoder on scikit-learn's 8×8 digits",
    "val_mse",
    False,
    {"small": Budget(300, 32, 30), "full": Budget(4000, 128, 200)},
    build_autoencoder,
)
RESNET = Workload(
    "digits_resnet",
    "small pre-activation residual network on scikit-learn's 8×8 digits",
    "val_accuracy",
    True,
    {"small": Budget(200, 32, 20), "full": Budget(3000, 128, 150)},
    build_resnet,
)
