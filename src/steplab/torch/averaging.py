"""EMA and Lookahead around any ``torch.optim`` optimizer (SWA: use
``torch.optim.swa_utils.AveragedModel``, which :class:`steplab.optim.SWA` equals).

The formulas are the NumPy core's (:mod:`steplab.optim.averaging`), on each parameter::

    opt = Lookahead(torch.optim.AdamW(model.parameters()), sync_period=5, slow_step_size=0.5)
    opt = EMA(torch.optim.AdamW(model.parameters()), decay=0.999)
    ...
    opt.step()
    with torch.no_grad():
        averaged = opt.averaged()          # one tensor per parameter, to evaluate at

``state_dict`` holds the inner optimizer's state and the wrapper's tensors; loading one
saved from another wrapper raises ValueError before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from steplab.optim import averaging as core


class _Wrapper:
    """An optimizer around ``optimizer``: same param_groups, one tensor per parameter."""

    core_type: type[core.Averaging]
    core: Any  # the NumPy wrapper: its checked settings

    def __init__(self, optimizer: torch.optim.Optimizer, **settings: Any) -> None:
        self.core = self.core_type(base=_Named(optimizer), **settings)  # checks the settings
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.buffers = [self.initial(p) for p in self.params]
        self.steps_seen = 0

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def initial(self, p: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.optimizer.step(closure)
        self.steps_seen += 1
        self.after_step()
        return loss

    def after_step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "wrapper": self.core.name,
            "optimizer": self.optimizer.state_dict(),
            "buffers": [b.clone() for b in self.buffers],
            "steps_seen": self.steps_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("wrapper") != self.core.name:
            raise ValueError(
                f"this state_dict belongs to {state.get('wrapper') or 'no wrapper'}, "
                f"not to {self.core.name}"
            )
        if [b.shape for b in state["buffers"]] != [p.shape for p in self.params]:
            raise ValueError("this state_dict was saved for parameters of other shapes")
        self.optimizer.load_state_dict(state["optimizer"])
        for buffer, saved in zip(self.buffers, state["buffers"], strict=True):
            buffer.copy_(saved)
        self.steps_seen = state["steps_seen"]


class _Named:
    """What the core's validation needs of a base: a name, init and step."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.name = type(optimizer).__name__.lower()

    def init(self, theta: Any) -> None:  # pragma: no cover - never called
        raise NotImplementedError

    step = init

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


class EMA(_Wrapper):
    """θ̄ ← ρθ̄ + (1 − ρ)θ after every step; :meth:`averaged` divides by 1 − ρᵗ with
    ``debias`` (settings: ``decay``, ``debias``, as :class:`steplab.optim.EMA`)."""

    core_type = core.EMA

    def after_step(self) -> None:
        rho = self.core.decay
        for p, ema in zip(self.params, self.buffers, strict=True):
            ema.copy_(rho * ema + (1 - rho) * p)

    @torch.no_grad()
    def averaged(self) -> list[torch.Tensor]:
        if self.core.debias and self.steps_seen > 0:
            return [ema / (1 - self.core.decay**self.steps_seen) for ema in self.buffers]
        return [ema.clone() for ema in self.buffers]


class Lookahead(_Wrapper):
    """Every ``sync_period`` steps φ ← φ + α(θ − φ) and θ ← φ (``slow_step_size`` α)."""

    core_type = core.Lookahead

    def initial(self, p: torch.Tensor) -> torch.Tensor:
        return p.detach().clone(memory_format=torch.preserve_format)

    def after_step(self) -> None:
        if self.steps_seen % self.core.sync_period:
            return
        alpha = self.core.slow_step_size
        for p, slow in zip(self.params, self.buffers, strict=True):
            difference = p - slow
            p.copy_(p - (1 - alpha) * difference)
            slow.copy_(slow + alpha * difference)

    @torch.no_grad()
    def averaged(self) -> list[torch.Tensor]:
        return [slow.clone() for slow in self.buffers]


__all__ = ["EMA", "Lookahead"]
