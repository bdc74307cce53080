"""The cautious mask around a torch optimizer (:class:`steplab.optim.Cautious` on torch)::

    opt = Cautious(steplab.torch.AdamW(model.parameters(), lr=1e-3))   # C-AdamW
    opt = Cautious(torch.optim.AdamW(model.parameters(), lr=1e-3))

The inner optimizer takes its step; then the coordinates whose step Δθ points uphill (−Δθ
and ĝ disagree in sign) are set back, and the others scaled by n/(Σmask + 1). As in the
NumPy core, n and Σmask run over *every* parameter (θ is the parameters concatenated), and
decoupled weight decay is applied first and not masked. ``state_dict`` is the inner
optimizer's (the mask keeps no state).

MARS and Prodigy (rules with reductions over every parameter) run the NumPy core's own
``rule`` on torch tensors (:class:`WholeArray`)::

    opt = steplab.torch.MARS(model.parameters(), lr=3e-3, weight_decay=0.1)
    opt = steplab.torch.Prodigy(model.parameters(), weight_decay=0.01, maximize=False)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import torch

from steplab.optim import modifiers as core_modifiers
from steplab.torch import validation
from steplab.torch.base import passes_nonfinite_policy
from steplab.torch.ops import TORCH_OPS


def _decouples_weight_decay(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the inner optimizer's weight decay is decoupled (θ(1 − αλ), AdamW) rather
    than an L2 term in the gradient: a steplab twin says so through its core class."""
    core = getattr(type(optimizer), "core", None)
    if core is not None:
        return bool(core.DECOUPLED_WEIGHT_DECAY)
    return isinstance(optimizer, torch.optim.AdamW) or any(
        g.get("decoupled_weight_decay", False) for g in optimizer.param_groups
    )


class Cautious:
    """``optimizer``'s step with the cautious mask (Liang et al., 2024); the optimizer's
    ``param_groups``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` pass through."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Cautious wraps a torch optimizer, got {optimizer!r}")
        self.optimizer = optimizer
        self.decoupled = _decouples_weight_decay(optimizer)

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params, starts, grads, decays = [], [], [], []
        for group in self.optimizer.param_groups:
            decay = self.decoupled and group.get("weight_decay", 0.0)
            decays.append(decay)
            for p in group["params"]:
                if p.grad is None:
                    continue
                params.append(p)
                grads.append(p.grad.clone())
                # decoupled decay first, not masked: θ(1 − αλ) is where the masked step starts
                starts.append(p * (1 - group["lr"] * decay) if decay else p.clone())
        before = [p.clone() for p in params]
        for group, decay in zip(self.optimizer.param_groups, decays, strict=True):
            if decay:
                group["weight_decay"] = 0.0  # the inner step without it
        try:
            self.optimizer.step()
        finally:
            for group, decay in zip(self.optimizer.param_groups, decays, strict=True):
                if decay:
                    group["weight_decay"] = decay
        deltas = [p - b for p, b in zip(params, before, strict=True)]
        masks = [(-d * g > 0).to(d.dtype) for d, g in zip(deltas, grads, strict=True)]
        n = sum(m.numel() for m in masks)
        scale = n / (torch.stack([m.sum() for m in masks]).sum() + 1)  # one reduction over θ
        for p, start, d, m in zip(params, starts, deltas, masks, strict=True):
            p.copy_(start + d * (m * scale))
        return loss


class WholeArray(torch.optim.Optimizer):
    """A torch optimizer running a :class:`~steplab.optim.modifiers.WholeArrayOptimizer`'s
    rule, whose reductions (‖c‖ in MARS, ⟨ĝ, θ₀ − θ⟩ and ‖s‖₁ in Prodigy) run over every
    parameter: each step concatenates θ, ĝ and the moments of all parameters with a
    gradient into flat tensors (θ is the parameters concatenated, as in the core), runs the
    core's ``rule`` on them with :data:`TORCH_OPS` and writes the results back. Each
    parameter's ``state`` holds its moments and the shared step count and scalars. The
    hyperparameters are the same for every group (the rule is one rule over all of them);
    an LR scheduler may change ``lr`` in all groups alike.

    Options, as every steplab torch optimizer's (:class:`~steplab.torch.base.TorchOptimizer`),
    per group: ``maximize`` (the group's ĝ negated) and ``nonfinite`` (``"propagate"``,
    ``"raise"``: ``FloatingPointError`` with parameters and state untouched, ``"skip"``: the
    whole step skipped, as the rule is one step over every parameter, and counted in each
    checked parameter's ``state["skipped"]``). There is no ``fused`` step."""

    core: ClassVar[type[core_modifiers.WholeArrayOptimizer]]
    #: Options besides the core's hyperparameters (name -> default), kept in each group.
    OPTIONS: ClassVar[dict[str, Any]] = {"maximize": False, "nonfinite": "propagate"}

    def __init__(self, params: Any, **hyperparameters: Any) -> None:
        options = {k: hyperparameters.pop(k, v) for k, v in self.OPTIONS.items()}
        validation.check_options(type(self).__name__, options, "", {})
        unknown = sorted(set(hyperparameters) - set(self._names()))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} takes no {', '.join(unknown)}; it takes "
                f"{', '.join([*self._names(), *self.OPTIONS])} (no fused: its rule reduces "
                "over every parameter, one multi-tensor step)"
            )
        configured = self.core(**hyperparameters)  # checks names and values, as the core
        defaults = {**{k: getattr(configured, k) for k in self._names()}, **options}
        super().__init__(params, defaults)

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.core) if f.init]

    def _configured(self) -> core_modifiers.WholeArrayOptimizer:
        names = self._names()
        values = [tuple(group[k] for k in names) for group in self.param_groups]
        if len(set(values)) > 1:
            raise ValueError(
                f"{type(self).__name__}'s rule reduces over every parameter: all parameter "
                f"groups need the same {', '.join(names)}"
            )
        return self.core(**dict(zip(names, values[0], strict=True)))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for number, group in enumerate(self.param_groups):  # edited since? checked again
            validation.check_options(type(self).__name__, group, f"param group {number}: ", {})
        configured = self._configured()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not params or not passes_nonfinite_policy(self):
            return loss
        states = [self.state[p] for p in params]
        for p, state in zip(params, states, strict=True):
            if "t" not in state:
                state["t"] = 0
                state.update(configured.initial_scalars())
                for name in configured.MOMENTS:
                    copy = name in configured.COPIES_THETA
                    state[name] = p.detach().clone() if copy else torch.zeros_like(p)
        if len({s["t"] for s in states}) > 1:
            raise ValueError(
                f"{type(self).__name__}: every parameter must take every step (its rule "
                "reduces over all of them); some have a different step count"
            )
        first = states[0]
        flat = SimpleNamespace(
            t=first["t"] + 1,
            **{k: first[k] for k in configured.SCALARS},
            **{k: _cat([s[k] for s in states]) for k in configured.MOMENTS},
        )
        theta = _cat([p.detach() for p in params])
        grads = [-p.grad if g["maximize"] else p.grad
                 for g in self.param_groups for p in g["params"] if p.grad is not None]  # fmt: skip
        new_theta = configured.rule(theta, _cat(grads), flat, TORCH_OPS)
        sizes = [p.numel() for p in params]
        for p, part in zip(params, torch.split(new_theta, sizes), strict=True):
            p.copy_(part.view_as(p))
        for name in configured.MOMENTS:
            for state, part in zip(states, torch.split(getattr(flat, name), sizes), strict=True):
                state[name].copy_(part.view_as(state[name]))
        for state in states:
            state["t"] = flat.t
            state.update({k: getattr(flat, k) for k in configured.SCALARS})
        return loss


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


class MARS(WholeArray):
    """:class:`steplab.optim.MARS` (MARS-AdamW, Yuan et al., 2024) on torch: the corrected
    gradient's norm is clipped to 1 over every parameter together."""

    core = core_modifiers.MARS


class Prodigy(WholeArray):
    """:class:`steplab.optim.Prodigy` (Mishchenko & Defazio, 2023) on torch: d estimated
    from ⟨ĝ, θ₀ − θ⟩ and ‖s‖₁ over every parameter together."""

    core = core_modifiers.Prodigy


__all__ = ["MARS", "Cautious", "Prodigy", "WholeArray"]
