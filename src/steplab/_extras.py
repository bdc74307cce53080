"""Optional dependencies: one clear line naming the ``pip install`` that brings them.

steplab's core (the optimizers, the problems that need nothing more, ``minimize``) needs
NumPy alone; figures, datasets, the web lab, numba, PyTorch and JAX come with extras.
An import of an optional package sits inside ``requires``, so that a missing one says
which extra to install instead of a bare ``ModuleNotFoundError``::

    with requires("viz"):
        import matplotlib
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: Each extra of pyproject.toml and the packages it brings (import names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "fast": ("numba",),
    "viz": ("matplotlib", "PIL", "tqdm"),
    "data": ("sklearn", "mnist1d", "scipy", "tqdm"),
    "web": ("fastapi", "uvicorn", "pydantic", "starlette"),
    "torch": ("torch",),
    "jax": ("jax", "jaxlib", "optax"),
    "ray": ("ray",),
}

#: Distribution names where they differ from the import name.
DISTRIBUTIONS = {"PIL": "pillow", "sklearn": "scikit-learn"}


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install "steplab[viz]"``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; steplab's extras are: {', '.join(EXTRAS)}")
    return f'pip install "steplab[{extra}]"'


def missing(extra: str, package: str, feature: str | None = None) -> MissingExtra:
    """The error for ``package`` missing: which feature needs it and how to install it."""
    what = feature or f"this part of steplab (steplab[{extra}])"
    return MissingExtra(f"{what} needs {package}, which is not installed: {install_hint(extra)}")


@contextmanager
def requires(extra: str, feature: str | None = None) -> Iterator[None]:
    """Turn a missing optional package imported inside the block into :class:`MissingExtra`.

    Only a package that ``extra`` brings is translated: any other missing module is a
    genuine bug and is raised as it is.
    """
    install_hint(extra)  # an unknown extra is a programming error: fail loudly and early
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if isinstance(exc, MissingExtra) or top not in EXTRAS[extra]:
            raise
        raise missing(extra, DISTRIBUTIONS.get(top, top), feature) from exc
