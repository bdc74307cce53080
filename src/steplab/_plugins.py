"""Late links from a lower layer to a higher one, made by the package root.

A lower layer never imports a higher one (README, "Layout"). Where it offers a
convenience that a higher layer implements (``Run.plot`` draws with ``steplab.viz``), it
asks here for a *provider* by slot name, and ``steplab/__init__.py`` (the root, above
every layer) says which module provides it: ``"module:attribute"``, imported on first use.
A higher layer may also provide its function itself when it is imported.
"""

import importlib

# No `from __future__ import annotations` and no typing at run time (hence the quoted
# annotations): `import steplab` imports this module, and stays cheap (steplab/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PROVIDERS: "dict[str, Any]" = {}


def provide(slot: str, provider: "Any") -> None:
    """Let ``provider`` (an object, or ``"module:attribute"`` imported on first use) fill
    ``slot``."""
    _PROVIDERS[slot] = provider


def provided(slot: str) -> "Any":
    """What fills ``slot`` (imported now if named by a string), or None."""
    provider = _PROVIDERS.get(slot)
    if isinstance(provider, str):
        module, _, attribute = provider.partition(":")
        provider = _PROVIDERS[slot] = getattr(importlib.import_module(module), attribute)
    return provider
