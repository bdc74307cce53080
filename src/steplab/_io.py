"""Writing files so that a crash, a full disk or Ctrl+C never leaves a half-written file
under its final name, and never destroys the previous good copy.

Everything is written to a temporary file in the destination's own folder (a rename is
atomic only within one file system) and renamed over the destination once complete. If
anything goes wrong before the rename, the temporary file is removed and the destination
is exactly what it was.

A process killed outright (``kill -9``, power loss) cannot remove its temporary file:
its name carries the writer's process id (``.NAME.PID.RANDOM.tmp``), and the next write
to the same destination removes those whose process no longer runs (on this machine: a
folder shared between machines may hold another machine's live temporary, which is left
alone only if its process id happens to run here too — so writers on several machines
should not share one destination).

Only a regular file (or nothing) is ever replaced: a symlink, FIFO, device or folder at
the destination is refused with ``ValueError`` before anything is written, so that
saving to ``/dev/null`` or to a link never swaps them for a regular file. The new file
gets the permissions a plain ``open()`` would give it (``0o666`` less the umask), set at
creation by the kernel: the process-wide umask is never changed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _refuse_non_regular(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = (
            "a symbolic link"
            if stat.S_ISLNK(mode)
            else "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise ValueError(
            f"{path} is {kind}; steplab only replaces regular files (write to the "
            "link's target, or to another name)"
        )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed writers left next to ``path``; returns them."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{16}}\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent or "."):
            match = pattern.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and not _running(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_options: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; rename it to ``path`` on success.

    ``mode`` is ``"wb"`` or ``"w"`` (``open_options`` such as ``encoding``/``newline`` go to
    :func:`open`). On any exception, KeyboardInterrupt included, ``path`` is left untouched.
    ``path`` must be a regular file or absent (``ValueError`` otherwise, nothing written).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write opens files for writing ('w' or 'wb'), got {mode!r}")
    path = Path(path)
    _refuse_non_regular(path)
    remove_stale_temporaries(path)
    while True:
        temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        try:
            # 0o666: the kernel takes the umask off, as for open(); O_EXCL: never an
            # existing file, O_NOFOLLOW: never through a link planted under this name.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            handle = os.open(temporary, flags | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:  # 64 random bits taken: draw again
            continue
    try:
        with os.fdopen(handle, mode, **open_options) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _refuse_non_regular(path)  # replaced while we wrote? still never a link or device
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """``Path(path).write_text(text)``, atomically."""
    with atomic_write(path, "w", encoding=encoding) as stream:
        stream.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``Path(path).write_bytes(data)``, atomically."""
    with atomic_write(path, "wb") as stream:
        stream.write(data)
    return Path(path)
