"""Quadratic forms ``½ (x − c)ᵀ A (x − c)`` in any dimension, and DeepOBS' ``quadratic_deep``.

A quadratic is the cleanest lab for step sizes: the Hessian is ``A`` everywhere, so the
eigenvalues say exactly which step sizes converge (GD needs ``lr < 2/λ_max``) and the
condition number ``λ_max/λ_min`` says how slow the slowest direction is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steplab.problems.base import Problem


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def rotation_2d(angle: float) -> np.ndarray:
    """The 2-D rotation by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


@dataclass
class Quadratic(Problem):
    """``½ (x − c)ᵀ A (x − c)`` with ``A = Q diag(λ) Qᵀ``: gradient ``A (x − c)``."""

    A: np.ndarray = field(default=None, repr=False)
    center: np.ndarray = field(default=None, repr=False)
    eigenvalues: np.ndarray = field(default=None, repr=False)

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
        bounds=[(ci - 3.0, ci + 3.0) for ci in c],
        minima=(c,),
        f_min=0.0,
        A=A,
        center=c,
        eigenvalues=lam,
    )


# --------------------------------------------------------------------------------------
# DeepOBS quadratic_deep
# --------------------------------------------------------------------------------------


@dataclass
class NoisyQuadratic(Problem):
    """``L(θ) = (1/n) Σ_i ½ (θ − z_i)ᵀ H (θ − z_i)`` over data points ``z_i``.

    A minibatch gives the gradient ``H (θ − mean z_batch)``: noise that comes from the data,
    as in a real empirical risk. The expected loss is minimal at ``θ = E z = 0``.
    """

    H: np.ndarray = field(default=None, repr=False)
    data: np.ndarray = field(default=None, repr=False)  # (n_train, dim)

    def _value_and_grad_rows(self, X, batch, rngs):
        Z = self.data[None] if batch is None else self.data[batch]  # (1 or K, m, d)
        diff = X[:, None, :] - Z  # (K, m, d)
        Hd = np.matmul(diff, self.H.astype(X.dtype))
        values = 0.5 * np.mean(np.sum(diff * Hd, axis=2), axis=1)
        return values, np.mean(Hd, axis=1)


def quadratic_deep(
    *, n_train: int = 1000, noise_level: float = 0.6, seed: int = 42, data_seed: int = 0
) -> NoisyQuadratic:
    """DeepOBS' ``quadratic_deep``: a 100-D noisy quadratic with a "deep-learning-like" spectrum.

    As in DeepOBS (Schneider, Balles & Hennig 2019): 90 eigenvalues ~ U(0, 1) and 10 ~
    U(30, 60), drawn with ``RandomState(seed=42)``, a random rotation, ``n_train`` data
    points ``z_i ~ N(0, noise_level² I)`` and start θ₀ = (1, …, 1). DeepOBS trains it with
    batch size 128 for 100 epochs.
    """
    state = np.random.RandomState(seed)  # DeepOBS' own generator, for its eigenvalues
    lam = np.concatenate([state.uniform(0.0, 1.0, 90), state.uniform(30.0, 60.0, 10)])
    R = random_rotation(100, np.random.default_rng(seed))
    H = R.T @ np.diag(lam) @ R
    H = 0.5 * (H + H.T)
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train!r}")
    data = np.random.default_rng(data_seed).normal(0.0, noise_level, size=(int(n_train), 100))
    return NoisyQuadratic(
        name="quadratic_deep",
        dim=100,
        x0=np.ones(100),
        description="DeepOBS quadratic_deep: 100-D noisy quadratic, λ ~ U(0,1)×90, U(30,60)×10",
        minima=(data.mean(axis=0),),  # the empirical risk's minimizer
        f_min=float(0.5 * np.mean(np.sum((data - data.mean(0)) @ H * (data - data.mean(0)), 1))),
        n_train=int(n_train),
        H=H,
        data=data,
    )
