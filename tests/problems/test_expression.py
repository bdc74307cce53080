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


# -- hardening: depth is nesting, large literals, derivatives without 0·∞ ------------------


def test_a_long_flat_chain_is_not_deep_nesting():
    """A flat sum of 40 terms (270 characters) was "nested too deeply"; nesting still is."""
    text = " + ".join(f"{i}*x" for i in range(1, 41)) + " - y/2*3/4"
    assert len(text) > 200
    problem = problems.expression(text)
    value, grad = problem.value_and_grad(np.array([1.0, 2.0]))
    assert value == sum(range(1, 41)) - 2 / 2 * 3 / 4 and grad.tolist() == [820.0, -0.375]
    with pytest.raises(ValueError, match="nested too deeply"):
        problems.expression("(" * 45 + "x" + ")" * 45 + "+" + "x**" * 45 + "x")


def test_the_longest_chain_evaluates_in_a_thread():
    """The tree of a 499-character chain is 250 levels deep: still within Python's
    recursion limit in a worker thread, for values, gradients and the gradient text."""
    import threading

    results = []
    text = "+".join(["x"] * 250)
    thread = threading.Thread(
        target=lambda: results.append(problems.expression(text).value_and_grad(np.ones(1)))
    )
    thread.start()
    thread.join()
    assert results[0][0] == 250 and results[0][1].tolist() == [250.0]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e308 * x", 1e308),
        (
            f"{int(np.finfo(float).max)} + x",
            1.7976931348623157e308,
        ),
    ],
)
def test_large_literals_up_to_the_largest_float(text, value):
    problem = problems.expression(text)
    assert problem.value(np.array([1.0])) == value


@pytest.mark.parametrize(
    ("text", "point", "expected"),
    [
        # The audit's two examples: the true derivative is finite (≈ 0), it was NaN.
        ("1/(1+exp(-x))", [-710.0, 0.0], [math.exp(-710.0), 0.0]),
        ("x/exp(y)", [1.0, 720.0], [math.exp(-720.0), -math.exp(-720.0)]),
        ("x**y", [0.0, 2.0], [0.0, 0.0]),  # 0^y: a'·b/a was 0/0
        ("(y**2)**x", [1.5, 0.0], [0.0, 0.0]),  # log(0) times 0^x = 0
        ("0**x + x", [2.0, 0.0], [1.0, 0.0]),  # a constant base 0: log 0 = −inf
        ("sqrt(y**2 + 1) * exp(x)", [-800.0, 1.0], [0.0, 0.0]),
    ],
)
def test_derivatives_avoid_zero_times_infinity(text, point, expected):
    problem = problems.expression(text, dim=2)
    _, grad = problem.value_and_grad(np.array(point))
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-300)


def _random_formula(rng, depth):
    """A random formula in x, y of at most ``depth`` levels (the audit's fuzzer, rebuilt)."""
    if depth == 0 or rng.random() < 0.25:
        return str(rng.choice(["x", "y", "2", "0.5", "3", "x", "y"]))
    kind = rng.random()
    if kind < 0.55:
        op = rng.choice(["+", "-", "*", "/", "**"])
        right = (
            _random_formula(rng, depth - 1)
            if op != "**"
            else str(rng.choice(["2", "3", "y", "x", "0.5"]))
        )
        return f"({_random_formula(rng, depth - 1)} {op} {right})"
    function = rng.choice(["exp", "log", "sqrt", "sin", "cos", "tanh", "abs", "sinh"])
    return f"{function}({_random_formula(rng, depth - 1)})"


def test_fuzz_derivative_is_never_nan_where_the_true_one_is_finite():
    """600 random formulas at points chosen to overflow (exp(±720)) or sit on 0: wherever
    the formula's float value is finite and the true derivative (mpmath, 800 digits) is a
    X, and it agrees
    with the true one (to 1e-6 relative or 1e-9 absolute: 1 − tanh² of 20 is 0 in floats)."""
    mpmath = pytest.importorskip("mpmath")

    mpmath.mp.dps = 800  # exp(±720) beside O(1) terms: 640 digits to keep both
    rng = np.random.default_rng(14)
    coordinates = [-720.0, -710.0, -3.0, -0.5, 0.0, 0.7, 2.0, 710.0, 720.0]
    names = {n: getattr(mpmath, n) for n in ("exp", "log", "sqrt", "sin", "cos", "tanh", "sinh")}
    names["abs"] = lambda v: mpmath.sqrt(v * v)  # |v| for reals; stays complex otherwise
    checked = 0
    for _ in range(600):
        text = _random_formula(rng, 4)
        try:
            problem = problems.expression(text, dim=2)
        except ValueError:  # a constant that folds to inf, e.g. 2/(x-x)
            continue
        point = np.array([rng.choice(coordinates), rng.choice(coordinates)])
        with np.errstate(all="ignore"):
            value, grad = problem.value_and_grad(point)
        if not np.isfinite(value):
            continue
        for i in range(2):

            def f(t, i=i, point=point, text=text):
                args = {"x": mpmath.mpf(point[0]), "y": mpmath.mpf(point[1])}
                args["xy"[i]] = t
                return eval(text, {"__builtins__": {}}, {**names, **args})  # our own text

            try:  # real on both sides (sqrt(x) at 0 is not), and smooth: two steps agree
                x0, step = mpmath.mpf(point[i]), mpmath.mpf(10) ** -30
                if not all(isinstance(f(x0 + d), mpmath.mpf) for d in (-step, step)):
                    continue
                true, check = (
                    mpmath.diff(f, mpmath.mpf(point[i]), h=mpmath.mpf(10) ** -k) for k in (60, 120)
                )
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                continue
            if not all(isinstance(d, mpmath.mpf) and mpmath.isfinite(d) for d in (true, check)):
                continue
            if abs(true - check) > 1e-20 * (1 + abs(true)) or abs(true) > 1e300:
                continue  # not differentiable here (a kink, an infinite slope) or out of range
            checked += 1
            assert not np.isnan(grad[i]), f"∂{'xy'[i]} of {text} at {point}: NaN, true {true}"
            assert math.isclose(grad[i], float(true), rel_tol=1e-6, abs_tol=1e-9), (
                f"∂{'xy'[i]} of {text} at {point}: {grad[i]}, true {float(true)}"
            )
    assert checked > 300
