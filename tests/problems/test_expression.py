"""Typed formulas: whitelist parsing, symbolic derivatives, clear errors."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steplab import problems
from steplab.problems.custom import central_difference


@pytest.mark.parametrize(
    "text",
    [
        "x**2 + 10*y**2",
        "(1 - x)^2 + 100*(y - x^2)^2",
        "sin(x)*cos(y) + exp(-x**2) - log(1 + y**2)",
        "sqrt(x**2 + y**2 + 1) + tanh(x) * sinh(y) / cosh(x)",
        "abs(x - 0.3) + tan(y / 4) + pi * e",
        "x ** y + 2 ** x",
        "-x + +y - -3",
        "x1**2 + 2*x2*x3 - x3",
    ],
)
def test_symbolic_gradient_matches_finite_differences(text):
    p = problems.expression(text)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.uniform(0.2, 1.2, p.dim)  # inside every function's domain
        numeric = central_difference(p.value, x)
        assert np.allclose(p.grad(x), numeric, rtol=1e-6, atol=1e-7)


def test_values_agree_with_python_math():
    p = problems.expression("sin(x) + y^3 / 2 - sqrt(abs(x*y))")
    x, y = 0.7, -1.3
    assert p.value([x, y]) == pytest.approx(math.sin(x) + y**3 / 2 - math.sqrt(abs(x * y)))


def test_dimension_and_variables():
    assert problems.expression("x**2").dim == 1
    assert problems.expression("y**2").dim == 2
    assert problems.expression("x3 + x1").dim == 3
    assert problems.expression("x**2", dim=3).dim == 3
    p = problems.expression("a**2 + b", variables=["a", "b"])
    assert np.allclose(p.grad([3.0, 1.0]), [6.0, 1.0])
    # vectorized over rows
    assert problems.expression("x*y").value(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist() == [2, 12]


def test_gradient_text_is_readable():
    p = problems.expression("x**2 + 10*y**2")
    assert p.gradient_text == ["(2 * x)", "(10 * (2 * y))"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('ls')", "character|not allowed"),
        ("x.real", "Attribute|not allowed"),
        ("open(x)", "function 'open'"),
        ("sin(x, y)", "exactly one argument"),
        ("x if y else 1", "IfExp|not allowed"),
        ("[x]", "character"),
        ("lambda: 1", "Lambda|not allowed|character"),
        ("q + 1", "unknown name 'q'"),
        ("x + x1", "either x, y, z or x1..xn"),
        ("x + y1", "unknown name 'y1'"),
        ("x % 2", "character '%'"),
        ("x // 2", "FloorDiv"),
        ("x < 2", "character '<'"),
        ("x.imag", "Attribute"),
        ("x +", "cannot parse"),
        ("", "empty"),
        ("x" + "+x" * 300, "too long"),
        ("sin(" * 50 + "x" + ")" * 50, "nested too deeply"),
        ("-" * 100 + "x", "nested too deeply"),
        ("1e999 * x", "too large"),
        ("x0 + 1", "unknown name 'x0'"),
        ("True + x", "literal True"),
    ],
)
def test_rejected_text_names_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        problems.expression(text)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        problems.expression(3)


def test_error_reports_the_position():
    with pytest.raises(ValueError, match="position 5"):
        problems.expression("x + foo(y)")


def test_callable_with_and_without_gradient():
    def f(x):
        return (x[0] - 1) ** 2 + 3 * x[1] ** 2

    def g(x):
        return np.array([2 * (x[0] - 1), 6 * x[1]])

    exact = problems.function(f, g, x0=[0.0, 1.0])
    with pytest.warns(UserWarning, match="finite differences"):
        numeric = problems.function(f, x0=[0.0, 1.0])
    x = np.array([0.3, -0.4])
    assert np.allclose(exact.grad(x), g(x))
    assert np.allclose(numeric.grad(x), g(x), atol=1e-8)
    X = np.array([[0.3, -0.4], [2.0, 1.0]])
    assert np.allclose(numeric.grad(X), np.stack([g(r) for r in X]), atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problems.function(f, g, x0=[0.0, 1.0])  # no warning when the gradient is given
    with pytest.raises(TypeError, match="callable"):
        problems.function(3, x0=[0.0])


# -- fuzzing: whatever text arrives, the answer is a problem or a ValueError -------------


TOKENS = st.sampled_from(
    [
        "x",
        "y",
        "x1",
        "2",
        "0.5",
        "1e3",
        "+",
        "-",
        "*",
        "/",
        "**",
        "^",
        "(",
        ")",
        "sin(",
        "exp(",
        "log(",
        "pi",
        "e",
        ",",
        "[",
        "'",
        ".",
        "__class__",
        "lambda",
        "import",
        " ",
        "%",
        "=",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=30).map("".join))
def test_random_token_soup_never_escapes_the_grammar(text):
    try:
        p = problems.expression(text)
    except ValueError:
        return
    value, grad = p.value_and_grad(np.full(p.dim, 0.7))
    assert np.shape(grad) == (p.dim,)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_unicode_is_rejected_or_parsed(text):
    try:
        problems.expression(text)
    except ValueError:
        pass
