"""The multi-tensor backend: TensorList arithmetic and its Ops equal the same expression
evaluated tensor by tensor (and, for scalars, in Python)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steplab.torch import _tensorlist as tl  # noqa: E402


def _lists(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    a = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    b = [torch.rand(s, generator=gen, dtype=torch.float64) + 0.5 for s in shapes]
    return a, b


def _expression(x, y, ops):
    """Every operator and Ops function, scalars on both sides (a made-up rule)."""
    z = 0.9 * x + (1 - 0.9) * y * y - x / 3.0 + 2.0 / y - (1.5 - x) ** 2
    z = ops["maximum"](z, ops["abs"](x)) + ops["maximum"](0.1, y) + ops["sign"](x)
    z = ops["where"](x > 0, z, -z) + ops["where"](True, 1.0, 2.0) * ops["sqrt"](y + 1e-8)
    return z / ops["sqrt"](1 - ops["pow"](0.999, 3)) - ops["minimum"](x, 0.0)


TORCH_FUNCTIONS = {
    "maximum": lambda a, b: (
        torch.maximum(torch.as_tensor(a, dtype=torch.float64), b)
        if not torch.is_tensor(a)
        else torch.maximum(a, torch.as_tensor(b, dtype=torch.float64))
    ),
    "minimum": lambda a, b: torch.minimum(a, torch.as_tensor(b, dtype=torch.float64)),
    "abs": torch.abs,
    "sign": torch.sign,
    "sqrt": lambda x: torch.sqrt(x) if torch.is_tensor(x) else math.sqrt(x),
    "where": lambda c, a, b: (a if c else b) if isinstance(c, bool) else torch.where(c, a, b),
    "pow": math.pow,
}


def test_tensorlist_expression_equals_per_tensor_torch():
    a, b = _lists()
    ours = _expression(tl.TensorList(a), tl.TensorList(b), tl.FUNCTIONS)
    assert isinstance(ours, tl.TensorList) and len(ours) == 3
    for x, y, z in zip(a, b, ours.tensors, strict=True):
        expected = _expression(x, y, TORCH_FUNCTIONS)
        torch.testing.assert_close(z, expected, rtol=1e-15, atol=1e-15)


def test_scalars_stay_python_numbers():
    assert tl.pow(0.9, 3) == math.pow(0.9, 3)
    assert tl.sqrt(4.0) == 2.0 and tl.sign(-3.0) == -1.0 and tl.abs(-2.0) == 2.0
    assert tl.maximum(1.0, 2.0) == 2.0 and tl.where(False, 1.0, 2.0) == 2.0
    assert tl.pow(np.float64(0.5), 2) == 0.25  # NumPy scalars too


def test_a_rule_cannot_branch_on_array_values():
    a, _ = _lists()
    with pytest.raises(TypeError, match="ops.where"):
        bool(tl.TensorList(a) > 0)
    with pytest.raises(TypeError, match="cannot combine"):
        tl.TensorList(a) + np.ones(3)
