"""Lists of tensors that do arithmetic with ``torch._foreach_*``, and torch's ``Ops`` table.

An optimizer's element-wise rule (``steplab.optim``) is written with ``+ - * / **`` and the
functions of an ``Ops`` table. Called on :class:`TensorList` operands, every line of the rule
becomes one multi-tensor call over all tensors of a bucket: the rule itself runs, on lists,
with no second copy of its math. Scalars (Python numbers, the hyperparameters and the step
counter) combine with a list as ``torch._foreach_*`` scalar overloads do.

Each operation makes a new list (the rule is functional); the caller copies the results into
the parameters and the state once per step.

:data:`TORCH_OPS` is torch's one ``Ops`` table (the contract of :mod:`steplab.optim.ops`),
for both routes of ``steplab.torch``: each function takes TensorLists (the multi-tensor
step), tensors (the single-pass step, traced by ``torch.compile``) and Python numbers (the
per-step scalars); ``pow`` is the core's one :func:`~steplab.optim.ops.exact_pow`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from steplab.optim.ops import Ops, exact_pow

Operand = Any  # a TensorList, a tensor or a Python/NumPy scalar


class TensorList:
    """A list of same-dtype tensors on one device, with element-wise arithmetic."""

    __slots__ = ("tensors",)
    __array_priority__ = 1000  # NumPy scalars on the left defer to our reflected operators

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return f"TensorList({len(self.tensors)} tensors)"

    # -- arithmetic ----------------------------------------------------------------------

    def __add__(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_add(self.tensors, _operand(other)))

    __radd__ = __add__

    def __sub__(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_sub(self.tensors, _operand(other)))

    def __rsub__(self, other: Operand) -> TensorList:
        out = torch._foreach_neg(self.tensors)
        torch._foreach_add_(out, _operand(other))
        return TensorList(out)

    def __mul__(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_mul(self.tensors, _operand(other)))

    __rmul__ = __mul__

    def __truediv__(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_div(self.tensors, _operand(other)))

    def __rtruediv__(self, other: Operand) -> TensorList:
        out = torch._foreach_reciprocal(self.tensors)
        if not (_is_scalar(other) and other == 1):
            torch._foreach_mul_(out, _operand(other))
        return TensorList(out)

    def __pow__(self, other: Operand) -> TensorList:
        return TensorList(torch._foreach_pow(self.tensors, _operand(other)))

    def __neg__(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))

    def __gt__(self, other: Operand) -> TensorList:
        return map_tensors(torch.gt, self, other)

    def __lt__(self, other: Operand) -> TensorList:
        return map_tensors(torch.lt, self, other)

    def __ge__(self, other: Operand) -> TensorList:
        return map_tensors(torch.ge, self, other)

    def __le__(self, other: Operand) -> TensorList:
        return map_tensors(torch.le, self, other)

    def __bool__(self) -> bool:
        raise TypeError(
            "a TensorList has no truth value: a rule must not branch on array values "
            "(use ops.where)"
        )


def _is_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Number) or (torch.is_tensor(x) and x.dim() == 0)


def _operand(x: Operand) -> Any:
    """The argument a ``torch._foreach_*`` call takes for ``x``: a list or a Python scalar."""
    if isinstance(x, TensorList):
        return x.tensors
    if isinstance(x, numbers.Number):
        return x.item() if hasattr(x, "item") else x  # NumPy scalars become Python numbers
    if torch.is_tensor(x) and x.dim() == 0:
        return x.item()
    raise TypeError(f"cannot combine a TensorList with {type(x).__name__}")


def map_tensors(fn: Callable[..., torch.Tensor], *args: Operand) -> TensorList:
    """``fn`` applied tensor by tensor (for operations with no multi-tensor kernel)."""
    n = next(len(a) for a in args if isinstance(a, TensorList))
    columns = [a.tensors if isinstance(a, TensorList) else [a] * n for a in args]
    return TensorList([fn(*row) for row in zip(*columns, strict=True)])


# ----------------------------------------------------------------------------------------
# The Ops functions for lists (scalars in, scalars out: a rule also calls them on the
# step counter's functions, e.g. sqrt(1 − ρ₂ᵗ))
# ----------------------------------------------------------------------------------------


def _scalar_or(list_fn: Callable, scalar_fn: Callable) -> Callable:
    def op(x: Operand) -> Any:
        return list_fn(x) if isinstance(x, TensorList) else scalar_fn(x)

    return op


def _sqrt_scalar(x: Any) -> Any:
    return torch.sqrt(x) if torch.is_tensor(x) else float(x) ** 0.5


def _sign_scalar(x: Any) -> Any:
    return torch.sign(x) if torch.is_tensor(x) else float((x > 0) - (x < 0))


sqrt = _scalar_or(lambda x: TensorList(torch._foreach_sqrt(x.tensors)), _sqrt_scalar)
abs = _scalar_or(lambda x: TensorList(torch._foreach_abs(x.tensors)), lambda x: x.__abs__())
sign = _scalar_or(lambda x: TensorList(torch._foreach_sign(x.tensors)), _sign_scalar)
exp = _scalar_or(lambda x: TensorList(torch._foreach_exp(x.tensors)), torch.exp)
log = _scalar_or(lambda x: TensorList(torch._foreach_log(x.tensors)), torch.log)


def maximum(x: Operand, y: Operand) -> Any:
    if isinstance(x, TensorList) and isinstance(y, TensorList):
        return TensorList(torch._foreach_maximum(x.tensors, y.tensors))
    if isinstance(x, TensorList):
        return TensorList(torch._foreach_clamp_min(x.tensors, _operand(y)))
    if isinstance(y, TensorList):
        return TensorList(torch._foreach_clamp_min(y.tensors, _operand(x)))
    if torch.is_tensor(x) and torch.is_tensor(y):
        return torch.maximum(x, y)
    if torch.is_tensor(x):
        return torch.clamp_min(x, y)
    if torch.is_tensor(y):
        return torch.clamp_min(y, x)
    return max(x, y)


def minimum(x: Operand, y: Operand) -> Any:
    if isinstance(x, TensorList) and isinstance(y, TensorList):
        return TensorList(torch._foreach_minimum(x.tensors, y.tensors))
    if isinstance(x, TensorList):
        return TensorList(torch._foreach_clamp_max(x.tensors, _operand(y)))
    if isinstance(y, TensorList):
        return TensorList(torch._foreach_clamp_max(y.tensors, _operand(x)))
    return min(x, y)


def where(condition: Operand, x: Operand, y: Operand) -> Any:
    """``x`` where ``condition`` holds, else ``y``. A scalar condition (a function of the
    step counter, e.g. RAdam's ρₜ > 5) picks a whole operand."""
    if isinstance(condition, TensorList):
        return map_tensors(torch.where, condition, x, y)
    if torch.is_tensor(condition):  # inside torch.compile: the numbers are 0-d tensors
        return torch.where(condition, x, y)
    return x if bool(condition) else y


pow = exact_pow  # noqa: A001 - the Ops field's name; per-step scalars: C's pow, as NumPy's path


#: name -> implementation, for the ``Ops`` table of the multi-tensor backend.
FUNCTIONS: dict[str, Callable] = {
    "sqrt": sqrt,
    "abs": abs,
    "sign": sign,
    "exp": exp,
    "log": log,
    "maximum": maximum,
    "minimum": minimum,
    "where": where,
    "pow": pow,
}


#: torch's operations for the rules: TensorLists, tensors and Python numbers alike.
TORCH_OPS = Ops(**{name: FUNCTIONS[name] for name in Ops._fields})
