"""The single-pass step's reach into inductor's internals, fenced in one place.

``torch._inductor.compile`` compiles an FX graph (what ``torch.compile`` does with a
backend's graph). Its result is called through AOT-autograd's and dynamo's wrappers, which
cost microseconds per call; :func:`direct_entry` finds inductor's own entry point among
their closures and checks, on example tensors, that it steps them to the same bits. That
walk depends on how this torch version builds those wrappers, so it runs only on the torch
versions it was written and tested for (:data:`WRITTEN_FOR`); on any other the single-pass
step calls the compiled function as torch returns it (the same numbers, a little slower).
"""

from __future__ import annotations

from typing import Any

import torch

#: The torch versions (major, minor) whose wrappers :func:`direct_entry` knows.
WRITTEN_FOR = ((2, 13),)


def torch_version() -> tuple[int, int]:
    major, minor, *_ = torch.__version__.split("+")[0].split(".")
    return int(major), int(minor)


def written_for_this_torch() -> bool:
    """Whether this torch is one :func:`direct_entry` was written for."""
    return torch_version() in WRITTEN_FOR


def compile_graph(gm: Any, inputs: list, options: dict) -> Any:
    """``gm`` compiled by inductor for ``inputs`` (the callable torch returns)."""
    return torch._inductor.compile(gm, inputs, options=options)


def direct_entry(kernel: Any, inputs: list, mutated: list[int], example_size: int) -> Any:
    """inductor's own entry point of the compiled graph (``call(args)``, a list), without
    the AOT-autograd and dynamo wrappers of ``kernel`` around it; None unless it is found,
    mutates exactly the inputs ``mutated`` and steps copies of ``inputs`` to the same bits
    as ``kernel`` does. (Found through private attributes: if a torch version moves them,
    the step keeps calling ``kernel``.)"""
    if not written_for_this_torch():
        return None
    graph = _find_compiled_graph(kernel)
    entry = getattr(graph, "current_callable", None)
    if entry is None or sorted(getattr(graph, "mutated_input_idxs", ())) != mutated:
        return None
    gen = torch.Generator(device="cpu").manual_seed(0)

    def copies() -> list:
        gen.manual_seed(0)
        values: list[Any] = []
        for x in inputs:
            if isinstance(x, (int, torch.SymInt)):
                values.append(example_size)  # the examples' size
            elif x.is_floating_point():  # positive values, away from sqrt's domain edge
                r = torch.rand(x.shape, generator=gen, dtype=torch.float64) + 0.5
                values.append(r.to(x.dtype).to(x.device))
            else:
                values.append(x.clone())
        return values

    ours, theirs = copies(), copies()
    with torch.no_grad():
        try:
            returned = entry(list(ours))
            expected = kernel(*theirs)
        except Exception:  # noqa: BLE001 — any failure: keep the public callable
            return None
    if returned or expected:
        return None
    same = all(
        not torch.is_tensor(x) or torch.allclose(x, y, rtol=0, atol=0, equal_nan=True)
        for x, y in zip(ours, theirs, strict=True)
    )
    return entry if same else None


def _find_compiled_graph(function: Any, depth: int = 0) -> Any:
    """The object with inductor's ``current_callable`` among the closures of ``function``."""
    if depth > 8:
        return None
    for cell in getattr(function, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        for candidate in (value, getattr(value, "compiled_fn", None)):
            if hasattr(candidate, "current_callable") and hasattr(candidate, "mutated_input_idxs"):
                return candidate
        if callable(value) and not isinstance(value, type):
            found = _find_compiled_graph(value, depth + 1)
            if found is not None:
                return found
    return None
