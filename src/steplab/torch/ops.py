"""torch's one ``Ops`` table, public: :data:`TORCH_OPS` (the contract of
:mod:`steplab.optim.ops`).

Both routes of ``steplab.torch`` and its Schedule-Free optimizers run the core's rules
with it. Each function takes TensorLists (the multi-tensor step), tensors (the single-pass
step, or one parameter) and Python numbers (the per-step scalars); ``pow`` is the core's
one :func:`~steplab.optim.ops.exact_pow`.
"""

from __future__ import annotations

from steplab.torch._tensorlist import TORCH_OPS

__all__ = ["TORCH_OPS"]
