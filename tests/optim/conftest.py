"""A reproducible stream of gradients for comparing implementations step by step.

The gradient depends on the current parameters (a quadratic bowl with very different
curvatures per coordinate) plus seeded noise, so errors in any step feed forward and
show up later instead of averaging out.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

DIM = 6
CURVATURES = np.array([0.01, 0.1, 1.0, 3.0, 10.0, 100.0])
START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25])


def gradient(theta: np.ndarray, t: int, noise: float = 0.3) -> np.ndarray:
    """∇ of ½·Σ cᵢθᵢ² at theta, plus noise that depends only on the step t."""
    rng = np.random.default_rng(1000 + t)
    return CURVATURES * theta + noise * rng.standard_normal(theta.shape)


def run(opt, steps: int = 120, theta: np.ndarray | None = None) -> np.ndarray:
    """``steps`` steps of a steplab optimizer on the stream; returns all iterates."""
    theta = (START if theta is None else theta).copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path)


@pytest.fixture
def stream():
    """The gradient stream: ``stream.gradient(theta, t)`` and ``stream.run(opt, steps)``."""
    return SimpleNamespace(gradient=gradient, run=run, start=START, dim=DIM)
