"""The single-pass step (``fused=True``): the core's rule compiled by ``torch.compile``.

The rule of ``steplab.optim`` is element-wise, so compiling it over a tensor gives one kernel
that reads θ, ĝ and the moments once and writes the new θ and moments once — the "fused"
step torch writes by hand for a few optimizers, here for every optimizer and option. The
compiled function is the rule itself (through the core's ``_apply_rule``, which adds the L2
term), with the per-step scalars (1 − ρᵗ, a scheduled α, …) computed beforehand in Python
and handed in as numbers.

One compilation serves every tensor size (``dynamic=True``) and every value of the
hyperparameters and of t (they are symbolic inputs, not constants); options that change
the code (``amsgrad``, ``centered``, a switched-off weight decay) and dtypes compile once
each. Tensors of at least ``PACK_BELOW`` elements are stepped one call each, in place;
smaller ones are packed into one flat buffer first (a call costs far more than their data),
stepped by one call, and copied back.

bfloat16/float16 parameters: the kernel reads them, computes in float32 (their state's
dtype) and rounds the new θ into the parameter once, in the same pass.
"""

from __future__ import annotations

import math
import numbers
import types
from types import SimpleNamespace
from typing import Any

import torch

from steplab.optim.ops import Ops

#: Tensors with fewer elements than this are packed into one flat call.
PACK_BELOW = 1 << 16


def _maximum(x: Any, y: Any) -> Any:
    if torch.is_tensor(x) and torch.is_tensor(y):
        return torch.maximum(x, y)
    if torch.is_tensor(x):
        return torch.clamp_min(x, y)
    if torch.is_tensor(y):
        return torch.clamp_min(y, x)
    return max(x, y)


def _where(condition: Any, x: Any, y: Any) -> Any:
    if torch.is_tensor(condition):
        return torch.where(condition, x, y)
    return x if condition else y  # a per-step scalar condition picks a whole operand


def _sqrt(x: Any) -> Any:
    return torch.sqrt(x) if torch.is_tensor(x) else x**0.5


def _pow(base: Any, exponent: Any) -> Any:
    if isinstance(base, numbers.Real) and isinstance(exponent, numbers.Real):
        return math.pow(base, exponent)
    return base**exponent


#: torch's functions, for the rule inside ``torch.compile``.
TORCH_OPS = Ops(
    sqrt=_sqrt,
    maximum=_maximum,
    sign=torch.sign,
    abs=torch.abs,
    where=_where,
    pow=_pow,
)


def _apply_in_place(
    runner: Any,
    hp: Any,
    theta: torch.Tensor,
    g: torch.Tensor,
    moments: dict[str, torch.Tensor],
    state: SimpleNamespace,
    work: torch.dtype,
) -> None:
    """The rule on one tensor (θ in its own dtype, ĝ and moments in ``work``), in place;
    ``state`` holds the same moments as attributes (as the core's ``_apply_rule`` reads)."""
    new_theta, new_moments = runner._apply_rule(TORCH_OPS, hp, theta.to(work), g.to(work), state)
    theta.copy_(new_theta)
    for name, tensor in moments.items():
        tensor.copy_(new_moments[name])


_kernels: dict[tuple, Any] = {}
_runners: dict[tuple, Any] = {}


def _kernel(key: tuple) -> Any:
    """The compiled step for ``key`` (core class, switches, dtypes), made on first use.

    torch.compile keeps its compiled variants per code object, and stops recompiling one
    after a few variants (``recompile_limit``): each key gets its own copy of the code of
    :func:`_apply_in_place`, so that twelve optimizers with their options never crowd one
    code object, and each copy compiles once (sizes, hyperparameters and t are symbolic).
    """
    kernel = _kernels.get(key)
    if kernel is None:
        name = "_".join(["_step", *(str(part) for part in key)])
        name = "".join(c if c.isalnum() else "_" for c in name)
        code = _apply_in_place.__code__.replace(co_name=name)
        function = types.FunctionType(code, _apply_in_place.__globals__, name)
        kernel = _kernels[key] = torch.compile(function, dynamic=True, fullgraph=True)
    return kernel


def _numbers_as_tensors(hp: Any, device: torch.device) -> Any:
    names = [k for k, v in hp._asdict().items() if _is_number(v)]
    if not names:
        return hp
    values = torch.tensor([float(getattr(hp, k)) for k in names], dtype=torch.float64)
    values = values.to(device, non_blocking=True)
    return hp._replace(**{k: values[i] for i, k in enumerate(names)})


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _call(kernel: Any, runner: Any, hp: Any, theta, g, moments: dict, work) -> None:
    kernel(runner, hp, theta, g, moments, SimpleNamespace(**moments), work)


def single_pass_step(
    runner: Any,
    hp: Any,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    moments: dict[str, list[torch.Tensor]],
    work: torch.dtype,
) -> None:
    """Step a bucket's tensors in place with the compiled rule.

    ``runner`` is an instance of the core class (its ``_apply_rule`` runs the rule; the
    values all come from ``hp``, the hyperparameters of this step), ``params`` the
    parameters (any floating dtype), ``grads`` their gradients (ĝ, with ``maximize``
    applied), ``moments`` name -> one state tensor per parameter, in ``work`` dtype.
    """
    if not params:
        return
    # Switches (bools, None) select the code; numbers become 0-d float64 tensors on the
    # device, inputs of the kernel (as Python floats torch.compile would specialise some
    # of them and recompile every step).
    switches = tuple(v if isinstance(v, bool) or v is None else "x" for v in hp)
    key = (type(runner).__name__, *switches, params[0].dtype, work)
    hp = _numbers_as_tensors(hp, params[0].device)
    kernel = _kernel(key)
    # One runner per kernel: the compiled code guards on the object it was traced with,
    # and every runner of a key computes the same (the values come from hp).
    runner = _runners.setdefault(key, runner)
    small = []
    for i, p in enumerate(params):
        if p.numel() < PACK_BELOW:
            small.append(i)
            continue
        tensors = [p, grads[i], *(v[i] for v in moments.values())]
        if all(x.is_contiguous() for x in tensors):  # flat views: one kernel for any shape
            flat = {k: v[i].view(-1) for k, v in moments.items()}
            _call(kernel, runner, hp, p.view(-1), grads[i].reshape(-1), flat, work)
        else:  # rare: step contiguous copies and copy back
            theta, flat = (
                p.reshape(-1).clone(),
                {k: v[i].reshape(-1).clone() for k, v in moments.items()},
            )
            _call(kernel, runner, hp, theta, grads[i].reshape(-1), flat, work)
            p.copy_(theta.view_as(p))
            for k, v in moments.items():
                v[i].copy_(flat[k].view_as(v[i]))
    if not small:
        return
    flat_theta = torch.cat([params[i].reshape(-1) for i in small])
    flat_g = torch.cat([grads[i].reshape(-1) for i in small])
    flat_moments = {k: torch.cat([v[i].reshape(-1) for i in small]) for k, v in moments.items()}
    _call(kernel, runner, hp, flat_theta, flat_g, flat_moments, work)
    sizes = [params[i].numel() for i in small]
    torch._foreach_copy_([params[i].view(-1) for i in small], list(torch.split(flat_theta, sizes)))
    for k, v in moments.items():
        parts = list(torch.split(flat_moments[k], sizes))
        torch._foreach_copy_([v[i].view(-1) for i in small], parts)
