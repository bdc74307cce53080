"""The MNIST-1D example, reduced: a few hundred steps of steplab.torch.Adam learn the task
well above chance (10%)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mnist1d")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist1d_torch.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("mnist1d_torch_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_steplab_adam_learns_mnist1d_well_above_chance():
    example = _load_example()
    data = example.load_mnist1d()
    assert data["x"].shape == (4000, 40) and data["x_test"].shape == (1000, 40)
    make = example.OPTIMIZERS['steplab.torch.Adam.like("torch")']
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny network: threads only add overhead on a shared CPU
    try:
        result = example.train(make, data, steps=250, batch_size=100, lr=1e-2, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert result["test_accuracy"] > 0.5  # chance is 0.1
    assert result["train_accuracy"] > 0.5
