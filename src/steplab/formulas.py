"""The 2-D test functions' formulas, written once, element by element.

``<name>_value(x, y, *parameters)`` and ``<name>_grad(x, y, *parameters) -> (∂f/∂x, ∂f/∂y)``
for every 2-D test function (:data:`FORMULAS`; parameters and defaults in
:data:`PARAMETERS`). They hold no state and need NumPy alone, so both layers that evaluate
them take them from here: :mod:`steplab.problems.functions` calls them on the columns of
``X`` (the test-function problems, also in n-D from the per-coordinate pieces), and
:mod:`steplab.fast` compiles the same functions with numba for one point inside its sweep
kernels.

So that both give the same bits, the formulas use only operations that round the same on
NumPy arrays and on floats: ``+ − × ÷``, ``**2`` (``x·x`` in both), ``np.sqrt``, ``np.cos``
and ``np.sin`` (the C library's, in NumPy too), and :func:`exact_exp`. Higher powers are
written as products: NumPy's ``x**3`` is a vectorized ``pow``, numba's is ``x·x·x``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np


def _c_exp(z: float) -> float:
    try:
        return math.exp(z)
    except OverflowError:  # math.exp raises where the C function returns inf
        return math.inf


_exp = np.frompyfunc(_c_exp, 1, 1)


def exact_exp(z):
    """``eᶻ`` element by element, rounded as the C library's ``exp`` rounds it.

    NumPy's float64 ``np.exp`` is vectorized on AVX-512 CPUs and differs from the C
    library's in the last bit for about one input in twenty, while compiled code (numba)
    calls the C library; ``steplab.fast`` compiles this function as ``math.exp``. Going
    through ``math.exp`` here keeps the problems and the sweep kernels equal bit for bit
    (as :func:`steplab.optim.ops.exact_pow` does for powers). Ackley, the one user, takes
    two exponentials per row, not per coordinate, so the Python-level loop costs little.
    """
    z = np.asarray(z)
    dtype = z.dtype if np.issubdtype(z.dtype, np.floating) else np.float64
    return np.asarray(_exp(z), dtype=dtype)


def saddle_value(x, y):
    """The saddle ``x² − y²``."""
    return x**2 - y**2


def saddle_grad(x, y):
    """``(2x, −2y)``."""
    return 2 * x, -2 * y


def rosenbrock_value(x, y, a, b):
    """``b(y − x²)² + (a − x)²``: the 2-D function, and in n-D the term of each pair
    ``(x, y) = (x_i, x_{i+1})`` of consecutive coordinates."""
    return b * (y - x**2) ** 2 + (a - x) ** 2


def rosenbrock_grad(x, y, a, b):
    """``(∂/∂x, ∂/∂y)`` of :func:`rosenbrock_value`."""
    inner = y - x**2
    return -4 * b * x * inner - 2 * (a - x), 2 * b * inner


def beale_residuals(x, y):
    """``r_i = c_i − x + x·yⁱ`` for i = 1, 2, 3 with c = (1.5, 2.25, 2.625)."""
    return 1.5 - x + x * y, 2.25 - x + x * (y * y), 2.625 - x + x * (y * y * y)


def beale_value(x, y):
    """Beale: ``r₁² + r₂² + r₃²`` with ``r_i = c_i − x + x·yⁱ``."""
    r1, r2, r3 = beale_residuals(x, y)
    return r1**2 + r2**2 + r3**2


def beale_grad(x, y):
    """``Σ 2r_i·∂r_i``, where ``∂r_i/∂x = yⁱ − 1`` and ``∂r_i/∂y = i·x·yⁱ⁻¹``."""
    r1, r2, r3 = beale_residuals(x, y)
    gx = 2 * r1 * (y - 1) + 2 * r2 * (y * y - 1) + 2 * r3 * (y * y * y - 1)
    gy = 2 * r1 * x + 2 * r2 * (2 * x * y) + 2 * r3 * (3 * x * (y * y))
    return gx, gy


def himmelblau_value(x, y):
    """Himmelblau: ``(x² + y − 11)² + (x + y² − 7)²``."""
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def himmelblau_grad(x, y):
    """``(4xu + 2v, 2u + 4yv)`` with u, v the two bracketed terms."""
    u, v = x**2 + y - 11, x + y**2 - 7
    return 4 * x * u + 2 * v, 2 * u + 4 * y * v


BRANIN = (1.0, 5.1 / (4 * np.pi**2), 5 / np.pi, 6.0, 10.0, 1 / (8 * np.pi))


def branin_value(x, y):
    """Branin–Hoo: ``a(y − bx² + cx − r)² + s(1 − t)cos x + s``."""
    a, b, c, r, s, t = BRANIN
    return a * (y - b * x**2 + c * x - r) ** 2 + s * (1 - t) * np.cos(x) + s


def branin_grad(x, y):
    """``(2a·inner·(c − 2bx) − s(1 − t)sin x, 2a·inner)`` with inner the bracket."""
    a, b, c, r, s, t = BRANIN
    inner = y - b * x**2 + c * x - r
    return 2 * a * inner * (c - 2 * b * x) - s * (1 - t) * np.sin(x), 2 * a * inner


def goldstein_price_parts(x, y):
    """``s, d, A, B`` of the two factors ``P = 1 + s²A`` and ``Q = 30 + d²B``."""
    s, d = x + y + 1, 2 * x - 3 * y
    A = 19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2
    B = 18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2
    return s, d, A, B


def goldstein_price_value(x, y):
    """Goldstein–Price: ``(1 + s²A)(30 + d²B)`` with s = x + y + 1, d = 2x − 3y."""
    s, d, A, B = goldstein_price_parts(x, y)
    return (1 + s**2 * A) * (30 + d**2 * B)


def goldstein_price_grad(x, y):
    """``(P_x·Q + P·Q_x, P_y·Q + P·Q_y)``, by the product rule twice."""
    s, d, A, B = goldstein_price_parts(x, y)
    P, Q = 1 + s**2 * A, 30 + d**2 * B  # the two factors
    # d/dx and d/dy of each factor, by the product rule on (square × quadratic)
    Pxy = 2 * s * A + s**2 * (-14 + 6 * x + 6 * y)  # ∂P/∂x = ∂P/∂y
    Qx = 4 * d * B + d**2 * (-32 + 24 * x - 36 * y)
    Qy = -6 * d * B + d**2 * (48 - 36 * x + 54 * y)
    return Pxy * Q + P * Qx, Pxy * Q + P * Qy


def rastrigin_term(t, A):
    """One coordinate's share of Rastrigin: ``t² − A cos 2πt + A`` (0 at t = 0)."""
    return t**2 - A * np.cos(2 * np.pi * t) + A


def rastrigin_slope(t, A):
    """The derivative of :func:`rastrigin_term`: ``2t + 2πA sin 2πt``."""
    return 2 * t + 2 * np.pi * A * np.sin(2 * np.pi * t)


def rastrigin_value(x, y, A):
    """Rastrigin in 2-D: the sum of both coordinates' terms."""
    return rastrigin_term(x, A) + rastrigin_term(y, A)


def rastrigin_grad(x, y, A):
    """Each coordinate's slope."""
    return rastrigin_slope(x, A), rastrigin_slope(y, A)


def ackley_of_means(mean_square, mean_cos, a, b):
    """Ackley from the means over coordinates of ``x_i²`` and ``cos(c·x_i)``:
    ``−a exp(−b·√mean_square) − exp(mean_cos) + a + e``."""
    return -a * exact_exp(-b * np.sqrt(mean_square)) - exact_exp(mean_cos) + a + np.e


def ackley_slopes(mean_square, mean_cos, d, a, b, c):
    """``(pull, wave)`` such that ``∂f/∂x_i = pull·x_i + wave·sin(c·x_i)`` in d dimensions."""
    rms = np.sqrt(mean_square)
    # ∂rms/∂x_i = x_i/(d·rms). At the origin (rms = 0) every x_i is 0: dividing by 1
    # there instead gives the subgradient 0 that makes the origin stationary.
    pull = a * b * exact_exp(-b * rms) / (d * (rms + (rms == 0)))
    wave = c * exact_exp(mean_cos) / d
    return pull, wave


def ackley_value(x, y, a, b, c):
    """Ackley in 2-D: :func:`ackley_of_means` of the means over x and y."""
    return ackley_of_means((x**2 + y**2) / 2, (np.cos(c * x) + np.cos(c * y)) / 2, a, b)


def ackley_grad(x, y, a, b, c):
    """``pull·x + wave·sin(cx)`` for each coordinate (:func:`ackley_slopes`)."""
    pull, wave = ackley_slopes((x**2 + y**2) / 2, (np.cos(c * x) + np.cos(c * y)) / 2, 2, a, b, c)
    return pull * x + wave * np.sin(c * x), pull * y + wave * np.sin(c * y)


def styblinski_tang_term(t):
    """One coordinate's share of Styblinski–Tang: ``½(t⁴ − 16t² + 5t)``."""
    return 0.5 * ((t * t) ** 2 - 16 * t**2 + 5 * t)


def styblinski_tang_slope(t):
    """The derivative of :func:`styblinski_tang_term`: ``½(4t³ − 32t + 5)``."""
    return 0.5 * (4 * (t * t * t) - 32 * t + 5)


def styblinski_tang_value(x, y):
    """Styblinski–Tang in 2-D: the sum of both coordinates' terms."""
    return styblinski_tang_term(x) + styblinski_tang_term(y)


def styblinski_tang_grad(x, y):
    """Each coordinate's slope."""
    return styblinski_tang_slope(x), styblinski_tang_slope(y)


def valley_value(x, y, along, across):
    """``along·x² + across·(y − sin x)²``."""
    return along * x**2 + across * (y - np.sin(x)) ** 2


def valley_grad(x, y, along, across):
    """``(2·along·x − wall·cos x, wall)`` with ``wall = 2·across·(y − sin x)``."""
    wall = 2 * across * (y - np.sin(x))
    return 2 * along * x - wall * np.cos(x), wall


#: name -> (value, gradient): each 2-D test function (the factory of the same name at
#: dim = 2) as ``value(x, y, *parameters)`` and ``grad(x, y, *parameters) -> (gx, gy)``,
#: the parameters being the factory's others, in its order. ``steplab.fast`` compiles
#: these for its sweep kernels; the problems above evaluate the same functions.
FORMULAS: dict[str, tuple[Callable, Callable]] = {
    "saddle": (saddle_value, saddle_grad),
    "rosenbrock": (rosenbrock_value, rosenbrock_grad),
    "beale": (beale_value, beale_grad),
    "himmelblau": (himmelblau_value, himmelblau_grad),
    "branin": (branin_value, branin_grad),
    "goldstein_price": (goldstein_price_value, goldstein_price_grad),
    "rastrigin": (rastrigin_value, rastrigin_grad),
    "ackley": (ackley_value, ackley_grad),
    "styblinski_tang": (styblinski_tang_value, styblinski_tang_grad),
    "valley": (valley_value, valley_grad),
}


def _parameters(value: Callable) -> tuple[str, ...]:
    return tuple(list(inspect.signature(value).parameters)[2:])  # after x, y


#: Default values of each function's parameters (the problems' factories use the same).
DEFAULTS: dict[str, dict[str, float]] = {
    "rosenbrock": {"a": 1.0, "b": 100.0},
    "rastrigin": {"A": 10.0},
    "ackley": {"a": 20.0, "b": 0.2, "c": 2 * np.pi},
    "valley": {"along": 0.02, "across": 10.0},
}

#: name -> (parameter names, default values), in the order the formulas take them
PARAMETERS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    name: (names, tuple(DEFAULTS[name][n] for n in names))
    for name, (value, _) in FORMULAS.items()
    for names in [_parameters(value)]
}
