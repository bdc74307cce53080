"""Outputs never mix: a command's ``--out`` folder ends up holding its own files only.

Each command lists the files it wrote in ``--out``/``.steplab-files``. The next command
into the same folder deletes the files of that list it did not write again itself (the
first command's figures and CSVs would otherwise sit beside the second one's
``index.html``), then writes its own list. Files steplab never wrote are never touched.
"""

from __future__ import annotations

import time
from pathlib import Path

MANIFEST = ".steplab-files"
_started: dict[Path, float] = {}


def begin(out: Path) -> None:
    """Note that a command starts writing into ``out`` now."""
    _started[Path(out).resolve()] = time.time()


def settle(out: Path) -> list[str]:
    """Remove what the previous command wrote into ``out`` and this one did not rewrite;
    record this command's files. Returns the names removed (nothing without :func:`begin`)."""
    out = Path(out)
    started = _started.pop(out.resolve(), None)
    if started is None:
        return []
    manifest = out / MANIFEST
    previous = manifest.read_text(encoding="utf-8").splitlines() if manifest.exists() else []
    mine = sorted(
        p.name
        for p in out.iterdir()
        if p.is_file() and p.name != MANIFEST and p.stat().st_mtime >= started - 1e-3
    )
    removed = []
    for name in set(previous) - set(mine):
        path = out / name
        if "/" not in name and path.is_file():  # a plain file of ours, nothing outside out
            path.unlink()
            removed.append(name)
    manifest.write_text("\n".join(mine) + "\n", encoding="utf-8")
    return sorted(removed)
