"""Test functions: gradients against finite differences, minima where the catalogue says."""

import inspect
import math

import numpy as np
import pytest

from steplab import problems
from steplab.problems import functions
from steplab.problems.custom import central_difference

FUNCTIONS = problems.list_problems("function")


def fd_check(p, x, batch=None, rtol=1e-6):
    """Analytic gradient vs central differences, relative to the gradient's scale."""
    analytic = p.grad(x, batch)
    numeric = central_difference(lambda z: p.value(z, batch), x)
    scale = max(1.0, np.max(np.abs(numeric)))
    assert np.max(np.abs(analytic - numeric)) <= rtol * scale


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradient_matches_finite_differences_at_random_points(name):
    p = problems.get(name)
    rng = np.random.default_rng(1)
    low, high = p.bounds[:, 0], p.bounds[:, 1]
    for _ in range(5):
        fd_check(p, rng.uniform(low, high))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_catalogued_minima_are_stationary_with_the_catalogued_value(name):
    p = problems.get(name)
    for point in p.minima + p.stationary_points:
        assert np.linalg.norm(p.grad(point)) < 1e-8
    for point in p.minima:
        assert p.value(point) == pytest.approx(p.f_min, abs=1e-10)
        # and it really is a minimum: nearby points are not lower
        rng = np.random.default_rng(0)
        for _ in range(20):
            assert p.value(point + 1e-3 * rng.standard_normal(p.dim)) >= p.f_min - 1e-12


@pytest.mark.parametrize("name", FUNCTIONS)
def test_start_point_is_not_already_stationary(name):
    p = problems.get(name)
    assert np.linalg.norm(p.grad(p.x0)) > 1e-3
    assert p.bounds.shape == (p.dim, 2)


def test_literature_values():
    # Values known independently of this code.
    assert problems.rosenbrock().value([-1.2, 1.0]) == pytest.approx(24.2)  # Moré et al. 1981
    assert problems.beale().value([1.0, 1.0]) == pytest.approx(14.203125)  # Moré et al. 1981
    assert problems.goldstein_price().value([0.0, 0.0]) == pytest.approx(600.0)
    assert problems.branin().f_min == pytest.approx(0.397887, abs=1e-6)
    assert problems.styblinski_tang(dim=3).f_min == pytest.approx(-39.16617 * 3, abs=1e-4)
    assert problems.ackley().value([0.0, 0.0]) == pytest.approx(0.0, abs=1e-12)
    assert problems.saddle().value([2.0, 3.0]) == -5.0


@pytest.mark.parametrize("dim", [1, 3, 7])
@pytest.mark.parametrize("name", ["rastrigin", "ackley", "styblinski_tang"])
def test_any_dimension(name, dim):
    p = problems.get(name, dim=dim)
    assert p.dim == dim
    fd_check(p, np.random.default_rng(dim).uniform(-2, 2, dim))
    assert np.linalg.norm(p.grad(p.minima[0])) < 1e-8


def test_rosenbrock_in_n_dimensions():
    p = problems.rosenbrock(dim=5)
    assert p.value(np.ones(5)) == 0.0
    fd_check(p, np.random.default_rng(0).uniform(-1, 1, 5))


def test_rows_are_independent_and_equal_single_evaluation():
    p = problems.himmelblau()
    X = np.random.default_rng(0).uniform(-4, 4, (6, 2))
    values, grads = p.value_and_grad(X)
    assert values.shape == (6,) and grads.shape == (6, 2)
    for k in range(6):
        v, g = p.value_and_grad(X[k])
        assert v == values[k] and np.array_equal(g, grads[k])


def test_float32_stays_float32():
    p = problems.rosenbrock()
    _, g = p.value_and_grad(np.array([0.5, 0.5], dtype=np.float32))
    assert g.dtype == np.float32


def test_catalogue_lists_names_with_descriptions():
    names = problems.list_problems()
    for required in (
        "quadratic",
        "saddle",
        "rosenbrock",
        "beale",
        "himmelblau",
        "rastrigin",
        "ackley",
        "branin",
        "styblinski_tang",
        "goldstein_price",
        "valley",
        "quadratic_deep",
        "two_d_rosenbrock",
    ):
        assert required in names
    for entry in problems.CATALOGUE.values():
        assert entry.description and "\n" not in entry.description
    assert "rosenbrock" in problems.describe()


def test_bad_names_and_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown problem 'rosenbrok'.*rosenbrock"):
        problems.get("rosenbrok")
    with pytest.raises(ValueError, match="dim must be an integer"):
        problems.rastrigin(dim=0)
    with pytest.raises(ValueError, match="2 parameters"):
        problems.beale().value(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        problems.beale().value(np.zeros((2, 2, 2)))


def test_old_name_list_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="list_problems"):
        old = problems.list
    assert old is problems.list_problems
    assert "list" not in problems.__all__  # no longer shadows the builtin


# -- each formula once: the 2-D problems are their element-wise formulas ---------------


@pytest.mark.parametrize("name", list(functions.FORMULAS))
def test_plane_formulas_take_the_factorys_parameters_in_its_order(name):
    factory = getattr(functions, name)
    expected = [n for n in inspect.signature(factory).parameters if n != "dim"]
    for formula in functions.FORMULAS[name]:
        assert list(inspect.signature(formula).parameters)[2:] == expected, formula.__name__


@pytest.mark.parametrize("name", list(functions.FORMULAS))
def test_two_d_problems_are_their_plane_formulas_bit_for_bit(name):
    """At dim = 2 the n-D problems (Rosenbrock's pairs, Rastrigin's, Ackley's and
    Styblinski–Tang's sums over coordinates) give the 2-D formulas' bits, which
    steplab.fast compiles for its sweeps (checked there against the compiled ones)."""
    factory = getattr(functions, name)
    defaults = {
        n: p.default for n, p in inspect.signature(factory).parameters.items() if n != "dim"
    }  # fmt: skip
    for options in (defaults, {n: 1.5 * d for n, d in defaults.items()}):
        p = factory(**options)
        X = np.random.default_rng(2).uniform(-6, 6, (500, 2))
        value, grad = functions.FORMULAS[name]
        x, y = X[:, 0], X[:, 1]
        np.testing.assert_array_equal(p.f(X), value(x, y, *options.values()))
        np.testing.assert_array_equal(p.g(X), np.stack(grad(x, y, *options.values()), axis=1))


def test_exact_exp_is_the_c_librarys_exp():
    z = np.random.default_rng(3).uniform(-50, 50, 10_000)
    expected = np.array([math.exp(v) for v in z])
    assert np.array_equal(functions.exact_exp(z).view(np.uint64), expected.view(np.uint64))
    assert functions.exact_exp(z.astype(np.float32)).dtype == np.float32
    with np.errstate(over="ignore"):  # overflow gives inf, as np.exp and C's exp do
        assert functions.exact_exp(np.array([1e4, -1e4, np.inf])).tolist() == [np.inf, 0, np.inf]
