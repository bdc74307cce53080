"""Schedule-Free SGD and AdamW as ``torch.optim`` optimizers, with a train/eval switch.

The update is the NumPy core's rule (:mod:`steplab.optim.schedule_free`), run on torch
tensors: the parameters hold y (the gradient's point) in train mode and x (the average,
the point to evaluate at) in eval mode::

    opt = ScheduleFreeAdamW(model.parameters(), lr=2.5e-3)
    opt.watch(model)          # optional: a forward pass in the wrong mode raises
    model.train(); opt.train()
    ...                       # training steps
    model.eval(); opt.eval()  # parameters now hold x
    update_bn(loader, model, opt)  # BatchNorm statistics measured at x

``step`` in eval mode raises; with :meth:`ScheduleFreeOptimizer.watch`, so does a forward
pass of the model in eval mode while the optimizer is in train mode, and the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any, ClassVar

import torch

from steplab.optim import schedule_free as core_sf
from steplab.torch.ops import TORCH_OPS

_MODE_ERROR = (
    "{name}: {what} while the optimizer is in {mode} mode. Schedule-Free trains at y and "
    "evaluates at x: call opt.train() before training steps and opt.eval() before "
    "evaluating (and before saving a model for inference)."
)


class ScheduleFreeOptimizer(torch.optim.Optimizer):
    """A Schedule-Free optimizer: the core's rule per parameter, the averaging weights
    per param group, and the train/eval switch (starts in train mode)."""

    core_type: ClassVar[type[core_sf.ScheduleFreeBase]]

    def __init__(self, params: Iterable[Any], **hyperparameters: Any) -> None:
        core = self.core_type(**hyperparameters)  # validates: ValueError naming the interval
        defaults = {name: getattr(core, name) for name in core.hyperparameters()}
        defaults.update(t=0, weight_sum=0.0, lr_max=0.0, train_mode=True)
        super().__init__(params, defaults)
        self._suspended = False  # True while update_bn runs the model in train mode at x
        for group in self.param_groups:  # group-specific values are checked too
            self._core(group)

    def _core(self, group: dict) -> core_sf.ScheduleFreeBase:
        return self.core_type(**{name: group[name] for name in self.core_type.hyperparameters()})

    @property
    def training(self) -> bool:
        """Whether the parameters hold y (train mode) rather than x (eval mode)."""
        return all(group["train_mode"] for group in self.param_groups)

    @torch.no_grad()
    def eval(self) -> None:
        """Move every parameter to x, the averaged point to evaluate at (idempotent)."""
        for group in self.param_groups:
            if group["train_mode"]:
                core = self._core(group)
                for p in self._with_state(group):
                    state = SimpleNamespace(z=self.state[p]["z"])
                    p.copy_(core.eval_params(p, state))
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Move every parameter back to y, the point to take gradients at (idempotent)."""
        for group in self.param_groups:
            if not group["train_mode"]:
                core = self._core(group)
                for p in self._with_state(group):
                    state = SimpleNamespace(z=self.state[p]["z"])
                    p.copy_(core.train_params(p, state))
                group["train_mode"] = True

    def _with_state(self, group: dict) -> list[torch.Tensor]:
        return [p for p in group["params"] if "z" in self.state[p]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if not self.training:
            raise RuntimeError(
                _MODE_ERROR.format(
                    name=self.core_type.name, what="step() was called", mode="eval"
                )  # fmt: skip
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            core = self._core(group)  # an lr changed by a scheduler is checked here
            t = group["t"] + 1
            before = SimpleNamespace(weight_sum=group["weight_sum"], lr_max=group["lr_max"])
            hp = core.hyper_at(t, before, TORCH_OPS)  # the protocol's step values
            hp = type(hp)(*(v if isinstance(v, bool) else float(v) for v in hp))  # numbers
            names = core.moment_names()
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "z" not in state:
                    state["z"] = p.detach().clone(memory_format=torch.preserve_format)
                    for name in names[1:]:
                        state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
                moments = SimpleNamespace(**{n: state[n] for n in names})
                y, new = core.apply_rule(TORCH_OPS, hp, p, p.grad, moments)  # decay + rule
                p.copy_(y)
                for name, value in new.items():
                    state[name].copy_(value)
            group.update(t=t, weight_sum=hp.weight_sum, lr_max=hp.lr_max)
        return loss

    def watch(self, model: torch.nn.Module) -> Any:
        """Make a forward pass of ``model`` raise when its mode (``model.training``) differs
        from the optimizer's: evaluating at y or training at x is then an error, not a
        silently wrong number. Returns the hook's handle (``handle.remove()`` ends it)."""

        def check(module: torch.nn.Module, inputs: Any) -> None:
            if self._suspended or module.training == self.training:
                return
            what = "the model runs in " + ("train" if module.training else "eval") + " mode"
            mode = "train" if self.training else "eval"
            raise RuntimeError(_MODE_ERROR.format(name=self.core_type.name, what=what,
                                                  mode=mode))  # fmt: skip

        return model.register_forward_pre_hook(check)


class ScheduleFreeSGD(ScheduleFreeOptimizer):
    """Schedule-Free SGD (:class:`steplab.optim.ScheduleFreeSGD`): ``lr``, ``rho`` (β),
    ``warmup_steps``, ``poly_power``, ``weight_lr_power``, ``weight_decay``."""

    core_type = core_sf.ScheduleFreeSGD


class ScheduleFreeAdamW(ScheduleFreeOptimizer):
    """Schedule-Free AdamW (:class:`steplab.optim.ScheduleFreeAdamW`): ``lr``, ``rho1`` (β),
    ``rho2``, ``eps``, ``warmup_steps``, ``poly_power``, ``weight_lr_power``,
    ``weight_decay``."""

    core_type = core_sf.ScheduleFreeAdamW


@torch.no_grad()
def update_bn(loader: Iterable[Any], model: torch.nn.Module,
              optimizer: ScheduleFreeOptimizer) -> None:  # fmt: skip
    """Recompute ``model``'s BatchNorm running statistics at the evaluation point x.

    BatchNorm's running mean and variance were gathered at the training points y; at x
    they are stale (facebookresearch/schedule_free issues 11 and 60). This puts the
    optimizer in eval mode (parameters at x), resets every BatchNorm layer's statistics
    and averages them, with equal weights, over the batches of ``loader`` (as
    ``torch.optim.swa_utils.update_bn``), then leaves the model in eval mode: ready to
    evaluate. Call ``optimizer.train()`` and ``model.train()`` before training on.
    """
    optimizer.eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = {}
    for module in norms:
        module.reset_running_stats()
        momenta[module] = module.momentum
        module.momentum = None  # None: a cumulative (equal-weight) average
    optimizer._suspended = True  # for the watch hook: train mode at x is wanted here
    model.train()
    try:
        for batch in loader:
            model(batch[0] if isinstance(batch, (list, tuple)) else batch)
    finally:
        optimizer._suspended = False
        for module, momentum in momenta.items():
            module.momentum = momentum
        model.eval()


__all__ = [
    "ScheduleFreeAdamW",
    "ScheduleFreeOptimizer",
    "ScheduleFreeSGD",
    "update_bn",
]
