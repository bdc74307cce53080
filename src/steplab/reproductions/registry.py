"""The reproductions registry: name → :class:`Reproduction` (its source and its runner).

A runner is ``run(out, *, quick=False, seeds=None, progress=False) -> Result``: it writes
its figures into ``out`` and returns the measured tables and checked claims. ``quick``
is the reduced version the tests run; ``seeds`` overrides the number of seeds;
``progress`` shows tqdm bars (the CLI turns them on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steplab.reproductions._common import Result


@dataclass(frozen=True)
class Reproduction:
    """A registered reproduction: what it reproduces, from where, and how to run it."""

    name: str
    title: str
    source: str
    run: Callable[..., Result]


REPRODUCTIONS: dict[str, Reproduction] = {}


def reproduction(name: str, title: str, source: str):
    """Decorator: register ``run(out, *, quick, seeds, progress) -> Result`` under ``name``."""

    def decorate(run: Callable[..., Result]) -> Callable[..., Result]:
        if name in REPRODUCTIONS:
            raise ValueError(f"a reproduction named {name!r} is already registered")
        REPRODUCTIONS[name] = Reproduction(name, title, source, run)
        return run

    return decorate


def get(name: str) -> Reproduction:
    """The reproduction ``name``; a ValueError lists the known names otherwise."""
    if not isinstance(name, str) or name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; known: {', '.join(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


def run(
    name: str, out, *, quick: bool = False, seeds: int | None = None, progress: bool = False
) -> Result:
    """Run reproduction ``name`` writing its figures into ``out`` (created if needed)."""
    reproduction = get(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = reproduction.run(out, quick=quick, seeds=seeds, progress=progress)
    result.quick = quick
    return result
