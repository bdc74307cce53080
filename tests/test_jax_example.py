"""The plain-JAX example, reduced: steplab's seed Adam (an optax transformation) trains the
digits MLP well above chance (10%) in a few hundred jit-compiled steps, in float32."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _require(name):
    # CI installs optax and jax; there a missing one is a failure, never a silent skip.
    return importlib.import_module(name) if os.environ.get("CI") else pytest.importorskip(name)


jax = _require("jax")
_require("optax")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_jax.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("digits_jax_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def float32_jax():
    """The example runs as a user runs it, without x64 (other test modules switch x64 on,
    one of them when it is imported)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", previous)


def test_seed_adam_trains_the_digits_mlp_in_plain_jax():
    example = _load_example()
    data = example.load_data()
    assert data["x"].shape == (1297, 64) and data["x_test"].shape == (500, 64)
    result = example.train(example.sj.make("adam", lr=1e-2), data, steps=300)
    assert result["params"]["w1"].dtype == jax.numpy.float32
    assert result["losses"][-1] < 0.5 * result["losses"][0]
    assert result["test_accuracy"] > 0.85  # chance is 0.10
