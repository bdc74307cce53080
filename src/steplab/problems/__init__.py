"""Objectives to minimize: test functions, quadratics, formulas, noisy and ML problems.

>>> import steplab as sl
>>> p = sl.problems.get("rosenbrock")
>>> p.value(p.minima[0])
0.0

``sl.problems.list_problems()`` names everything in :data:`CATALOGUE` (each with a one-line
description); ``get(name, **options)`` builds one. See :mod:`steplab.problems.base` for the
interface every problem shares.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

from steplab.problems import datasets
from steplab.problems.base import Problem
from steplab.problems.custom import FunctionProblem, central_difference, function
from steplab.problems.datasets import Dataset, from_csv
from steplab.problems.expression import ExpressionProblem, expression
from steplab.problems.functions import (
    TestFunction,
    ackley,
    beale,
    branin,
    goldstein_price,
    himmelblau,
    rastrigin,
    rosenbrock,
    saddle,
    styblinski_tang,
    valley,
)
from steplab.problems.ml import (
    Network,
    linear_regression,
    logistic_regression,
    mlp,
    softmax_regression,
)
from steplab.problems.noise import GradientNoise, TwoDNoisy, two_d_noisy, with_gradient_noise
from steplab.problems.quadratic import NoisyQuadratic, Quadratic, quadratic, quadratic_deep


@dataclass(frozen=True)
class Entry:
    """A catalogue entry: how to build the problem and what it is, in one line."""

    factory: Callable[..., Problem]
    description: str
    kind: str  # "function", "stochastic" or "ml"


def _two_d(name):
    def build(**options):
        return two_d_noisy(name, **options)

    build.__doc__ = f"DeepOBS-style noisy {name} (see steplab.problems.noise.two_d_noisy)."
    return build


CATALOGUE: dict[str, Entry] = {
    "quadratic": Entry(
        quadratic,
        "quadratic form ½xᵀAx in any dimension, given eigenvalues or condition number",
        "function",
    ),
    "saddle": Entry(
        saddle, "saddle x² − y²: unbounded below, saddle point at the origin", "function"
    ),
    "rosenbrock": Entry(rosenbrock, "Rosenbrock's banana valley; minimum 0 at (1, 1)", "function"),
    "beale": Entry(beale, "Beale: plateaus and sharp ridges; minimum 0 at (3, 0.5)", "function"),
    "himmelblau": Entry(himmelblau, "Himmelblau: four global minima of value 0", "function"),
    "rastrigin": Entry(
        rastrigin, "Rastrigin: egg-crate of local minima; global 0 at the origin", "function"
    ),
    "ackley": Entry(
        ackley, "Ackley: flat outer region, deep hole at the origin (value 0)", "function"
    ),
    "branin": Entry(branin, "Branin–Hoo: three global minima of value 5/(4π) ≈ 0.3979", "function"),
    "styblinski_tang": Entry(
        styblinski_tang, "Styblinski–Tang: minimum ≈ −39.166·d at x_i ≈ −2.9035", "function"
    ),
    "goldstein_price": Entry(
        goldstein_price, "Goldstein–Price: steep, local minima; minimum 3 at (0, −1)", "function"
    ),
    "valley": Entry(
        valley, "long narrow curved valley along y = sin x; minimum 0 at the origin", "function"
    ),
    "two_d_rosenbrock": Entry(
        _two_d("rosenbrock"),
        "DeepOBS-style Rosenbrock with minibatch noise from data",
        "stochastic",
    ),
    "two_d_beale": Entry(
        _two_d("beale"), "DeepOBS-style Beale with minibatch noise from data", "stochastic"
    ),
    "two_d_branin": Entry(
        _two_d("branin"), "DeepOBS-style Branin with minibatch noise from data", "stochastic"
    ),
    "quadratic_deep": Entry(
        quadratic_deep,
        "DeepOBS quadratic_deep: 100-D noisy quadratic, 90 small and 10 large eigenvalues",
        "stochastic",
    ),
    "linear_regression": Entry(
        linear_regression,
        "least squares on a regression dataset (default: the lecture's synthetic one)",
        "ml",
    ),
    "logistic_regression": Entry(
        logistic_regression, "binary logistic regression (default: breast_cancer)", "ml"
    ),
    "softmax_regression": Entry(
        softmax_regression, "softmax regression (default: digits; try 'mnist1d')", "ml"
    ),
    "mlp": Entry(mlp, "multilayer perceptron, ReLU or tanh, optional L2 (default: digits)", "ml"),
}


def list_problems(kind: str | None = None) -> list[str]:
    """Names in the catalogue, optionally only one ``kind`` ("function", "stochastic", "ml")."""
    if kind is not None and kind not in ("function", "stochastic", "ml"):
        raise ValueError(f"kind must be 'function', 'stochastic', 'ml' or None, got {kind!r}")
    return [name for name, entry in CATALOGUE.items() if kind is None or entry.kind == kind]


def describe() -> str:
    """The catalogue as text: one line per problem."""
    width = max(map(len, CATALOGUE))
    return "\n".join(f"{name:<{width}}  {e.description}" for name, e in CATALOGUE.items())


def get(name: str, **options) -> Problem:
    """Build the catalogued problem ``name``; ``options`` go to its factory (e.g. ``dim=10``)."""
    if not isinstance(name, str):
        raise TypeError(f"problem name must be a str, got {type(name).__name__}")
    if name not in CATALOGUE:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name].factory(**options)


def __getattr__(name: str) -> object:
    # ``problems.list`` was the old name of list_problems; as a module attribute it
    # shadowed the builtin inside this module, so it now lives only here, deprecated.
    if name == "list":
        warnings.warn(
            "steplab.problems.list is deprecated; use steplab.problems.list_problems",
            DeprecationWarning,
            stacklevel=2,
        )
        return list_problems
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CATALOGUE",
    "Dataset",
    "Entry",
    "ExpressionProblem",
    "FunctionProblem",
    "GradientNoise",
    "Network",
    "NoisyQuadratic",
    "Problem",
    "Quadratic",
    "TestFunction",
    "TwoDNoisy",
    "ackley",
    "beale",
    "branin",
    "central_difference",
    "datasets",
    "describe",
    "expression",
    "from_csv",
    "function",
    "get",
    "goldstein_price",
    "himmelblau",
    "linear_regression",
    "list_problems",
    "logistic_regression",
    "mlp",
    "quadratic",
    "quadratic_deep",
    "rastrigin",
    "rosenbrock",
    "saddle",
    "softmax_regression",
    "styblinski_tang",
    "two_d_noisy",
    "valley",
    "with_gradient_noise",
]
