"""Stochastic versions of the test functions.

Two kinds of noise, both seeded and reproducible:

- :func:`with_gradient_noise`: the exact function, but each gradient gets additive
  Gaussian noise ``N(0, scale² I)``, drawn from the run's own generator (so K runs at once
  have K independent noise streams, and each equals the same run alone).
- :func:`two_d_noisy` (``two_d_rosenbrock``, ``two_d_beale``, ``two_d_branin``): noise that
  comes from *data*, in the spirit of DeepOBS' 2-D problems. A training set holds
  ``n_train`` pairs ``(a_i, b_i) ~ N(0, noise_level²)``; the loss of example i is
  ``f(u, v) + a_i·u + b_i·v``. A minibatch loss is then ``f + ā·u + b̄·v`` with the batch
  means ā, b̄: unbiased for ``f`` in expectation over data, with noise that shrinks like
  ``1/√m`` with the batch size m. This is DeepOBS' construction: the same data term, 10 000
  pairs with ``noise_level = 1`` drawn by ``RandomState(42)`` (a's first, then b's), the
  same start points, and a test set of zeros, i.e. the noise-free function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steplab.problems import functions
from steplab.problems.base import Problem


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class GradientNoise(Problem):
    """``base`` with additive Gaussian gradient noise of standard deviation ``scale``."""

    base: Problem = field(repr=False)
    scale: float = 0.0

    def _value_and_grad_rows(self, X, batch, rngs):
        values, grads = self.base._value_and_grad_rows(X, batch, None)
        if rngs is not None and self.scale > 0:
            noise = np.stack([rng.standard_normal(self.dim) for rng in rngs])
            grads = grads + (self.scale * noise).astype(grads.dtype)
        return values, grads


def with_gradient_noise(problem: Problem, scale: float) -> GradientNoise:
    """Wrap ``problem``: same values, gradients plus ``N(0, scale²)`` noise per coordinate.

    The noise is drawn only when the loop passes a generator (``rng=``); with ``rng=None``
    the gradient is exact, which is what the finite-difference tests check.
    """
    if not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    if problem.n_train is not None:
        raise ValueError(f"{problem.name} already has minibatch noise from its data")
    return GradientNoise(
        name=f"{problem.name}+noise({scale:g})",
        dim=problem.dim,
        x0=problem.x0,
        description=f"{problem.description} — gradient noise N(0, {scale:g}²)",
        bounds=problem.bounds,
        minima=problem.minima,
        f_min=problem.f_min,
        stationary_points=problem.stationary_points,
        stochastic=True,
        base=problem,
        scale=float(scale),
    )


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class TwoDNoisy(Problem):
    """A 2-D test function plus the data term ``a_i·u + b_i·v`` averaged over a minibatch."""

    base: Problem = field(repr=False)
    data: np.ndarray = field(repr=False)  # (n_train, 2)

    def evaluate(self, x) -> dict:
        """Full training loss, and as ``test_loss`` the noise-free function (DeepOBS' test set)."""
        return {"loss": self.value(x), "test_loss": self.base.value(x)}

    def _value_and_grad_rows(self, X, batch, rngs):
        values, grads = self.base._value_and_grad_rows(X, None, None)
        if batch is None:
            shift = np.broadcast_to(self.data.mean(axis=0), X.shape)
        else:
            shift = self.data[batch].mean(axis=1)  # (K, 2): the batch means (ā, b̄)
        shift = shift.astype(X.dtype)
        return values + np.sum(shift * X, axis=1), grads + shift


# DeepOBS start points for its 2-D problems.
_DEEPOBS_2D = {
    "rosenbrock": (functions.rosenbrock, (-0.5, 1.5)),
    "beale": (functions.beale, (-4.5, 4.5)),
    "branin": (functions.branin, (2.5, 12.5)),
}


def two_d_noisy(
    name: str, *, noise_level: float = 1.0, n_train: int = 10_000, data_seed: int = 42
) -> TwoDNoisy:
    """DeepOBS-style noisy 2-D problem ``two_d_<name>`` for name in rosenbrock, beale, branin.

    The minima listed are those of the noise-free function (the expected loss); the
    empirical loss over the finite training set is that function plus a small linear tilt.
    """
    if name not in _DEEPOBS_2D:
        raise ValueError(f"name must be one of {', '.join(_DEEPOBS_2D)}, got {name!r}")
    if not (np.isfinite(noise_level) and noise_level >= 0):
        raise ValueError(f"noise_level must be a finite number >= 0, got {noise_level!r}")
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train!r}")
    factory, start = _DEEPOBS_2D[name]
    base = factory()
    rng = np.random.RandomState(data_seed)  # DeepOBS' generator and draw order  # noqa: NPY002
    a = rng.normal(0.0, noise_level, int(n_train))
    b = rng.normal(0.0, noise_level, int(n_train))
    data = np.stack([a, b], axis=1)
    return TwoDNoisy(
        name=f"two_d_{name}",
        dim=2,
        x0=np.asarray(start, dtype=np.float64),
        description=f"DeepOBS-style noisy {name}: f + a·u + b·v, (a, b) ~ N(0, {noise_level:g}²)",
        bounds=base.bounds,
        minima=base.minima,
        f_min=base.f_min,
        n_train=int(n_train),
        base=base,
        data=data,
    )
