"""The gradient transformations of :mod:`steplab.optim.transforms` on torch tensors, and
:class:`Chain`, a ``torch.optim``-style optimizer that runs a chain of them::

    from steplab.torch import transforms as T

    opt = T.Chain(
        model.named_parameters(),                      # labels, for masks
        T.clip_by_global_norm(1.0),
        T.masked(T.add_decayed_weights(1e-4), lambda params: {k: p.ndim > 1 for k, p in
                                                              params.items()}),
        T.from_optimizer(torch.optim.Adam, lr=1e-3),   # any torch optimizer class
        T.decay_weights(1e-3, 0.1),
    )
    loss.backward(); opt.step(); opt.zero_grad()

The pieces are the core's, on trees that are dicts of tensors by label; where a core piece is
plain arithmetic (weight decay, scaling, ``chain``, ``masked``) it is the core's function
itself, and the rest (clipping, accumulation) follow it line for line in torch operations.
Each piece carries a ``description``; :meth:`Chain.load_state_dict` refuses the state of
another chain (other pieces, labels or shapes) before it changes anything.

A torch optimizer inside the chain turns gradients into steps Δθ (its ``step`` is run and
θ put back, as the core's ``from_optimizer`` does), so pieces after it see Δθ and θ: that
costs one copy of the parameters per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import torch

from steplab.optim import transforms as core

Tree = Any  # a tensor, or a dict of tensors by label
tree_map, leaves = core.tree_map, core.leaves


class Transformation(NamedTuple):
    """A core ``GradientTransformation`` with a description (what a saved state names)."""

    init: Callable[[Tree], Any]
    update: Callable[..., tuple[Tree, Any]]
    description: str


def _described(tx: Any, description: str) -> Transformation:
    return Transformation(tx.init, tx.update, description)


def _core(piece: Transformation) -> core.GradientTransformation:
    return core.GradientTransformation(piece.init, piece.update)


def _check_pieces(transforms: Iterable[Any]) -> list[Transformation]:
    pieces = list(transforms)
    for piece in pieces:
        if not isinstance(piece, Transformation):
            raise TypeError(
                "a piece of a torch chain must come from steplab.torch.transforms "
                f"(clip_by_global_norm, from_optimizer, …), got {piece!r}"
            )
    return pieces


# --------------------------------------------------------------------------------------
# The pieces: the core's where it is plain arithmetic on trees, torch operations elsewhere
# --------------------------------------------------------------------------------------


def chain(*transforms: Transformation) -> Transformation:
    """Each transformation's updates fed to the next (the core's ``chain``)."""
    pieces = _check_pieces(transforms)
    names = ", ".join(piece.description for piece in pieces)
    return _described(core.chain(*map(_core, pieces)), f"chain({names})")


def add_decayed_weights(weight_decay: float) -> Transformation:
    """g + λθ: an L2 penalty, before the optimizer (the core's piece)."""
    return _described(core.add_decayed_weights(weight_decay), "add_decayed_weights")


def decay_weights(lr: float, weight_decay: float) -> Transformation:
    """Δθ − αλθ: decoupled weight decay, after the optimizer (the core's piece)."""
    return _described(core.decay_weights(lr, weight_decay), "decay_weights")


def scale(factor: float) -> Transformation:
    """factor·g (the core's piece)."""
    return _described(core.scale(factor), "scale")


def scale_by_learning_rate(lr: float) -> Transformation:
    """−α·g (the core's piece)."""
    return _described(core.scale_by_learning_rate(lr), "scale_by_learning_rate")


def masked(
    inner: Transformation, mask: dict[str, bool] | Callable[[Tree], dict[str, bool]]
) -> Transformation:
    """``inner`` on the labels the mask selects; the others pass unchanged (the core's)."""
    (inner,) = _check_pieces([inner])
    shown = sorted(k for k, chosen in mask.items() if chosen) if isinstance(mask, dict) else "fn"
    return _described(core.masked(_core(inner), mask), f"masked({inner.description}, {shown})")


def clip_by_global_norm(max_norm: float) -> Transformation:
    """g·(c/‖g‖) when the global norm ‖g‖ exceeds c: one reduction over every leaf, and no
    wait for the device (the choice is made by ``torch.where``)."""
    core.clip_by_global_norm(max_norm)  # checks max_norm as every path does
    c = float(max_norm)

    def update(updates: Tree, state: tuple, params: Tree = None) -> tuple[Tree, tuple]:
        norms = [torch.linalg.vector_norm(g) for g in leaves(updates)]
        norm = torch.linalg.vector_norm(torch.stack(norms))
        return tree_map(lambda g: torch.where(norm < c, g, g / norm * c), updates), state

    return Transformation(lambda params: (), update, "clip_by_global_norm")


def clip(max_delta: float) -> Transformation:
    """Each coordinate of g clipped to [−δ, δ]."""
    core.clip(max_delta)
    delta = float(max_delta)

    def update(updates: Tree, state: tuple, params: Tree = None) -> tuple[Tree, tuple]:
        return tree_map(lambda g: torch.clamp(g, -delta, delta), updates), state

    return Transformation(lambda params: (), update, "clip")


class MultiStepsState(NamedTuple):
    mini_step: int  # gradients accumulated since the last step
    acc_grads: Tree  # their running mean
    inner: Any  # the inner transformation's state


def MultiSteps(inner: Transformation, every_k: int) -> Transformation:  # noqa: N802 - the core's
    """Gradient accumulation (the core's ``MultiSteps``): the mean of k gradients, then one
    step of ``inner``; zero updates in between."""
    (inner,) = _check_pieces([inner])
    core.MultiSteps(_core(inner), every_k)  # checks every_k

    def init(params: Tree) -> MultiStepsState:
        return MultiStepsState(0, tree_map(torch.zeros_like, params), inner.init(params))

    def update(updates: Tree, state: MultiStepsState, params: Tree = None) -> tuple:
        k = state.mini_step
        mean = tree_map(lambda a, g: a + (g - a) / (k + 1), state.acc_grads, updates)
        if k + 1 < every_k:
            return tree_map(torch.zeros_like, updates), MultiStepsState(k + 1, mean, state.inner)
        steps, inner_state = inner.update(mean, state.inner, params)
        return steps, MultiStepsState(0, tree_map(torch.zeros_like, mean), inner_state)

    return Transformation(init, update, f"MultiSteps({inner.description}, {every_k})")


class OptimizerState:
    """The state of :func:`from_optimizer`'s piece: the torch optimizer itself."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer


def from_optimizer(optimizer_class: Callable[..., torch.optim.Optimizer],
                   **settings: Any) -> Transformation:  # fmt: skip
    """A torch optimizer (``torch.optim.Adam``, ``steplab.torch.AdamW``, …, built with
    ``settings`` over the parameters this piece sees) as the piece that turns gradients into
    steps: its ``step`` from the given gradients, returned as Δθ = θ_new − θ with θ put
    back (the core's ``from_optimizer``)."""
    made_by = getattr(optimizer_class, "func", optimizer_class)  # a functools.partial's
    name = getattr(made_by, "__qualname__", type(made_by).__name__)

    def init(params: Tree) -> OptimizerState:
        return OptimizerState(optimizer_class(leaves(params), **settings))

    def update(updates: Tree, state: OptimizerState, params: Tree = None) -> tuple:
        if params is None:
            raise ValueError(f"from_optimizer({name}) needs params")
        live = leaves(params)
        held = [p for group in state.optimizer.param_groups for p in group["params"]]
        if len(held) != len(live) or any(a is not b for a, b in zip(held, live, strict=True)):
            raise ValueError(f"from_optimizer({name}) was given other parameters than at init")
        before = [p.detach().clone() for p in live]
        grads = [p.grad for p in live]
        for p, g in zip(live, leaves(updates), strict=True):
            p.grad = g
        state.optimizer.step()
        steps = [p.detach() - b for p, b in zip(live, before, strict=True)]
        for p, b, g in zip(live, before, grads, strict=True):
            p.detach().copy_(b)  # θ back: the chain adds the (transformed) step
            p.grad = g
        keys = list(updates) if isinstance(updates, dict) else None
        return (dict(zip(keys, steps, strict=True)) if keys else steps[0]), state

    return Transformation(init, update, f"from_optimizer({name})")


# --------------------------------------------------------------------------------------
# The optimizer that runs a chain
# --------------------------------------------------------------------------------------


class Chain:
    """A ``torch.optim``-style optimizer running ``transforms`` in order on the gradients
    (``step``, ``zero_grad``, ``param_groups``, ``state_dict``/``load_state_dict``).

    ``params``: ``model.named_parameters()``, a dict label → parameter, or parameters alone
    (labelled "0", "1", …). Every parameter needs a gradient at each step.
    """

    def __init__(self, params: Any, *transforms: Transformation) -> None:
        self.params = _labelled(params)
        self.transform = chain(*transforms)
        with torch.no_grad():
            self.state = self.transform.init(self.params)

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers inside the chain (what ``param_groups`` lists)."""
        return [s.optimizer for s in _walk(self.state) if isinstance(s, OptimizerState)]

    @property
    def param_groups(self) -> list[dict]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params.values():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        missing = [k for k, p in self.params.items() if p.grad is None]
        if missing:
            raise ValueError(
                f"parameters {', '.join(missing)} have no gradient; a chain needs every "
                "parameter's (leave a frozen one out of params)"
            )
        grads = {k: p.grad for k, p in self.params.items()}
        updates, self.state = self.transform.update(grads, self.state, self.params)
        for k, p in self.params.items():
            p.add_(updates[k])
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "chain": self.transform.description,
            "labels": list(self.params),
            "state": _save(self.state),
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Load a :meth:`state_dict`; ValueError, with nothing changed, when it comes from
        another chain (pieces, labels) or other shapes."""
        if saved.get("chain") != self.transform.description:
            raise ValueError(
                f"this state_dict belongs to {saved.get('chain') or 'no chain'}, "
                f"not to {self.transform.description}"
            )
        if saved.get("labels") != list(self.params):
            raise ValueError(
                f"this state_dict was saved for parameters {saved.get('labels')}, "
                f"not {list(self.params)}"
            )
        _check_saved(self.state, saved["state"], "state")  # everything, before any change
        self.state = _load(self.state, saved["state"])


def _labelled(params: Any) -> dict[str, torch.Tensor]:
    if isinstance(params, Mapping):
        items = list(params.items())
    else:
        items = list(params)
        if items and isinstance(items[0], torch.Tensor):
            items = [(str(i), p) for i, p in enumerate(items)]
    if not items:
        raise ValueError("a chain needs parameters, got none")
    named = dict(items)
    if len(named) != len(items) or not all(isinstance(p, torch.Tensor) for p in named.values()):
        raise ValueError("params must be tensors with distinct labels (model.named_parameters())")
    return named


def _walk(state: Any) -> Iterable[Any]:
    yield state
    if isinstance(state, tuple):
        for part in state:
            yield from _walk(part)
    elif isinstance(state, dict):
        for part in state.values():
            yield from _walk(part)


def _save(state: Any) -> Any:
    if isinstance(state, OptimizerState):
        return {"optimizer": state.optimizer.state_dict()}
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _save(v) for k, v in state.items()}
    if isinstance(state, tuple):
        return [_save(part) for part in state]
    return state  # counts


def _check_saved(current: Any, saved: Any, where: str) -> None:
    """ValueError naming ``where`` when ``saved`` does not fit ``current``'s structure."""
    if isinstance(current, OptimizerState):
        groups = current.optimizer.state_dict()["param_groups"]
        theirs = saved.get("optimizer", {}).get("param_groups") if isinstance(saved, dict) else None
        if theirs is None or [len(g["params"]) for g in theirs] != [len(g["params"])
                                                                   for g in groups]:  # fmt: skip
            raise ValueError(f"{where}: not the state of this optimizer's parameter groups")
    elif isinstance(current, torch.Tensor):
        if not (
            isinstance(saved, torch.Tensor)
            and saved.shape == current.shape
            and saved.dtype == current.dtype
        ):
            raise ValueError(f"{where}: a tensor of shape {tuple(current.shape)} and "
                             f"{current.dtype} was expected")  # fmt: skip
    elif isinstance(current, dict):
        if not isinstance(saved, dict) or saved.keys() != current.keys():
            raise ValueError(f"{where}: labels differ")
        for k in current:
            _check_saved(current[k], saved[k], f"{where}.{k}")
    elif isinstance(current, tuple):
        if not isinstance(saved, list | tuple) or len(saved) != len(current):
            raise ValueError(f"{where}: another chain's state")
        for i, (part, theirs) in enumerate(zip(current, saved, strict=True)):
            _check_saved(part, theirs, f"{where}[{i}]")
    elif type(saved) is not type(current) or (isinstance(saved, int) and saved < 0):
        raise ValueError(f"{where}: {current!r} of type {type(current).__name__} was expected")


def _load(current: Any, saved: Any) -> Any:
    if isinstance(current, OptimizerState):
        current.optimizer.load_state_dict(saved["optimizer"])
        return current
    if isinstance(current, torch.Tensor):
        return saved.detach().clone().to(current.device)
    if isinstance(current, dict):
        return {k: _load(current[k], saved[k]) for k in current}
    if isinstance(current, tuple):
        parts = [_load(c, s) for c, s in zip(current, saved, strict=True)]
        return type(current)(*parts) if hasattr(current, "_fields") else tuple(parts)
    return saved


__all__ = [
    "Chain",
    "MultiSteps",
    "MultiStepsState",
    "OptimizerState",
    "Transformation",
    "add_decayed_weights",
    "chain",
    "clip",
    "clip_by_global_norm",
    "decay_weights",
    "from_optimizer",
    "masked",
    "scale",
    "scale_by_learning_rate",
]
