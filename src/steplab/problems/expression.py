"""Typed formulas such as ``"x**2 + 10*y**2"`` as problems, differentiated symbolically.

User text is never evaluated. It is parsed by Python's :mod:`ast` module and then walked
node by node; anything not on the whitelist below is rejected with a ``ValueError`` that
names the offending token and its position. The accepted tree is translated into a tiny
expression language of our own (:class:`Node` and friends), which knows how to evaluate
itself on NumPy rows and how to differentiate itself with the usual rules.

Grammar: numbers; variables ``x, y, z`` or ``x1 … xn``; ``+ - * / **`` (``^`` is read as
``**``); unary ``-`` and ``+``; parentheses; the constants ``pi`` and ``e``; the functions
``sin cos tan exp log sqrt abs tanh sinh cosh`` of one argument.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from steplab.problems.base import Problem

MAX_LENGTH = 500  # characters of user text
MAX_DEPTH = 40  # nesting depth: parentheses, calls, powers (a flat chain a + b + … is 1)
MAX_VARIABLES = 100

FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sinh", "cosh")
CONSTANTS = {"pi": np.pi, "e": np.e}
_NUMPY = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "tanh": np.tanh,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "sign": np.sign,  # internal: the derivative of abs
}
ALLOWED = (
    "numbers, variables x, y, z (or x1..xn), + - * / ** (or ^), unary minus, parentheses, "
    f"constants pi and e, functions {' '.join(FUNCTIONS)}"
)

# --------------------------------------------------------------------------------------
# The expression language: evaluate on rows, differentiate, print
# --------------------------------------------------------------------------------------


class Node:
    """An expression tree node. ``evaluate(X)`` takes rows ``(K, d)`` and returns ``(K,)``."""

    def evaluate(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, i: int) -> Node:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Num(Node):
    value: float

    def evaluate(self, X):
        return self.value

    def derivative(self, i):
        return ZERO

    def __str__(self):
        if np.isfinite(self.value) and self.value == int(self.value) and abs(self.value) < 1e15:
            return str(int(self.value))
        return repr(self.value)


ZERO, ONE = Num(0.0), Num(1.0)


@dataclass(frozen=True)
class Var(Node):
    index: int
    name: str

    def evaluate(self, X):
        return X[:, self.index]

    def derivative(self, i):
        return ONE if i == self.index else ZERO

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class Neg(Node):
    a: Node

    def evaluate(self, X):
        return -self.a.evaluate(X)

    def derivative(self, i):
        return neg(self.a.derivative(i))

    def __str__(self):
        return f"(-{self.a})"


@dataclass(frozen=True)
class Binary(Node):
    op: str  # one of + - * / **
    a: Node
    b: Node

    def evaluate(self, X):
        u, v = self.a.evaluate(X), self.b.evaluate(X)
        if self.op == "+":
            return u + v
        if self.op == "-":
            return u - v
        if self.op == "*":
            return u * v
        if self.op == "/":
            return u / v
        return np.power(u, v)

    def derivative(self, i):
        a, b = self.a, self.b
        da, db = a.derivative(i), b.derivative(i)
        if self.op == "+":
            return add(da, db)
        if self.op == "-":
            return sub(da, db)
        if self.op == "*":  # product rule
            return add(dmul(da, b), dmul(a, db))
        if self.op == "/":
            # Quotient rule as a'/b − (a/b)·(b'/b), not (a'b − ab')/b²: b² overflows long
            # before a/b does (x/exp(y) at y = 720), and a/b is this node itself.
            return sub(div(da, b), dmul(self, div(db, b)))
        # a ** b
        if db == ZERO:  # power rule (b constant here): b·a^(b−1)·a'
            exponent = Num(b.value - 1.0) if isinstance(b, Num) else sub(b, ONE)
            return dmul(dmul(b, power(a, exponent)), da)
        if da == ZERO:  # exponential rule (a constant here): a^b·ln(a)·b'
            log_a = Num(_log(a.value)) if isinstance(a, Num) else call("log", a)
            return dmul(dmul(self, log_a), db)
        # general: d(a^b) = a^b (b' ln a + b a'/a)
        return dmul(self, add(dmul(db, call("log", a)), div(dmul(b, da), a)))

    def __str__(self):
        return f"({self.a} {self.op} {self.b})"


@dataclass(frozen=True)
class Times(Binary):
    """A product inside a derivative, where 0 · anything is 0.

    Derivative rules multiply a factor by how fast something moves (chain rule: f'(u)·u',
    product rule: a'·b). A factor that is exactly 0 (the term cannot move, or its value
    underflowed) decides the product even when the other factor overflowed to ±inf or
    is undefined: ``1/(1+exp(-x))`` at x = −710 has derivative ≈ e⁻⁷¹⁰ ≈ 0, not
    0·∞ = NaN. Values of the user's formula itself keep IEEE arithmetic (``Binary``).
    """

    def evaluate(self, X):
        u, v = self.a.evaluate(X), self.b.evaluate(X)
        with np.errstate(invalid="ignore"):
            product = u * v
        if not np.isnan(product).any():  # the common case: nothing to decide
            return product
        return np.where((np.asarray(u) == 0) | (np.asarray(v) == 0), 0.0, product)


@dataclass(frozen=True)
class Call(Node):
    function: str
    a: Node

    def evaluate(self, X):
        return _NUMPY[self.function](self.a.evaluate(X))

    def derivative(self, i):
        u, du = self.a, self.a.derivative(i)
        if du == ZERO:
            return ZERO
        # f'(u)·u' — or u'/g(u) where f' = 1/g: 1/u overflows for tiny u where u'/u does not
        # (log(exp(y)) at y = −710: u' = u = e⁻⁷¹⁰, so u'/u = 1 but (1/u)·u' = ∞).
        reciprocal = {
            "log": lambda: u,
            "sqrt": lambda: mul(Num(2.0), self),
            "tan": lambda: power(call("cos", u), Num(2.0)),
        }.get(self.function)
        if reciprocal is not None:
            return div(du, reciprocal())
        outer = {
            "sin": lambda: call("cos", u),
            "cos": lambda: neg(call("sin", u)),
            "exp": lambda: self,
            "abs": lambda: call("sign", u),
            "tanh": lambda: sub(ONE, power(self, Num(2.0))),
            "sinh": lambda: call("cosh", u),
            "cosh": lambda: call("sinh", u),
            "sign": lambda: ZERO,
        }[self.function]()
        return dmul(outer, du)  # chain rule

    def __str__(self):
        return f"{self.function}({self.a})"


# Smart constructors: fold constants and drop 0s and 1s so derivatives stay readable.


def _fold(op, a, b):
    # On NumPy floats (Python's would raise ZeroDivisionError), then refuse a constant that
    # is not finite: "1/0" is a typo to report, not a function that is inf everywhere.
    a, b = Num(np.float64(a.value)), Num(np.float64(b.value))
    with np.errstate(all="ignore"):
        value = float(Binary(op, a, b).evaluate(None))
    if not math.isfinite(value):
        raise ValueError(
            f"the constant {a.value:g} {op} {b.value:g} is not finite "
            "(division by zero or overflow)"
        )
    return Num(value)


def add(a, b):
    if a == ZERO:
        return b
    if b == ZERO:
        return a
    return _fold("+", a, b) if isinstance(a, Num) and isinstance(b, Num) else Binary("+", a, b)


def sub(a, b):
    if b == ZERO:
        return a
    if a == ZERO:
        return neg(b)
    return _fold("-", a, b) if isinstance(a, Num) and isinstance(b, Num) else Binary("-", a, b)


def mul(a, b):
    if a == ZERO or b == ZERO:
        return ZERO
    if a == ONE:
        return b
    if b == ONE:
        return a
    return _fold("*", a, b) if isinstance(a, Num) and isinstance(b, Num) else Binary("*", a, b)


def dmul(a, b):
    """``mul`` for derivative rules: a :class:`Times` node (0 · anything = 0).

    A finite non-zero constant factor cannot make 0·∞, so it keeps the plain product.
    """
    for factor in (a, b):
        if isinstance(factor, Num) and factor.value != 0 and math.isfinite(factor.value):
            return mul(a, b)
    if a == ZERO or b == ZERO:
        return ZERO
    return _fold("*", a, b) if isinstance(a, Num) and isinstance(b, Num) else Times("*", a, b)


def _log(value: float) -> float:
    """ln of a constant base: −inf for 0 and NaN below (0^x and (−2)^x have no real
    logarithmic derivative), without NumPy's warnings."""
    return math.log(value) if value > 0 else (-math.inf if value == 0 else math.nan)


def div(a, b):
    if a == ZERO:
        return ZERO
    if b == ONE:
        return a
    return _fold("/", a, b) if isinstance(a, Num) and isinstance(b, Num) else Binary("/", a, b)


def power(a, b):
    if b == ONE:
        return a
    if b == ZERO:
        return ONE
    return _fold("**", a, b) if isinstance(a, Num) and isinstance(b, Num) else Binary("**", a, b)


def neg(a):
    return Num(-a.value) if isinstance(a, Num) else Neg(a)


def call(name, a):
    return Call(name, a)


# --------------------------------------------------------------------------------------
# Parsing user text with a whitelist
# --------------------------------------------------------------------------------------

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_XN = re.compile(r"^x([1-9][0-9]*)$")
_XYZ = ("x", "y", "z")


def _fail(node: ast.AST, what: str) -> NoReturn:
    position = getattr(node, "col_offset", None)
    where = f" at position {position + 1}" if position is not None else ""
    raise ValueError(f"{what}{where} is not allowed; allowed: {ALLOWED}")


class _Translator:
    """Walks Python's AST, accepting only whitelisted nodes, and builds our :class:`Node` tree."""

    def __init__(self, variables):
        self.variables = variables  # None: x, y, z / x1..xn; else an explicit list of names
        self.used: dict[str, int] = {}

    def variable(self, node: ast.Name) -> Node:
        name = node.id
        if self.variables is not None:
            if name not in self.variables:
                _fail(node, f"unknown name {name!r} (variables: {', '.join(self.variables)})")
            index = self.variables.index(name)
        elif name in _XYZ:
            index = _XYZ.index(name)
        elif (match := _XN.match(name)) is not None:
            index = int(match.group(1)) - 1
            if index >= MAX_VARIABLES:
                _fail(node, f"variable {name!r} (at most x{MAX_VARIABLES})")
        else:
            _fail(node, f"unknown name {name!r}")
        self.used[name] = index
        return Var(index, name)

    def visit(self, node, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise ValueError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, ast.Expression):
            return self.visit(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                _fail(node, f"the literal {node.value!r}")
            try:
                value = float(node.value)  # 1e308 is a float; 10**400 and 1e999 are not
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                _fail(node, f"the number {node.value!r} (too large)")
            return Num(value)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return Num(float(CONSTANTS[node.id]))
            return self.variable(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return neg(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            _fail(node, f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                _fail(node, f"the operator {type(node.op).__name__}")
            # A chain a + b − c + … (or a · b / c …) is one level, however long: Python
            # parses it left-deep, so its left operand continues the chain, not a nesting.
            chain = _same_level(node.op, node.left)
            a = self.visit(node.left, depth if chain else depth + 1)
            b = self.visit(node.right, depth + 1)
            return {"+": add, "-": sub, "*": mul, "/": div, "**": power}[op](a, b)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else "this call"
                _fail(node, f"the function {name!r}")
            if len(node.args) != 1 or node.keywords:
                raise ValueError(
                    f"{node.func.id}() at position {node.col_offset + 1} takes exactly one argument"
                )
            return call(node.func.id, self.visit(node.args[0], depth + 1))
        _fail(node, f"{type(node).__name__} syntax")


_LEVELS = ({ast.Add, ast.Sub}, {ast.Mult, ast.Div})


def _same_level(op: ast.operator, left: ast.AST) -> bool:
    """Whether ``left`` is the previous link of a chain of ``op``'s precedence level."""
    if not isinstance(left, ast.BinOp):
        return False
    return any(type(op) in level and type(left.op) in level for level in _LEVELS)


def parse(text: str, variables=None) -> tuple[Node, dict[str, int]]:
    """Parse ``text`` into a :class:`Node` tree; also return the variables used (name → index).

    Raises ``ValueError`` naming the problem for anything outside the grammar.
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"expression is too long ({len(text)} characters, at most {MAX_LENGTH})")
    if not text.strip():
        raise ValueError("expression is empty")
    bad = re.search(r"[^0-9A-Za-z_+\-*/^().,\s]", text)
    if bad:
        raise ValueError(
            f"character {bad.group()!r} at position {bad.start() + 1} is not allowed; "
            f"allowed: {ALLOWED}"
        )
    # Maths writes powers as x^2; in Python ^ is XOR. Both precedences make ** the reading.
    source = text.replace("^", "**").strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f" at position {exc.offset}" if exc.offset else ""
        raise ValueError(f"cannot parse expression{where}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("expression is nested too deeply") from None
    translator = _Translator(None if variables is None else list(variables))
    return translator.visit(tree), translator.used


# --------------------------------------------------------------------------------------
# The problem
# --------------------------------------------------------------------------------------


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class ExpressionProblem(Problem):
    """A problem defined by a formula; ``gradient_text`` shows the symbolic partial derivatives."""

    text: str = ""
    tree: Node = field(repr=False)
    partials: tuple = field(default=(), repr=False)

    def _value_and_grad_rows(self, X, batch, rngs):
        K = X.shape[0]
        with np.errstate(all="ignore"):  # log(-1) etc. give NaN, which the loop reports
            values = np.broadcast_to(self.tree.evaluate(X), (K,)).astype(X.dtype)
            grads = np.stack(
                [np.broadcast_to(p.evaluate(X), (K,)) for p in self.partials], axis=1
            ).astype(X.dtype)
        return values, grads

    @property
    def gradient_text(self) -> list[str]:
        """The partial derivatives as formulas (fully parenthesised)."""
        return [str(p) for p in self.partials]


def expression(
    text: str,
    *,
    dim: int | None = None,
    variables=None,
    x0=None,
    bounds=None,
    minima=(),
    f_min=None,
) -> ExpressionProblem:
    """A problem from a typed formula in ``x, y`` (or ``x1..xn``), e.g. ``"x**2 + 10*y**2"``.

    ``dim`` defaults to the highest variable used (``y`` → 2, ``x3`` → 3). ``x0`` defaults
    to all 1.5, ``bounds`` to [−3, 3] per coordinate. ``variables`` may list other names.
    """
    tree, used = parse(text, variables)
    if used and any(_XN.match(n) for n in used) and any(n in _XYZ for n in used):
        raise ValueError("use either x, y, z or x1..xn as variable names, not both")
    needed = (max(used.values()) + 1) if used else 1
    if variables is not None:
        needed = max(needed, len(list(variables)))
    if dim is None:
        dim = needed
    elif not isinstance(dim, (int, np.integer)) or dim < needed:
        raise ValueError(f"dim must be an integer >= {needed} (the variables used), got {dim!r}")
    partials = tuple(tree.derivative(i) for i in range(dim))
    return ExpressionProblem(
        name="expression",
        dim=int(dim),
        x0=np.full(dim, 1.5) if x0 is None else x0,
        description=f"f = {text.strip()}",
        bounds=np.array([(-3.0, 3.0)] * dim if bounds is None else bounds, dtype=np.float64),
        minima=minima,
        f_min=f_min,
        text=text.strip(),
        tree=tree,
        partials=partials,
    )
