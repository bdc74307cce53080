"""Per-tensor optimizers: Muon, Adafactor, Shampoo (rules over whole matrices), layouts, routing.

::

    import steplab as sl
    from steplab.optim.matrix import Muon, Routed

    problem = sl.problems.mlp("digits", hidden=(32,))
    opt = Routed(Muon(), problem.layout())      # hidden matrices: Muon; the rest: AdamW
    state = opt.init(theta)
    opt.step(theta, grad, state)

The same rules run in ``steplab.torch.matrix`` (torch.optim optimizers) and
``steplab.jax.matrix`` (optax transformations). See docs/matrix.md.
"""

from __future__ import annotations

from steplab.optim.matrix.adafactor import Adafactor
from steplab.optim.matrix.base import MatrixOptimizer
from steplab.optim.matrix.layout import (
    ParameterLayout,
    Routed,
    Tensor,
    default_route,
    route,
    routed_on,
)
from steplab.optim.matrix.muon import Muon
from steplab.optim.matrix.ops import NUMPY_MATRIX_OPS, MatrixOps
from steplab.optim.matrix.shampoo import Shampoo
from steplab.optim.matrix.soap import SOAP
from steplab.optim.registry import registered

#: Every per-tensor optimizer by name: what the modules above registered (each ends with
#: ``register(ItsClass)``), i.e. the registry's ``registered("per_tensor")``.
MATRIX_OPTIMIZERS: dict[str, type[MatrixOptimizer]] = registered("per_tensor")

__all__ = [
    "MATRIX_OPTIMIZERS",
    "NUMPY_MATRIX_OPS",
    "Adafactor",
    "MatrixOps",
    "MatrixOptimizer",
    "Muon",
    "ParameterLayout",
    "Routed",
    "SOAP",
    "Shampoo",
    "Tensor",
    "default_route",
    "route",
    "routed_on",
]
