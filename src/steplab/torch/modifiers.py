"""The cautious mask around a torch optimizer (:class:`steplab.optim.Cautious` on torch)::

    opt = Cautious(steplab.torch.AdamW(model.parameters(), lr=1e-3))   # C-AdamW
    opt = Cautious(torch.optim.AdamW(model.parameters(), lr=1e-3))

The inner optimizer takes its step; then the coordinates whose step Δθ points uphill (−Δθ
and ĝ disagree in sign) are set back, and the others scaled by n/(Σmask + 1). As in the
NumPy core, n and Σmask run over *every* parameter (θ is the parameters concatenated), and
decoupled weight decay is applied first and not masked. ``state_dict`` is the inner
optimizer's (the mask keeps no state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


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


__all__ = ["Cautious"]
