"""The one small interface every objective shares.

A *problem* is something to minimize. The loop in :mod:`steplab.run` only needs

- ``dim``: number of parameters, ``x0``: the start point, ``initial_point(seed)``;
- ``value_and_grad(x, batch=None, rng=None)``: loss and gradient, where ``x`` has shape
  ``(d,)`` for one run or ``(K, d)`` for K runs at once (row k only depends on row k);
- ``n_train``: ``None`` for problems without a dataset, else the number of training
  examples; ``batch`` then holds example indices, shape ``(m,)`` or ``(K, m)``;
- ``stochastic``: ``True`` when ``value_and_grad`` draws noise from ``rng`` (one
  ``numpy.random.Generator`` per row, so every run has its own noise stream);
- ``evaluate(x)``: full-data metrics (``{"loss": ...}`` and, for models, validation and
  test metrics).

Test functions also carry what a plot or a test needs: ``bounds`` (one ``(low, high)``
pair per coordinate), ``minima`` (known global minimizers) and ``f_min`` (their value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def as_rows(x) -> tuple[np.ndarray, bool]:
    """View ``x`` as a ``(K, d)`` float array; also say whether it came in as one ``(d,)`` row."""
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if array.ndim == 1:
        return array[None, :], True
    if array.ndim == 2:
        return array, False
    raise ValueError(f"x must have shape (d,) or (K, d), got shape {array.shape}")


def from_rows(values: np.ndarray, single: bool):
    """Undo :func:`as_rows` on a result: a float for one row of scalars, else the array."""
    if not single:
        return values
    out = values[0]
    return float(out) if np.ndim(out) == 0 else out


@dataclass
class Problem:
    """Base class of all objectives; subclasses implement ``_value_and_grad_rows``.

    ``_value_and_grad_rows(X, batch, rngs)`` receives ``X`` of shape ``(K, d)`` and returns
    ``(values of shape (K,), gradients of shape (K, d))``.
    """

    name: str
    dim: int
    x0: np.ndarray
    description: str = ""
    bounds: np.ndarray | None = None  # shape (d, 2): a box for plots and random starts
    minima: tuple[np.ndarray, ...] = ()  # known global minimizers
    f_min: float | None = None  # the value there
    stationary_points: tuple[np.ndarray, ...] = field(default=())  # saddles etc.
    n_train: int | None = None
    stochastic: bool = False

    def __post_init__(self) -> None:
        self.x0 = np.asarray(self.x0, dtype=np.float64).reshape(-1)
        if self.x0.shape != (self.dim,):
            raise ValueError(f"x0 must have {self.dim} coordinates, got shape {self.x0.shape}")
        if self.bounds is not None:
            self.bounds = np.asarray(self.bounds, dtype=np.float64).reshape(self.dim, 2)
        self.minima = tuple(np.asarray(m, dtype=np.float64) for m in self.minima)
        self.stationary_points = tuple(
            np.asarray(p, dtype=np.float64) for p in self.stationary_points
        )

    # -- the interface -----------------------------------------------------------------

    def value_and_grad(self, x, batch=None, rng=None):
        """Loss and gradient at ``x`` (shape ``(d,)`` or ``(K, d)``).

        ``batch``: example indices for data problems (``(m,)`` or ``(K, m)``; ``None`` =
        all training data). ``rng``: a ``Generator`` (or one per row) for stochastic
        problems; ``None`` gives the noise-free loss and gradient.
        """
        X, single = as_rows(x)
        self._check_dim(X)
        if batch is not None:
            batch = np.asarray(batch)
            if batch.ndim == 1:
                batch = np.broadcast_to(batch, (X.shape[0], batch.shape[0]))
            if batch.shape[0] != X.shape[0]:
                raise ValueError(f"batch has {batch.shape[0]} rows but x has {X.shape[0]}")
        rngs = None
        if rng is not None:
            rngs = [rng] if isinstance(rng, np.random.Generator) else list(rng)
            if len(rngs) != X.shape[0]:
                raise ValueError(f"need one Generator per row of x ({X.shape[0]}), got {len(rngs)}")
        values, grads = self._value_and_grad_rows(X, batch, rngs)
        return from_rows(values, single), from_rows(grads, single)

    def value(self, x, batch=None):
        """The (noise-free) loss at ``x``: a float for shape ``(d,)``, an array ``(K,)`` else."""
        return self.value_and_grad(x, batch)[0]

    def grad(self, x, batch=None):
        """The (noise-free) gradient at ``x``, shaped like ``x``."""
        return self.value_and_grad(x, batch)[1]

    __call__ = value

    def initial_point(self, seed: int | None = None) -> np.ndarray:
        """The start point of a run with this seed (test functions: always ``x0``)."""
        return self.x0.copy()

    def evaluate(self, x) -> dict:
        """Full-data metrics at ``x``; for a plain function just ``{"loss": value}``."""
        return {"loss": self.value(x)}

    def info(self) -> dict:
        """A JSON-friendly description (for run records)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "description": self.description,
            "x0": self.x0.tolist() if self.dim <= 100 else None,
            "f_min": self.f_min,
            "n_train": self.n_train,
            "stochastic": self.stochastic,
        }

    # -- helpers -----------------------------------------------------------------------

    def _check_dim(self, X: np.ndarray) -> None:
        if X.shape[1] != self.dim:
            raise ValueError(f"{self.name} has {self.dim} parameters, got x with {X.shape[1]}")

    def _value_and_grad_rows(self, X, batch, rngs):  # pragma: no cover - abstract
        raise NotImplementedError
