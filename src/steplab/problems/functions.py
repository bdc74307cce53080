"""Classic test functions with analytic gradients, known minima and literature start points.

Every formula works on rows: ``X`` has shape ``(K, d)``, values come back as ``(K,)`` and
gradients as ``(K, d)``. Start points follow Moré, Garbow & Hillstrom (1981) where they
define one; minima and values follow the usual references (Jamil & Yang 2013; the
Virtual Library of Simulation Experiments, sfu.ca/~ssurjano).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from steplab.problems.base import Problem

Rows = np.ndarray


@dataclass
class TestFunction(Problem):
    """A deterministic function given by row-wise ``f(X) -> (K,)`` and ``g(X) -> (K, d)``."""

    __test__ = False  # not a pytest test class, despite the name

    f: Callable[[Rows], Rows] | None = field(default=None, repr=False)
    g: Callable[[Rows], Rows] | None = field(default=None, repr=False)
    # The factory's own parameters (Rosenbrock's a and b, …): enough to build the same
    # function again, e.g. as a compiled kernel for sweeps (steplab.fast).
    parameters: dict = field(default_factory=dict)

    def _value_and_grad_rows(self, X, batch, rngs):
        return self.f(X), self.g(X)


def _check_dim(dim, minimum=1) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < minimum:
        raise ValueError(f"dim must be an integer >= {minimum}, got {dim!r}")
    return int(dim)


# --------------------------------------------------------------------------------------
# The saddle  x² − y²
# --------------------------------------------------------------------------------------


def saddle() -> TestFunction:
    """The saddle ``x² − y²``: unbounded below, one stationary point (a saddle) at 0.

    Starting just off the ridge (y = 1e-3) shows how fast each method escapes the saddle,
    as in the lecture's animation (Dettmers 2015, Radford).
    """

    def f(X):
        return X[:, 0] ** 2 - X[:, 1] ** 2

    def g(X):
        return np.stack([2 * X[:, 0], -2 * X[:, 1]], axis=1)

    return TestFunction(
        name="saddle",
        dim=2,
        x0=np.array([1.0, 1e-3]),
        description="saddle x² − y²: no minimum, a saddle point at the origin",
        bounds=np.array([(-1.5, 1.5), (-1.5, 1.5)]),
        f_min=-np.inf,
        stationary_points=(np.array([0.0, 0.0]),),
        f=f,
        g=g,
    )


# --------------------------------------------------------------------------------------
# Rosenbrock (any dimension ≥ 2)
# --------------------------------------------------------------------------------------


def rosenbrock(dim: int = 2, a: float = 1.0, b: float = 100.0) -> TestFunction:
    """Rosenbrock's banana valley ``Σ b(x_{i+1} − x_i²)² + (a − x_i)²``; minimum at (a, a², …).

    For ``a = 1`` the minimizer is all ones with value 0. Start point (−1.2, 1, −1.2, 1, …)
    (Rosenbrock 1960; Moré et al. 1981).
    """
    dim = _check_dim(dim, 2)

    def f(X):
        head, tail = X[:, :-1], X[:, 1:]
        return np.sum(b * (tail - head**2) ** 2 + (a - head) ** 2, axis=1)

    def g(X):
        head, tail = X[:, :-1], X[:, 1:]
        inner = tail - head**2
        G = np.zeros_like(X)
        G[:, :-1] += -4 * b * head * inner - 2 * (a - head)
        G[:, 1:] += 2 * b * inner
        return G

    x0 = np.where(np.arange(dim) % 2 == 0, -1.2, 1.0)
    minimum = np.empty(dim)
    minimum[0] = a
    for i in range(1, dim):  # x_{i+1} = x_i² along the valley floor
        minimum[i] = minimum[i - 1] ** 2
    if dim > 2 and a != 1.0:
        minimum_list: tuple = ()  # only a = 1 gives a clean closed form in n-D
    else:
        minimum_list = (minimum,)
    return TestFunction(
        name="rosenbrock",
        parameters={"a": a, "b": b},
        dim=dim,
        x0=x0,
        description="Rosenbrock's banana-shaped valley; minimum 0 at (1, 1)",
        bounds=np.array([(-2.0, 2.0)] + [(-1.0, 3.0)] * (dim - 1)),
        minima=minimum_list,
        f_min=0.0,
        f=f,
        g=g,
    )


# --------------------------------------------------------------------------------------
# Beale, Himmelblau, Branin, Goldstein–Price (2-D)
# --------------------------------------------------------------------------------------


def beale() -> TestFunction:
    """Beale: ``Σ_i (c_i − x + x yⁱ)²`` with c = (1.5, 2.25, 2.625); minimum 0 at (3, 0.5)."""
    c = (1.5, 2.25, 2.625)

    def f(X):
        x, y = X[:, 0], X[:, 1]
        return sum((c[i] - x + x * y ** (i + 1)) ** 2 for i in range(3))

    def g(X):
        x, y = X[:, 0], X[:, 1]
        gx = np.zeros_like(x)
        gy = np.zeros_like(y)
        for i in range(3):
            r = c[i] - x + x * y ** (i + 1)
            gx += 2 * r * (y ** (i + 1) - 1)
            gy += 2 * r * (i + 1) * x * y**i
        return np.stack([gx, gy], axis=1)

    return TestFunction(
        name="beale",
        dim=2,
        x0=np.array([1.0, 1.0]),
        description="Beale: flat plateaus and sharp ridges; minimum 0 at (3, 0.5)",
        bounds=np.array([(-4.5, 4.5), (-4.5, 4.5)]),
        minima=(np.array([3.0, 0.5]),),
        f_min=0.0,
        f=f,
        g=g,
    )


# The three minima other than (3, 2) are roots of a polynomial system; these digits come
# from Newton's method and are checked by the tests (gradient ≈ 0, value ≈ 0).
_HIMMELBLAU_MINIMA = tuple(
    np.array(point)
    for point in (
        [3.0, 2.0],
        [-2.805118086952745, 3.131312518250573],
        [-3.779310253377747, -3.283185991286170],
        [3.584428340330492, -1.848126526964404],
    )
)


def himmelblau() -> TestFunction:
    """Himmelblau: ``(x² + y − 11)² + (x + y² − 7)²``; four minima, all with value 0."""

    def f(X):
        x, y = X[:, 0], X[:, 1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    def g(X):
        x, y = X[:, 0], X[:, 1]
        u, v = x**2 + y - 11, x + y**2 - 7
        return np.stack([4 * x * u + 2 * v, 2 * u + 4 * y * v], axis=1)

    return TestFunction(
        name="himmelblau",
        dim=2,
        x0=np.array([0.0, 0.0]),
        description="Himmelblau: four global minima, all of value 0",
        bounds=np.array([(-5.0, 5.0), (-5.0, 5.0)]),
        minima=_HIMMELBLAU_MINIMA,
        f_min=0.0,
        f=f,
        g=g,
    )


def branin() -> TestFunction:
    """Branin–Hoo: ``a(y − bx² + cx − r)² + s(1 − t)cos x + s``; three minima of value 5/(4π).

    At a minimizer the square vanishes and cos x = −1, which leaves ``s·t = 5/(4π)``.
    """
    a, b, c, r, s, t = 1.0, 5.1 / (4 * np.pi**2), 5 / np.pi, 6.0, 10.0, 1 / (8 * np.pi)

    def f(X):
        x, y = X[:, 0], X[:, 1]
        return a * (y - b * x**2 + c * x - r) ** 2 + s * (1 - t) * np.cos(x) + s

    def g(X):
        x, y = X[:, 0], X[:, 1]
        inner = y - b * x**2 + c * x - r
        gx = 2 * a * inner * (c - 2 * b * x) - s * (1 - t) * np.sin(x)
        return np.stack([gx, 2 * a * inner], axis=1)

    minima = tuple(np.array([x, b * x**2 - c * x + r]) for x in (-np.pi, np.pi, 3 * np.pi))
    return TestFunction(
        name="branin",
        dim=2,
        x0=np.array([0.0, 5.0]),
        description="Branin–Hoo: three global minima of value 5/(4π) ≈ 0.397887",
        bounds=np.array([(-5.0, 10.0), (0.0, 15.0)]),
        minima=minima,
        f_min=5 / (4 * np.pi),
        f=f,
        g=g,
    )


def goldstein_price() -> TestFunction:
    """Goldstein–Price: a product of two quartics; minimum 3 at (0, −1), several local minima."""

    def parts(X):
        x, y = X[:, 0], X[:, 1]
        s, d = x + y + 1, 2 * x - 3 * y
        A = 19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2
        B = 18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2
        P = 1 + s**2 * A  # first factor
        Q = 30 + d**2 * B  # second factor
        return x, y, s, d, A, B, P, Q

    def f(X):
        *_, P, Q = parts(X)
        return P * Q

    def g(X):
        x, y, s, d, A, B, P, Q = parts(X)
        # d/dx and d/dy of each factor, by the product rule on (square × quadratic)
        Px = 2 * s * A + s**2 * (-14 + 6 * x + 6 * y)
        Py = 2 * s * A + s**2 * (-14 + 6 * x + 6 * y)
        Qx = 4 * d * B + d**2 * (-32 + 24 * x - 36 * y)
        Qy = -6 * d * B + d**2 * (48 - 36 * x + 54 * y)
        return np.stack([Px * Q + P * Qx, Py * Q + P * Qy], axis=1)

    return TestFunction(
        name="goldstein_price",
        dim=2,
        x0=np.array([-1.0, 1.0]),
        description="Goldstein–Price: steep, many local minima; minimum 3 at (0, −1)",
        bounds=np.array([(-2.0, 2.0), (-2.0, 2.0)]),
        minima=(np.array([0.0, -1.0]),),
        f_min=3.0,
        f=f,
        g=g,
    )


# --------------------------------------------------------------------------------------
# Rastrigin, Ackley, Styblinski–Tang (any dimension)
# --------------------------------------------------------------------------------------


def rastrigin(dim: int = 2, A: float = 10.0) -> TestFunction:
    """Rastrigin: ``A·d + Σ (x_i² − A cos 2πx_i)``; a grid of local minima, global 0 at 0."""
    dim = _check_dim(dim)

    def f(X):
        return A * dim + np.sum(X**2 - A * np.cos(2 * np.pi * X), axis=1)

    def g(X):
        return 2 * X + 2 * np.pi * A * np.sin(2 * np.pi * X)

    return TestFunction(
        name="rastrigin",
        parameters={"A": A},
        dim=dim,
        x0=np.full(dim, 2.5),
        description="Rastrigin: egg-crate of local minima; global minimum 0 at the origin",
        bounds=np.array([(-5.12, 5.12)] * dim),
        minima=(np.zeros(dim),),
        f_min=0.0,
        f=f,
        g=g,
    )


def ackley(dim: int = 2, a: float = 20.0, b: float = 0.2, c: float = 2 * np.pi) -> TestFunction:
    """Ackley: ``−a exp(−b·rms(x)) − exp(mean cos cx) + a + e``; global minimum 0 at 0.

    The rms term has a kink at the origin; there the gradient returned is 0, the
    subgradient that makes the origin stationary.
    """
    dim = _check_dim(dim)

    def f(X):
        rms = np.sqrt(np.mean(X**2, axis=1))
        return -a * np.exp(-b * rms) - np.exp(np.mean(np.cos(c * X), axis=1)) + a + np.e

    def g(X):
        rms = np.sqrt(np.mean(X**2, axis=1, keepdims=True))
        safe = np.where(rms > 0, rms, 1.0)  # d rms / dx = x / (d·rms), 0 at the origin
        d_rms = np.where(rms > 0, X / (dim * safe), 0.0)
        term1 = a * b * np.exp(-b * rms) * d_rms
        term2 = np.exp(np.mean(np.cos(c * X), axis=1, keepdims=True)) * c * np.sin(c * X) / dim
        return term1 + term2

    return TestFunction(
        name="ackley",
        parameters={"a": a, "b": b, "c": c},
        dim=dim,
        x0=np.full(dim, 3.0),
        description="Ackley: nearly flat outer region, deep hole at the origin (value 0)",
        bounds=np.array([(-5.0, 5.0)] * dim),
        minima=(np.zeros(dim),),
        f_min=0.0,
        f=f,
        g=g,
    )


def _styblinski_tang_root() -> float:
    # Each coordinate minimizes x⁴ − 16x² + 5x: the smallest root of 4x³ − 32x + 5 = 0.
    roots = np.roots([4.0, 0.0, -32.0, 5.0]).real
    return float(roots.min())


def styblinski_tang(dim: int = 2) -> TestFunction:
    """Styblinski–Tang: ``½ Σ (x_i⁴ − 16x_i² + 5x_i)``; minimum ≈ −39.16617·d at x_i ≈ −2.9035."""
    dim = _check_dim(dim)
    root = _styblinski_tang_root()

    def f(X):
        return 0.5 * np.sum(X**4 - 16 * X**2 + 5 * X, axis=1)

    def g(X):
        return 0.5 * (4 * X**3 - 32 * X + 5)

    f_min = 0.5 * dim * (root**4 - 16 * root**2 + 5 * root)
    return TestFunction(
        name="styblinski_tang",
        dim=dim,
        x0=np.full(dim, 0.5),
        description="Styblinski–Tang: 2^d local minima; global ≈ −39.166·d at x_i ≈ −2.9035",
        bounds=np.array([(-5.0, 5.0)] * dim),
        minima=(np.full(dim, root),),
        f_min=float(f_min),
        f=f,
        g=g,
    )


# --------------------------------------------------------------------------------------
# A long, narrow, curved valley
# --------------------------------------------------------------------------------------


def valley(along: float = 0.02, across: float = 10.0) -> TestFunction:
    """A long narrow curved valley ``along·x² + across·(y − sin x)²``; minimum 0 at the origin.

    The floor follows y = sin x; curvature across it is ``2·across`` but only about
    ``2·along`` along it, a ratio of 500 by default. Plain gradient descent zig-zags
    across the walls while creeping along the floor, which adaptive methods fix.
    """
    if not (along > 0 and across > 0):
        raise ValueError(f"along and across must be > 0, got {along!r} and {across!r}")

    def f(X):
        x, y = X[:, 0], X[:, 1]
        return along * x**2 + across * (y - np.sin(x)) ** 2

    def g(X):
        x, y = X[:, 0], X[:, 1]
        wall = 2 * across * (y - np.sin(x))
        return np.stack([2 * along * x - wall * np.cos(x), wall], axis=1)

    return TestFunction(
        name="valley",
        parameters={"along": along, "across": across},
        dim=2,
        x0=np.array([-7.0, 1.5]),
        description="long narrow curved valley along y = sin x; minimum 0 at the origin",
        bounds=np.array([(-8.0, 2.0), (-2.5, 2.5)]),
        minima=(np.array([0.0, 0.0]),),
        f_min=0.0,
        f=f,
        g=g,
    )
