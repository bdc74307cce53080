"""Train the MNIST-1D paper's small 1-D CNN with steplab.torch.Adam and torch.optim.Adam.

MNIST-1D (Greydanus, 2020) is generated locally by ``mnist1d.data.make_dataset()`` with
its default arguments (4000 training and 1000 test sequences of length 40, 10 classes):
nothing is downloaded. The network and the training recipe are the paper's (three
convolutions with 25 channels, Adam, lr 1e-2, batch 100, 6000 steps), for which the
paper reports about 94% test accuracy.

    python examples/mnist1d_torch.py                  # the full run, a few minutes on a CPU
    python examples/mnist1d_torch.py --steps 1000     # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from mnist1d.data import make_dataset

import steplab.torch as st

#: Optimizers compared: label -> factory(params, lr).
OPTIMIZERS = {
    "steplab.torch.Adam (seed: eps_root=1e-8 inside the root)": lambda ps, lr: st.Adam(ps, lr=lr),
    'steplab.torch.Adam.like("torch")': lambda ps, lr: st.Adam.like("torch", ps, lr=lr),
    "torch.optim.Adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr),
}


class ConvNet(torch.nn.Module):
    """The MNIST-1D paper's CNN: 3 strided 1-D convolutions (25 channels), ReLU, a linear head."""

    def __init__(self, channels: int = 25, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv1d(1, channels, 5, stride=2, padding=1)  # 40 -> 19
        self.conv2 = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1)  # 19 -> 10
        self.conv3 = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1)  # 10 -> 5
        self.linear = torch.nn.Linear(channels * 5, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1)  # (batch, 40) -> (batch, 1 channel, 40)
        h = torch.relu(self.conv1(h))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.conv3(h))
        return self.linear(h.flatten(1))


def load_mnist1d() -> dict[str, torch.Tensor]:
    """MNIST-1D generated with the package's default arguments, as float32/int64 tensors."""
    data = make_dataset()  # generates the data locally (seed 42); never downloads
    return {
        "x": torch.tensor(data["x"], dtype=torch.float32),
        "y": torch.tensor(data["y"], dtype=torch.int64),
        "x_test": torch.tensor(data["x_test"], dtype=torch.float32),
        "y_test": torch.tensor(data["y_test"], dtype=torch.int64),
    }


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(make_optimizer, data, steps=6000, batch_size=100, lr=1e-2, seed=0) -> dict:
    """Train a fresh ConvNet (same initialisation and batches for every optimizer for a
    given ``seed``); returns the final train/test accuracy and the wall time."""
    torch.manual_seed(seed)
    model = ConvNet()
    optimizer = make_optimizer(model.parameters(), lr)
    batches = np.random.default_rng(seed)
    n = len(data["y"])
    start = time.perf_counter()
    for _ in range(steps):
        index = torch.from_numpy(batches.integers(0, n, size=batch_size))
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data["x"][index]), data["y"][index])
        loss.backward()
        optimizer.step()
    return {
        "train_accuracy": accuracy(model, data["x"], data["y"]),
        "test_accuracy": accuracy(model, data["x_test"], data["y_test"]),
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 suits this tiny network)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.lr <= 0:
        parser.error("--steps and --batch-size must be positive integers, --lr a positive number")
    if args.threads < 1:
        parser.error("--threads must be a positive integer")
    torch.set_num_threads(args.threads)
    data = load_mnist1d()
    print(
        f"MNIST-1D: {len(data['y'])} train, {len(data['y_test'])} test; {args.steps} steps, "
        f"batch {args.batch_size}, lr {args.lr}, seeds {args.seeds}"
    )
    print("| optimizer | seed | train accuracy | test accuracy | seconds |")
    print("|---|---:|---:|---:|---:|")
    for label, make_optimizer in OPTIMIZERS.items():
        for seed in args.seeds:
            result = train(make_optimizer, data, args.steps, args.batch_size, args.lr, seed)
            print(
                f"| {label} | {seed} | {result['train_accuracy']:.1%} | "
                f"{result['test_accuracy']:.1%} | {result['seconds']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
