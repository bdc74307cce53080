"""Optimizer checkpoints: a state (named arrays and scalars) plus the optimizer's
configuration in one ``.npz`` file, written atomically and read defensively.

The format is NumPy's ``.npz``: a ZIP archive, stored uncompressed, with one ``.npy``
member per field and a ``__meta__`` member holding JSON (each field's kind and the
optimizer's ``config()``). It knows nothing of the :class:`~steplab.optim.State` class:
``save`` takes a mapping of names to values, ``load`` gives one back.

Writing: every value is checked first (a state that ``load`` would refuse fails at
``save``, before anything is written), then the file is written to a temporary name in
the same folder and renamed over the destination, so a save that fails half way leaves
the previous file intact.

Reading: anything wrong with the file (not a ZIP, truncated, a flipped bit — ZIP's CRC-32
catches those —, a member missing or extra, a field of the wrong kind, an array whose
header does not match its bytes) is one ``ValueError`` naming the file and the reason.
Nothing is allocated beyond the file's own size: members must be stored uncompressed and
every array's declared shape must match the bytes it has, so a "zip bomb" is refused
before any memory is taken. No pickle is ever loaded.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from steplab._io import atomic_write

META = "__meta__"
#: Field kinds: Python scalars, theta's shape (a tuple of ints) and NumPy arrays.
SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
KINDS = (*SCALARS, "tuple", "ndarray")
_ARRAY_KINDS = "biuf"  # bool, integer, float arrays; never objects (pickles) or strings


class CorruptFile(ValueError):
    """A checkpoint that cannot be read; the message names the file and the reason."""


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple) and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value
    ):
        return "tuple"
    if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
        return "ndarray"
    return None


def _check_name(name: Any, reserved: frozenset[str]) -> str | None:
    """Why ``name`` cannot be a field name, or None."""
    if not isinstance(name, str) or not name.isidentifier():
        return f"field name {name!r} is not an identifier"
    if name.startswith("_"):
        return f"field name {name!r} starts with '_' (reserved)"
    if name in reserved:
        return f"field name {name!r} would hide the state's method or attribute of that name"
    return None


def save(
    path: str | os.PathLike,
    fields: Mapping[str, Any],
    optimizer_config: Mapping[str, Any] | None = None,
    *,
    reserved: frozenset[str] = frozenset(),
) -> Path:
    """Write ``fields`` (and the optimizer's ``config()``) to ``path`` atomically.

    Raises ``ValueError`` before writing anything if a field could not be loaded back: a
    name that is not an identifier, starts with ``_`` or is in ``reserved`` (the state
    class's methods), or a value other than a bool/int/float/str, a tuple of ints or a
    NumPy array of bools or numbers.
    """
    path = Path(path)
    kinds = {}
    for name, value in fields.items():
        problem = _check_name(name, reserved)
        if problem is None and (kind := _kind(value)) is None:
            problem = (
                f"field {name!r} holds {type(value).__name__}"
                + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else "")
                + "; a checkpoint holds bools, ints, floats, strings, tuples of ints and "
                "NumPy arrays of bools or numbers"
            )
        if problem is not None:
            raise ValueError(f"cannot save the state to {path}: {problem}")
        kinds[name] = kind
    meta = {"fields": kinds}
    if optimizer_config is not None:
        meta["optimizer"] = dict(optimizer_config)
    try:
        meta_text = json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError) as exc:
        message = f"cannot save the state to {path}: the configuration is not JSON ({exc})"
        raise ValueError(message) from None
    arrays: dict[str, Any] = {
        name: np.asarray(value, dtype=np.int64) if kinds[name] == "tuple" else np.asarray(value)
        for name, value in fields.items()
    }
    arrays[META] = np.array(meta_text)
    with atomic_write(path) as stream:  # a file object: numpy won't append ".npz"
        np.savez(stream, **arrays)
    return path


def load(
    path: str | os.PathLike, *, reserved: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read a checkpoint written by :func:`save`: ``(fields, optimizer_config or None)``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (naming the file and
    the reason) for anything else that is not a valid checkpoint.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            return _read(handle, size, reserved)
    except FileNotFoundError:
        raise
    except CorruptFile as exc:
        raise ValueError(f"{path} is not a steplab optimizer state file ({exc})") from None
    except MemoryError:
        raise ValueError(f"{path} is not a steplab optimizer state file (too large)") from None
    except Exception as exc:  # zipfile, struct, OS errors: whatever a damaged file causes
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is not a steplab optimizer state file ({reason})") from None


def _read(handle, size: int, reserved: frozenset[str]):
    with zipfile.ZipFile(handle) as archive:
        members = archive.infolist()
        names = [m.filename for m in members]
        if len(set(names)) != len(names):
            raise CorruptFile("a member appears twice")
        for member in members:
            # Stored, not compressed: a member can hold no more bytes than the file has.
            if member.compress_type != zipfile.ZIP_STORED or member.file_size > size:
                raise CorruptFile(f"member {member.filename!r} is compressed or too large")
        if f"{META}.npy" not in names:
            raise CorruptFile("no __meta__ member")
        meta_array = _read_array(archive, f"{META}.npy")
        if meta_array.dtype.kind != "U" or meta_array.ndim != 0:
            raise CorruptFile("__meta__ is not a JSON string")
        meta = json.loads(str(meta_array))
        if not isinstance(meta, dict) or not isinstance(meta.get("fields"), dict):
            raise CorruptFile("__meta__ lists no fields")
        config = meta.get("optimizer")
        if config is not None and not (isinstance(config, dict) and "name" in config):
            raise CorruptFile("__meta__'s optimizer configuration has no name")
        kinds = meta["fields"]
        expected = {f"{name}.npy" for name in kinds} | {f"{META}.npy"}
        if expected != set(names):
            missing = sorted(expected - set(names))
            extra = sorted(set(names) - expected)
            raise CorruptFile(f"members do not match the fields (missing {missing}, extra {extra})")
        fields = {}
        for name, kind in kinds.items():
            problem = _check_name(name, reserved)
            if problem is not None:
                raise CorruptFile(problem)
            if kind not in KINDS:
                raise CorruptFile(f"field {name!r} has unknown kind {kind!r}")
            fields[name] = _field(name, kind, _read_array(archive, f"{name}.npy"))
    return fields, config


def _read_array(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    """One ``.npy`` member, checked: CRC (zipfile), header, size matches shape, no objects."""
    data = archive.read(member)  # checks the CRC-32: a flipped bit raises BadZipFile
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise CorruptFile(f"{member}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise CorruptFile(f"{member} holds Python objects (a pickle), which are never loaded")
    count = math.prod(shape)
    if count * dtype.itemsize != len(data) - stream.tell():
        raise CorruptFile(f"{member}: the header's shape {shape} does not match its data")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C").copy()


def _field(name: str, kind: str, value: np.ndarray) -> Any:
    if kind in SCALARS:
        if value.ndim != 0:
            raise CorruptFile(f"field {name!r} should be a {kind}, got shape {value.shape}")
        item = value.item()
        allowed: dict[str, type | tuple[type, ...]] = {
            "int": int,
            "float": (int, float),
            "str": str,
            "bool": bool,
        }
        expected = allowed[kind]
        if kind == "int" and isinstance(item, bool) or not isinstance(item, expected):
            raise CorruptFile(f"field {name!r} should be a {kind}, got {type(item).__name__}")
        return SCALARS[kind](item)
    if kind == "tuple":
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise CorruptFile(f"field {name!r} should be a tuple of ints")
        return tuple(int(n) for n in value.tolist())
    if value.dtype.kind not in _ARRAY_KINDS:
        raise CorruptFile(f"field {name!r} has dtype {value.dtype}")
    return value
