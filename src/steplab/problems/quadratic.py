"""Quadratic forms ``½ (x − c)ᵀ A (x − c)`` in any dimension, and DeepOBS' ``quadratic_deep``.

A quadratic is the cleanest lab for step sizes: the Hessian is ``A`` everywhere, so the
eigenvalues say exactly which step sizes converge (GD needs ``lr < 2/λ_max``) and the
condition number ``λ_max/λ_min`` says how slow the slowest direction is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steplab.problems.base import Problem, as_rows, from_rows


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def rotation_2d(angle: float) -> np.ndarray:
    """The 2-D rotation by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class Quadratic(Problem):
    """``½ (x − c)ᵀ A (x − c)`` with ``A = Q diag(λ) Qᵀ``: gradient ``A (x − c)``."""

    A: np.ndarray = field(repr=False)
    center: np.ndarray = field(repr=False)
    eigenvalues: np.ndarray = field(repr=False)

    def _value_and_grad_rows(self, X, batch, rngs):
        diff = X - self.center
        # (K, 1, d) @ (d, d): numpy loops over rows, so row k never depends on K.
        G = np.matmul(diff[:, None, :], self.A.astype(X.dtype))[:, 0, :]
        return 0.5 * np.sum(diff * G, axis=1), G


def quadratic(
    eigenvalues=None,
    *,
    condition: float | None = None,
    dim: int = 2,
    rotation=None,
    center=None,
    x0=None,
    seed: int = 0,
) -> Quadratic:
    """A positive definite quadratic form in any dimension.

    Parameters
    ----------
    eigenvalues : the Hessian's eigenvalues (all > 0); sets ``dim``.
    condition : instead of ``eigenvalues``, a condition number κ ≥ 1: the eigenvalues are
        log-spaced from 1 to κ (so ``dim=2`` gives ``[1, κ]``). Default κ = 10.
    rotation : ``None`` or ``0`` for an axis-aligned form; an angle in radians (2-D only);
        ``"random"`` (or ``True``) for a random rotation drawn with ``seed``.
    center : the minimizer (default the origin). ``x0``: start (default all 2.0).
    """
    if eigenvalues is not None and condition is not None:
        raise ValueError("give eigenvalues or condition, not both")
    if eigenvalues is None:
        condition = 10.0 if condition is None else condition
        if not (np.isfinite(condition) and condition >= 1):
            raise ValueError(f"condition must be a finite number >= 1, got {condition!r}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
        eigenvalues = np.geomspace(1.0, condition, int(dim))
    lam = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"eigenvalues must be finite and > 0, got {eigenvalues!r}")
    dim = lam.size

    if rotation is None or (
        not isinstance(rotation, str) and rotation is not True and rotation == 0
    ):
        Q = np.eye(dim)
    elif rotation is True or rotation == "random":
        Q = random_rotation(dim, np.random.default_rng(seed))
    elif isinstance(rotation, (int, float)) and not isinstance(rotation, bool):
        if dim != 2:
            raise ValueError("rotation by an angle needs dim=2; use rotation='random' in n-D")
        Q = rotation_2d(float(rotation))
    else:
        raise ValueError(
            f"rotation must be None, an angle in radians or 'random', got {rotation!r}"
        )
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)  # exactly symmetric despite rounding

    c = np.zeros(dim) if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
    if c.shape != (dim,):
        raise ValueError(f"center must have {dim} coordinates, got shape {c.shape}")
    start = c + 2.0 if x0 is None else x0
    kappa = lam.max() / lam.min()
    return Quadratic(
        name="quadratic",
        dim=dim,
        x0=start,
        description=f"quadratic form ½xᵀAx in {dim}-D, condition number {kappa:.3g}",
        bounds=np.array([(ci - 3.0, ci + 3.0) for ci in c]),
        minima=(c,),
        f_min=0.0,
        A=A,
        center=c,
        eigenvalues=lam,
    )


# --------------------------------------------------------------------------------------
# DeepOBS quadratic_deep
# --------------------------------------------------------------------------------------


def subgroup_rotation(dim: int, rng: np.random.RandomState) -> np.ndarray:
    """A Haar-random rotation by the subgroup algorithm (Diaconis & Shahshahani 1987).

    This is the construction DeepOBS uses, draw for draw: start from a random 2-D
    rotation and, for each further dimension, embed the current rotation and reflect it by
    a Householder matrix towards a random unit vector. Returned negated, as in DeepOBS.
    """
    angle = 2 * np.pi * rng.uniform()
    R = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v /= np.sqrt(v.T @ v)  # a uniform point on the unit sphere S^d
        e = np.zeros((d + 1, 1))
        e[0] = 1.0
        x = (e - v) / np.sqrt((e - v).T @ (e - v))
        embedded = np.eye(d + 1)
        embedded[1:, 1:] = R
        R = embedded - 2 * x @ (x.T @ embedded)
    return -R


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class NoisyQuadratic(Problem):
    """``L(θ) = (1/n) Σ_i ½ (θ − z_i)ᵀ H (θ − z_i)`` over data points ``z_i``.

    A minibatch gives the gradient ``H (θ − mean z_batch)``: noise that comes from the data,
    as in a real empirical risk. The expected loss is minimal at ``θ = E z = 0``.
    """

    H: np.ndarray = field(repr=False)
    data: np.ndarray = field(repr=False)  # (n_train, dim)
    test_data: np.ndarray = field(repr=False)

    def _value_and_grad_rows(self, X, batch, rngs):
        return self._loss(X, self.data if batch is None else None, batch)

    def _loss(self, X, data, batch=None):
        Z = data[None] if batch is None else self.data[batch]  # (1 or K, m, d)
        diff = X[:, None, :] - Z  # (K, m, d)
        Hd = np.matmul(diff, self.H.astype(X.dtype))
        values = 0.5 * np.mean(np.sum(diff * Hd, axis=2), axis=1)
        return values, np.mean(Hd, axis=1)

    def evaluate(self, x) -> dict:
        """Full training loss and the loss on DeepOBS' separate test draws."""
        rows, single = as_rows(x)
        train = self._loss(rows, self.data)[0]
        test = self._loss(rows, self.test_data)[0]
        return {"loss": from_rows(train, single), "test_loss": from_rows(test, single)}


def quadratic_deep(*, n_train: int = 1000, noise_level: float = 0.6) -> NoisyQuadratic:
    """DeepOBS' ``quadratic_deep``: a 100-D noisy quadratic with a "deep-learning-like" spectrum.

    Built exactly as DeepOBS builds it (Schneider, Balles & Hennig 2019): one
    ``RandomState(42)`` draws 90 eigenvalues ~ U(0, 1), then 10 ~ U(30, 60), then the
    rotation R (:func:`subgroup_rotation`); ``H = Rᵀ diag(λ) R``. The ``n_train`` data points
    ``z_i ~ N(0, noise_level² I)`` come from ``RandomState(42)``, the test points from
    ``RandomState(43)``; start θ₀ = (1, …, 1). DeepOBS trains it with batch size 128 for
    100 epochs (and drops the last incomplete batch of each epoch, which we keep).
    """
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise ValueError(f"n_train must be an integer >= 1, got {n_train!r}")
    if not (np.isfinite(noise_level) and noise_level >= 0):
        raise ValueError(f"noise_level must be a finite number >= 0, got {noise_level!r}")
    rng = np.random.RandomState(42)  # DeepOBS' generator and draw order  # noqa: NPY002
    lam = np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)])
    R = subgroup_rotation(100, rng)
    H = R.T @ np.diag(lam) @ R
    H = 0.5 * (H + H.T)
    data = np.random.RandomState(42).normal(0.0, noise_level, (int(n_train), 100))  # noqa: NPY002
    test = np.random.RandomState(43).normal(0.0, noise_level, (int(n_train), 100))  # noqa: NPY002
    centred = data - data.mean(axis=0)
    return NoisyQuadratic(
        name="quadratic_deep",
        dim=100,
        x0=np.ones(100),
        description="DeepOBS quadratic_deep: 100-D noisy quadratic, λ ~ U(0,1)×90, U(30,60)×10",
        minima=(data.mean(axis=0),),  # the empirical risk's minimizer
        f_min=float(0.5 * np.mean(np.sum((centred @ H) * centred, axis=1))),
        n_train=int(n_train),
        H=H,
        data=data,
        test_data=test,
    )
