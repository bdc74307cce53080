"""Checks of what a steplab torch optimizer is handed besides its hyperparameters: the
options of each param group and the state entries that ``load_state_dict`` loads.

Every check raises (``ValueError``, or ``TypeError`` for a parameter of the wrong kind)
*before* anything changes, naming the param group, the parameter and the field, and the
allowed values. The hyperparameters themselves are checked by the NumPy core
(:meth:`TorchOptimizer._validated`).

- **Options** (:data:`OPTION_CHOICES`): ``maximize`` and ``fused`` are ``True`` or ``False``
  (not ``"yes"``, not 1), ``nonfinite`` one of ``raise``, ``skip``, ``propagate``; a
  torch.optim option that steplab does not have (``foreach``, ``betas``, …) is refused
  rather than ignored. :func:`check_step_options` repeats the value checks at every step
  (a user may edit ``param_groups[i]`` between steps): a few identity tests per group.
- **A loaded state entry** (:func:`check_param_state`): the fields this optimizer keeps and
  no others; ``t`` and ``skipped`` integers ≥ 0; each moment a dense floating tensor of the
  parameter's shape with finite values, ≥ 0 where the rule keeps it ≥ 0 (second moments);
  each scalar state (Nadam's Πμ) a finite real number, ≥ 0 where the rule keeps it so.
  Which entries the rule keeps ≥ 0 is read from the rule itself
  (:func:`steplab.optim.checkpoint.nonnegative_state`, which ``State.load`` asks too),
  so no optimizer is named here.

Per-parameter step counts may differ within a group (a parameter that got no gradient in
some steps has taken fewer): each parameter keeps its own ``t`` and is stepped with it, as
the optimizer itself does, so such a state is loaded as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from steplab.optim.base import NONFINITE_POLICIES
from steplab.optim.checkpoint import nonnegative_state

#: Each option's allowed values (``maximize`` and ``fused`` must be the bools themselves).
OPTION_CHOICES: dict[str, tuple] = {
    "maximize": (True, False),
    "fused": (True, False),
    "nonfinite": NONFINITE_POLICIES,
}

#: torch.optim options steplab has no use for, and what to use instead.
TORCH_ONLY_OPTIONS = {
    "foreach": "the multi-tensor step is the default; fused=True is the single-pass step",
    "capturable": "steplab's steps need no capturable flag",
    "differentiable": "steplab's steps are not differentiable",
}


def _allowed(choices: tuple) -> str:
    if isinstance(choices[0], bool):
        return "True or False"
    return "one of " + ", ".join(choices)


def _valid_option(value: Any, choices: tuple) -> bool:
    if isinstance(choices[0], bool):
        return value is True or value is False
    return isinstance(value, str) and value in choices


def check_options(
    owner: str, group: Mapping[str, Any], where: str, foreign: Mapping[str, str]
) -> None:
    """``ValueError`` if one of the group's options is not an allowed value, or if the group
    has a key from ``foreign`` (torch.optim names steplab does not take -> what to use)."""
    for name, choices in OPTION_CHOICES.items():
        if name in group and not _valid_option(group[name], choices):
            raise ValueError(
                f"{owner}: {where}{name} must be {_allowed(choices)}, got {group[name]!r}"
            )
    unknown = [k for k in group if k in foreign]
    if unknown:
        hints = "; ".join(f"{k}: {foreign[k]}" for k in unknown)
        raise ValueError(
            f"{owner}: {where}{', '.join(unknown)} is a torch.optim option that steplab does "
            f"not take ({hints})"
        )


def check_step_options(
    owner: str, param_groups: Iterable[dict[str, Any]], foreign: Mapping[str, str]
) -> None:
    """:func:`check_options` for groups edited since they were checked, cheaply: per group
    three identity or membership tests, and a full check only when one fails."""
    for number, group in enumerate(param_groups):
        maximize, fused, nonfinite = group["maximize"], group["fused"], group["nonfinite"]
        if (
            (maximize is not True and maximize is not False)
            or (fused is not True and fused is not False)
            or type(nonfinite) is not str
            or nonfinite not in NONFINITE_POLICIES
            or not foreign.keys().isdisjoint(group)
        ):
            check_options(owner, group, f"param group {number}: ", foreign)


def check_new_params(owner: str, params: list[Any], others: Iterable[dict[str, Any]]) -> None:
    """A new group's parameters: floating-point tensors, none twice (torch.optim only warns),
    none in another group. ``params`` as torch.optim keeps them: tensors, or (name, tensor)."""
    tensors = [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in params]
    for p in tensors:
        if torch.is_tensor(p) and not p.is_floating_point():
            raise TypeError(
                f"{owner} needs floating-point parameters (float64, float32, bfloat16, "
                f"float16), got {p.dtype}"
            )
    if len({id(p) for p in tensors}) != len(tensors):
        raise ValueError(f"{owner}: a param group lists the same parameter twice")
    held = {id(p) for group in others for p in group["params"]}
    if any(id(p) in held for p in tensors):
        raise ValueError(f"{owner}: some parameters appear in more than one parameter group")


def check_saved_params(owner: str, groups: list[Any]) -> None:
    """The saved groups' parameter ids: a list each, no id twice (torch would give two
    parameters one state and the other none)."""
    seen: set = set()
    for number, group in enumerate(groups):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list):
            raise ValueError(
                f"{owner}.load_state_dict: param group {number} must be a dict with a list "
                "'params' of parameter ids"
            )
        for pid in ids:
            if not isinstance(pid, (int, str)) or isinstance(pid, bool) or pid in seen:
                raise ValueError(
                    f"{owner}.load_state_dict: param group {number} lists parameter id "
                    f"{pid!r} " + ("twice" if pid in seen else "(ids are ints)")
                )
            seen.add(pid)


def check_param_state(
    owner: str,
    where: str,
    state: Any,
    p: torch.Tensor,
    core: Any,
    kept: tuple[str, ...],
) -> None:
    """``ValueError`` if ``state`` (a loaded entry of ``owner``'s state) is not one the
    optimizer could step parameter ``p`` from. ``core``: the group's core optimizer;
    ``kept``: the names of the moments it keeps for this group. ``where`` names the
    group and the parameter."""
    prefix = f"{owner}.load_state_dict: {where}"
    expected = {"t", *core.SCALAR_STATE, *kept}
    if not isinstance(state, dict) or not expected <= set(state) <= expected | {"skipped"}:
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{prefix} holds {keys}, but {owner} with these hyperparameters keeps "
            f"{sorted(expected)} (and 'skipped'); this is not its state dict (torch.optim's, "
            "or another optimizer's or setting's)"
        )
    for name in ("t", "skipped"):
        value = state.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{prefix}: {name} must be an integer >= 0, got {value!r}")
    nonnegative = nonnegative_state(core, kept)
    for name in kept:
        _check_moment(prefix, name, state[name], p, name in nonnegative)
    for name in core.SCALAR_STATE:
        value = state[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{prefix}: {name} must be a real number (a float), got {value!r}")
        if not math.isfinite(value) or (name in nonnegative and value < 0):
            bound = "finite and >= 0" if name in nonnegative else "finite"
            raise ValueError(f"{prefix}: {name} must be {bound}, got {value!r}")


def _check_moment(prefix: str, name: str, value: Any, p: torch.Tensor, nonnegative: bool) -> None:
    if not (
        torch.is_tensor(value)
        and value.is_floating_point()
        and value.layout == torch.strided
        and value.device.type != "meta"
        and value.shape == p.shape
    ):
        got = (
            f"a {value.dtype} tensor of shape {tuple(value.shape)} ({value.layout}, "
            f"on {value.device})"
            if torch.is_tensor(value)
            else repr(value)[:60]
        )
        raise ValueError(
            f"{prefix}: moment {name} must be a dense floating-point tensor of the "
            f"parameter's shape {tuple(p.shape)}, got {got}"
        )
    local = value.to_local() if hasattr(value, "to_local") else value  # a DTensor's shard
    if not bool(torch.isfinite(local).all()):
        raise ValueError(f"{prefix}: moment {name} holds NaN or inf")
    if nonnegative and bool((local < 0).any()):
        raise ValueError(f"{prefix}: moment {name} holds negative values; the rule keeps it >= 0")
