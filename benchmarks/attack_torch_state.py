"""Hostile state dicts and param-group options against steplab.torch (issue 27).

Each attack hands an optimizer something it cannot step from (a moment given as a list, a
negative second moment, ``maximize='yes'``, …) through ``load_state_dict``,
``add_param_group`` or an edit of ``param_groups`` before ``step()``. An attack is
*refused cleanly* when it raises ``ValueError``/``TypeError`` and the optimizer's
``state_dict()`` and ``param_groups`` are what they were, bit for bit. Otherwise it is
counted by what happened next: another exception, a step that raises, non-finite
parameters, or a step that runs on the bad value.

    PYTHONPATH=src python benchmarks/attack_torch_state.py          # counts
    PYTHONPATH=src python benchmarks/attack_torch_state.py -v       # one line per attack

``tests/test_torch_validation.py`` runs it and asserts that every attack is refused cleanly.
"""

from __future__ import annotations

import collections
import copy
import math
import sys
from collections.abc import Callable
from typing import Any

import torch

import steplab.torch as st


def stepped_optimizer(name: str, **options) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    """An optimizer over two parameters, stepped twice (so its state exists)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))]
    opt = st.make(name, params, lr=0.01, **options)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    return opt, params


def same(a, b) -> bool:
    """Equal bit for bit: the same structure, types, dtypes and bytes."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        return (
            torch.is_tensor(a)
            and torch.is_tensor(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool((a.view(torch.uint8) == b.view(torch.uint8)).all())
            if a.numel()
            else a.shape == b.shape
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def snapshot(opt) -> dict:
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    params = [[id(p) for p in g["params"]] for g in opt.param_groups]
    values = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    return {
        "state": copy.deepcopy(opt.state_dict()),
        "groups": groups,
        "params": params,
        "values": values,
    }


# -- the attacks: (name, optimizer, options, what it does to the optimizer) --------------


def _load(edit: Callable[[dict], None]) -> Callable:
    def attack(opt, params):
        sd = copy.deepcopy(opt.state_dict())
        edit(sd)
        opt.load_state_dict(sd)

    return attack


def _moment(key: str, value, pid: int = 0) -> Callable:
    def edit(sd):
        sd["state"][pid][key] = value() if callable(value) else value

    return _load(edit)


def _scale(key: str, factor: float, pid: int = 0) -> Callable:
    def edit(sd):
        sd["state"][pid][key] = sd["state"][pid][key] * factor

    return _load(edit)


def _poke(key: str, value, pid: int = 0) -> Callable:
    def edit(sd):
        sd["state"][pid][key] = sd["state"][pid][key].clone()
        sd["state"][pid][key].view(-1)[0] = value

    return _load(edit)


def _group(key: str, value, number: int = 0) -> Callable:
    def edit(sd):
        sd["param_groups"][number][key] = value

    return _load(edit)


def _edit_group(key: str, value) -> tuple[Callable, Callable]:
    """(the user's edit, done before the snapshot; the step that must refuse it)."""

    def edit(opt, params):
        opt.param_groups[0][key] = value
        for p in params:
            p.grad = torch.full_like(p, float("nan")) if key == "nonfinite" else torch.randn_like(p)

    return edit, lambda opt, params: opt.step()


def _add_group(make_params: Callable, **options) -> Callable:
    def attack(opt, params):
        opt.add_param_group({"params": make_params(params), **options})

    return attack


def _new():
    return [torch.nn.Parameter(torch.randn(4))]


def _sparse():
    return torch.zeros(3).to_sparse()


ATTACKS: list[tuple[str, str, dict, Any]] = [
    # moments of the wrong kind
    ("s as a list", "adam", {}, _moment("s", [0.0, 0.0, 0.0])),
    ("s as 0.0", "adam", {}, _moment("s", 0.0)),
    ("s as None", "adam", {}, _moment("s", None)),
    ("s as a string", "adam", {}, _moment("s", "abc")),
    ("s as a NumPy array", "adam", {}, _moment("s", lambda: torch.zeros(3).numpy())),
    ("s as an int64 tensor", "adam", {}, _moment("s", lambda: torch.zeros(3, dtype=torch.int64))),
    ("s as a bool tensor", "adam", {}, _moment("s", lambda: torch.zeros(3, dtype=torch.bool))),
    ("s complex", "adam", {}, _moment("s", lambda: torch.zeros(3, dtype=torch.complex64))),
    ("s of shape (4,)", "adam", {}, _moment("s", lambda: torch.zeros(4))),
    ("s of shape (3, 1)", "adam", {}, _moment("s", lambda: torch.zeros(3, 1))),
    ("s 0-d", "adam", {}, _moment("s", lambda: torch.tensor(0.0))),
    ("s sparse", "adam", {}, _moment("s", _sparse)),
    ("s on the meta device", "adam", {}, _moment("s", lambda: torch.zeros(3, device="meta"))),
    ("r as a list", "adam", {}, _moment("r", [0.0, 0.0, 0.0])),
    ("r as None", "adam", {}, _moment("r", None)),
    # values the rule cannot step from
    ("r negative", "adam", {}, _scale("r", -1.0)),
    ("r with a NaN", "adam", {}, _poke("r", float("nan"))),
    ("r with an inf", "adam", {}, _poke("r", float("inf"))),
    ("s with a NaN", "adam", {}, _poke("s", float("nan"))),
    ("s with an inf", "adam", {}, _poke("s", float("-inf"))),
    ("r_max negative (amsgrad)", "adam", {"amsgrad": True}, _scale("r_max", -1.0)),
    ("AdaGrad's r negative", "adagrad", {}, _scale("r", -1.0)),
    ("AdaDelta's u negative", "adadelta", {}, _scale("u", -1.0)),
    ("RMSProp's r negative", "rmsprop", {}, _scale("r", -1.0)),
    # scalar state
    ("Nadam mu_product='abc'", "nadam", {}, _moment("mu_product", "abc")),
    ("Nadam mu_product=None", "nadam", {}, _moment("mu_product", None)),
    ("Nadam mu_product=True", "nadam", {}, _moment("mu_product", True)),
    ("Nadam mu_product=nan", "nadam", {}, _moment("mu_product", float("nan"))),
    ("Nadam mu_product=inf", "nadam", {}, _moment("mu_product", float("inf"))),
    ("Nadam mu_product a tensor", "nadam", {}, _moment("mu_product", lambda: torch.ones(2))),
    # the step count and bookkeeping
    ("t = -5", "adam", {}, _moment("t", -5)),
    ("t = 3.5", "adam", {}, _moment("t", 3.5)),
    ("t = '3'", "adam", {}, _moment("t", "3")),
    ("t = None", "adam", {}, _moment("t", None)),
    ("t = True", "adam", {}, _moment("t", True)),
    ("t as a tensor", "adam", {}, _moment("t", lambda: torch.tensor(3.0))),
    ("skipped = -1", "adam", {}, _moment("skipped", -1)),
    ("skipped = 'x'", "adam", {}, _moment("skipped", "x")),
    ("an unknown field", "adam", {}, _moment("foo", lambda: torch.zeros(3))),
    ("r missing", "adam", {}, _load(lambda sd: sd["state"][0].pop("r"))),
    ("a state that is a list", "adam", {}, _load(lambda sd: sd["state"].__setitem__(0, []))),
    ("state of an unlisted id", "adam", {}, _load(lambda sd: sd["state"].__setitem__(9, {}))),
    # saved param groups
    ("group maximize='yes'", "adam", {}, _group("maximize", "yes")),
    ("group fused='yes'", "adam", {}, _group("fused", "yes")),
    ("group nonfinite='explode'", "adam", {}, _group("nonfinite", "explode")),
    ("group foreach=5", "adam", {}, _group("foreach", 5)),
    ("group betas=(0.8, 0.9)", "adam", {}, _group("betas", (0.8, 0.9))),
    ("group lr=-1", "adam", {}, _group("lr", -1.0)),
    ("group lr='abc'", "adam", {}, _group("lr", "abc")),
    ("group amsgrad='yes'", "adam", {}, _group("amsgrad", "yes")),
    ("group rho1=1.5", "adam", {}, _group("rho1", 1.5)),
    ("duplicate ids in params", "adam", {}, _group("params", [0, 0])),
    ("param_groups not a list", "adam", {}, _load(lambda sd: sd.__setitem__("param_groups", {}))),
    ("a state dict that is a list", "adam", {}, lambda opt, params: opt.load_state_dict([])),
    # param-group options edited before step()
    ("edit maximize='yes'", "adam", {}, _edit_group("maximize", "yes")),
    ("edit fused='yes'", "adam", {}, _edit_group("fused", "yes")),
    ("edit nonfinite='explode'", "adam", {}, _edit_group("nonfinite", "explode")),
    ("edit foreach=5", "adam", {}, _edit_group("foreach", 5)),
    # add_param_group
    ("add_param_group lr=-1", "adam", {}, _add_group(lambda ps: _new(), lr=-1.0)),
    ("add_param_group maximize='yes'", "adam", {}, _add_group(lambda ps: _new(), maximize="yes")),
    ("add_param_group fused='yes'", "adam", {}, _add_group(lambda ps: _new(), fused="yes")),
    ("add_param_group nonfinite='x'", "adam", {}, _add_group(lambda ps: _new(), nonfinite="x")),
    ("add_param_group foreach=5", "adam", {}, _add_group(lambda ps: _new(), foreach=5)),
    (
        "add_param_group complex parameter",
        "adam",
        {},
        _add_group(lambda ps: [torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))]),
    ),
    (
        "add_param_group int parameter",
        "adam",
        {},
        _add_group(lambda ps: [torch.zeros(2, dtype=torch.int64)]),
    ),
    ("add_param_group duplicate parameter", "adam", {}, _add_group(lambda ps: _new() * 2)),
    ("add_param_group parameter of group 0", "adam", {}, _add_group(lambda ps: [ps[0]])),
]

# constructor options (no optimizer exists yet: refused = raises ValueError/TypeError)
CONSTRUCTOR_ATTACKS = [
    {"maximize": "yes"},
    {"maximize": 1},
    {"fused": "yes"},
    {"foreach": 5},
    {"nonfinite": "explode"},
]


def run(verbose: bool = False) -> collections.Counter:
    outcomes: collections.Counter = collections.Counter()
    for name, optimizer, options, attack in ATTACKS:
        opt, params = stepped_optimizer(optimizer, **options)
        if isinstance(attack, tuple):  # a user's edit first, then what must refuse it
            edit, attack = attack
            edit(opt, params)
        before = snapshot(opt)
        try:
            attack(opt, params)
        except (ValueError, TypeError) as exc:
            after = snapshot(opt)
            outcome = "refused cleanly" if same(before, after) else "refused, state changed"
            message = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 (counted, not hidden)
            outcome, message = f"other exception ({type(exc).__name__})", str(exc)
        else:
            try:
                for p in params:
                    p.grad = torch.randn_like(p)
                opt.step()
                finite = all(bool(torch.isfinite(p).all()) for p in params)
                outcome = "accepted, stepped" if finite else "accepted, non-finite parameters"
                message = ""
            except Exception as exc:  # noqa: BLE001
                outcome, message = "accepted, next step raised", f"{type(exc).__name__}: {exc}"
        outcomes[outcome] += 1
        if verbose:
            print(f"{name:38s} {outcome:32s} {message[:150]}")
    for options in CONSTRUCTOR_ATTACKS:
        message = ""
        try:
            st.make("adam", [torch.nn.Parameter(torch.zeros(2))], **options)
            outcome = "accepted, stepped"
        except (ValueError, TypeError) as exc:
            outcome, message = "refused cleanly", f"{type(exc).__name__}: {exc}"
        outcomes[outcome] += 1
        if verbose:
            print(f"constructor {options!s:26s} {outcome:32s} {message[:150]}")
    return outcomes


if __name__ == "__main__":
    counts = run(verbose="-v" in sys.argv)
    total = sum(counts.values())
    print(f"{total} attacks: " + ", ".join(f"{n} {k}" for k, n in counts.most_common()))
