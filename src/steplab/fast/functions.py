"""The built-in 2-D test functions as scalar numba functions, for the sweep kernels.

Each ``<name>_value(x, y, p)`` and ``<name>_grad(x, y, p) -> (∂f/∂x, ∂f/∂y)`` is the
formula of ``steplab.problems.functions`` for one point; ``p0, p1, p2`` are the
function's parameters (Rosenbrock's a and b, …) in the order of :data:`PARAMETERS`
(scalars, not an array: passing arrays into a function inside the sweep loop would
cost reference counting there and stop the loop from vectorizing). Tests check
them against the problems' NumPy values and gradients.
"""

from __future__ import annotations

import math

from steplab.fast._numba import lazy_jit

#: name -> (parameter names, default values), as the problems' factories define them
PARAMETERS = {
    "saddle": ((), ()),
    "rosenbrock": (("a", "b"), (1.0, 100.0)),
    "beale": ((), ()),
    "himmelblau": ((), ()),
    "branin": ((), ()),
    "goldstein_price": ((), ()),
    "rastrigin": (("A",), (10.0,)),
    "ackley": (("a", "b", "c"), (20.0, 0.2, 2 * math.pi)),
    "styblinski_tang": ((), ()),
    "valley": (("along", "across"), (0.02, 10.0)),
}


@lazy_jit(inline=True)
def saddle_value(x, y, p0, p1, p2):
    return x * x - y * y


@lazy_jit(inline=True)
def saddle_grad(x, y, p0, p1, p2):
    return 2 * x, -2 * y


@lazy_jit(inline=True)
def rosenbrock_value(x, y, p0, p1, p2):
    a, b = p0, p1
    return b * (y - x * x) ** 2 + (a - x) ** 2


@lazy_jit(inline=True)
def rosenbrock_grad(x, y, p0, p1, p2):
    a, b = p0, p1
    inner = y - x * x
    return -4 * b * x * inner - 2 * (a - x), 2 * b * inner


@lazy_jit(inline=True)
def beale_value(x, y, p0, p1, p2):
    r1, r2, r3 = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y * y * y
    return r1 * r1 + r2 * r2 + r3 * r3


@lazy_jit(inline=True)
def beale_grad(x, y, p0, p1, p2):
    r1, r2, r3 = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y * y * y
    gx = 2 * r1 * (y - 1) + 2 * r2 * (y * y - 1) + 2 * r3 * (y * y * y - 1)
    gy = 2 * r1 * x + 2 * r2 * 2 * x * y + 2 * r3 * 3 * x * y * y
    return gx, gy


@lazy_jit(inline=True)
def himmelblau_value(x, y, p0, p1, p2):
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


@lazy_jit(inline=True)
def himmelblau_grad(x, y, p0, p1, p2):
    u, v = x * x + y - 11, x + y * y - 7
    return 4 * x * u + 2 * v, 2 * u + 4 * y * v


# Branin–Hoo's constants a, b, c, r, s, t
_BRANIN = (1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi))


@lazy_jit(inline=True)
def branin_value(x, y, p0, p1, p2):
    a, b, c, r, s, t = _BRANIN
    return a * (y - b * x * x + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


@lazy_jit(inline=True)
def branin_grad(x, y, p0, p1, p2):
    a, b, c, r, s, t = _BRANIN
    inner = y - b * x * x + c * x - r
    return 2 * a * inner * (c - 2 * b * x) - s * (1 - t) * math.sin(x), 2 * a * inner


@lazy_jit(inline=True)
def goldstein_price_value(x, y, p0, p1, p2):
    s, d = x + y + 1, 2 * x - 3 * y
    A = 19 - 14 * x + 3 * x * x - 14 * y + 6 * x * y + 3 * y * y
    B = 18 - 32 * x + 12 * x * x + 48 * y - 36 * x * y + 27 * y * y
    return (1 + s * s * A) * (30 + d * d * B)


@lazy_jit(inline=True)
def goldstein_price_grad(x, y, p0, p1, p2):
    s, d = x + y + 1, 2 * x - 3 * y
    A = 19 - 14 * x + 3 * x * x - 14 * y + 6 * x * y + 3 * y * y
    B = 18 - 32 * x + 12 * x * x + 48 * y - 36 * x * y + 27 * y * y
    P, Q = 1 + s * s * A, 30 + d * d * B  # the two factors
    Pxy = 2 * s * A + s * s * (-14 + 6 * x + 6 * y)  # ∂P/∂x = ∂P/∂y
    Qx = 4 * d * B + d * d * (-32 + 24 * x - 36 * y)
    Qy = -6 * d * B + d * d * (48 - 36 * x + 54 * y)
    return Pxy * Q + P * Qx, Pxy * Q + P * Qy


@lazy_jit(inline=True)
def rastrigin_value(x, y, p0, p1, p2):
    A = p0
    two_pi = 2 * math.pi
    return A * 2 + (x * x - A * math.cos(two_pi * x)) + (y * y - A * math.cos(two_pi * y))


@lazy_jit(inline=True)
def rastrigin_grad(x, y, p0, p1, p2):
    A = p0
    two_pi = 2 * math.pi
    return 2 * x + two_pi * A * math.sin(two_pi * x), 2 * y + two_pi * A * math.sin(two_pi * y)


@lazy_jit(inline=True)
def ackley_value(x, y, p0, p1, p2):
    a, b, c = p0, p1, p2
    rms = math.sqrt((x * x + y * y) / 2)
    return -a * math.exp(-b * rms) - math.exp((math.cos(c * x) + math.cos(c * y)) / 2) + a + math.e


@lazy_jit(inline=True)
def ackley_grad(x, y, p0, p1, p2):
    a, b, c = p0, p1, p2
    rms = math.sqrt((x * x + y * y) / 2)
    # d rms/dx_i = x_i/(2·rms); at the origin the subgradient 0 (as the problem defines it)
    pull = a * b * math.exp(-b * rms) / (2 * rms) if rms > 0 else 0.0
    wave = math.exp((math.cos(c * x) + math.cos(c * y)) / 2) * c / 2
    return pull * x + wave * math.sin(c * x), pull * y + wave * math.sin(c * y)


@lazy_jit(inline=True)
def styblinski_tang_value(x, y, p0, p1, p2):
    return 0.5 * (x**4 - 16 * x * x + 5 * x) + 0.5 * (y**4 - 16 * y * y + 5 * y)


@lazy_jit(inline=True)
def styblinski_tang_grad(x, y, p0, p1, p2):
    return 0.5 * (4 * x**3 - 32 * x + 5), 0.5 * (4 * y**3 - 32 * y + 5)


@lazy_jit(inline=True)
def valley_value(x, y, p0, p1, p2):
    along, across = p0, p1
    return along * x * x + across * (y - math.sin(x)) ** 2


@lazy_jit(inline=True)
def valley_grad(x, y, p0, p1, p2):
    along, across = p0, p1
    wall = 2 * across * (y - math.sin(x))
    return 2 * along * x - wall * math.cos(x), wall


#: name -> (value, gradient) numba functions
FUNCTIONS = {name: (globals()[f"{name}_value"], globals()[f"{name}_grad"]) for name in PARAMETERS}
