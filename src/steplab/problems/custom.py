"""Problems from a user's Python function, with or without a gradient."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from steplab.problems.base import Problem


def central_difference(f: Callable, x: np.ndarray, h: float | None = None) -> np.ndarray:
    """The gradient of scalar ``f`` at ``x`` (shape ``(d,)``) by central differences.

    ``(f(x + h e_i) − f(x − h e_i)) / 2h`` has error O(h²) plus rounding of order ε/h; the
    default ``h = ε^(1/3)·max(1, |x_i|)`` balances the two (about 6e-6 for float64).
    """
    x = np.asarray(x, dtype=np.float64)
    step = np.cbrt(np.finfo(np.float64).eps) * np.maximum(1.0, np.abs(x)) if h is None else h
    step = np.broadcast_to(step, x.shape)
    grad = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = step.flat[i]
        grad.flat[i] = (float(f(x + e)) - float(f(x - e))) / (2 * step.flat[i])
    return grad


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class FunctionProblem(Problem):
    """A user's ``f(x) -> float`` (and optionally ``grad(x) -> array``) for one point ``x``."""

    f: Callable = field(repr=False)
    gradient: Callable | None = field(default=None, repr=False)
    h: float | None = None

    def _value_and_grad_rows(self, X, batch, rngs):
        values = np.empty(X.shape[0], dtype=X.dtype)
        grads = np.empty_like(X)
        for k, row in enumerate(X):  # user code sees one point at a time
            values[k] = float(self.f(row.copy()))
            if self.gradient is None:
                grads[k] = central_difference(self.f, row, self.h)
            else:
                g = np.asarray(self.gradient(row.copy()), dtype=np.float64).reshape(-1)
                if g.shape != (self.dim,):
                    raise ValueError(f"grad returned shape {g.shape}, expected ({self.dim},)")
                grads[k] = g
        return values, grads


def function(
    f: Callable,
    grad: Callable | None = None,
    *,
    x0,
    bounds=None,
    minima=(),
    f_min: float | None = None,
    name: str = "function",
    h: float | None = None,
) -> FunctionProblem:
    """A problem from a Python callable ``f(x) -> float`` on points ``x`` of shape ``(d,)``.

    Without ``grad``, gradients come from central finite differences (2d calls of ``f``
    per gradient, accurate to about 1e-10 relative for smooth ``f``); a ``UserWarning`` says
    so, because that is slow and inexact near kinks.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if grad is not None and not callable(grad):
        raise TypeError(f"grad must be callable or None, got {type(grad).__name__}")
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    value = f(x0.copy())
    try:
        float(value)
    except (TypeError, ValueError):
        raise TypeError(f"f must return a number, got {type(value).__name__}") from None
    if grad is None:
        warnings.warn(
            f"{name}: no gradient given; using central finite differences "
            f"({2 * x0.size} extra calls of f per gradient)",
            UserWarning,
            stacklevel=2,
        )
    return FunctionProblem(
        name=name,
        dim=x0.size,
        x0=x0,
        description=f"user function {getattr(f, '__name__', name)}",
        bounds=bounds,
        minima=minima,
        f_min=f_min,
        f=f,
        gradient=grad,
        h=h,
    )
