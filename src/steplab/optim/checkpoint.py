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
Nothing is allocated beyond the file's own size: members must be stored uncompressed,
may not overlap (each member's header and bytes lie in their own stretch of the file,
before the ZIP's directory), their sizes together may not exceed the file's, and every
array's declared shape must match the bytes it has, so a "zip bomb" (a compressed one, or
thousands of members sharing the same bytes) is refused before any memory is taken. No
pickle is ever loaded.

An optimizer's state is checked once more, as a state (:func:`check_state`, which
``State.load`` calls): the fields its optimizer's state has and no others, ``t`` a
non-negative integer, every moment an array of the state's shape and dtype without NaN,
and the moments that the rule keeps non-negative (second moments: AdaGrad's and Adam's
``r``, …) non-negative, so that a crafted state never turns the next step into NaN.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import zipfile
from collections.abc import Iterable, Mapping
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
        if sum(member.file_size for member in members) > size:
            raise CorruptFile("its members together hold more bytes than the file")
        _refuse_overlaps(handle, members, archive.start_dir)
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


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def _refuse_overlaps(handle, members: list[zipfile.ZipInfo], directory: int) -> None:
    """Each member (local header, name, extra field, bytes) in its own stretch of the file,
    all before the central directory. ZIP readers follow the directory's offsets blindly:
    members whose bytes contain the next members ("overlapping") let a small file hold
    gigabytes, each stretch checked by its own valid CRC."""
    spans = []
    for member in members:
        handle.seek(member.header_offset)
        header = handle.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise CorruptFile(f"member {member.filename!r} lies outside the file")
        _, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        end = (
            member.header_offset
            + _LOCAL_HEADER.size
            + name_length
            + extra_length
            + member.compress_size
        )
        spans.append((member.header_offset, end, member.filename))
    spans.sort()
    for (_, end, name), (start, _, following) in zip(spans, spans[1:], strict=False):
        if end > start:
            raise CorruptFile(f"members {name!r} and {following!r} overlap")
    if spans and spans[-1][1] > directory:
        raise CorruptFile(f"member {spans[-1][2]!r} overlaps the ZIP directory")


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


# --------------------------------------------------------------------------------------
# An optimizer's state, checked as a state
# --------------------------------------------------------------------------------------

#: Fields every state has (``State``'s own bookkeeping), and those that it may have.
STATE_FIELDS = ("t", "made_by", "shape", "dtype")
OPTIONAL_STATE_FIELDS = ("impl", "skipped")
IMPLS = ("numpy", "fused")


def check_state(
    path: str | os.PathLike,
    fields: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    optimizer: Any = None,
) -> None:
    """Refuse (``ValueError`` naming ``path`` and the field) a loaded state that its
    optimizer could not step from: a field the optimizer's state does not have or lacks,
    ``t`` not an integer >= 0, an array not of the state's shape and dtype, NaN anywhere,
    a negative value in a moment the rule keeps non-negative. Changes nothing.

    ``optimizer`` is the one given to ``State.load``; without it, the one the file's
    configuration describes (its defaults where that cannot be rebuilt).
    """
    try:
        own_fields = getattr(optimizer, "own_state_fields", None)
        if own_fields is not None:  # a wrapper (EMA, …): it checks its fields, its base the rest
            fields, optimizer = own_fields(fields), optimizer.base
        _check_state(fields, config, optimizer)
    except (CorruptFile, ValueError) as exc:
        raise ValueError(f"{path} is not a valid optimizer state ({exc})") from None


def _check_state(fields: Mapping[str, Any], config: Mapping[str, Any] | None, optimizer) -> None:
    from steplab.optim import OPTIMIZERS  # optim's registry: this module is imported by it
    from steplab.optim.base import Optimizer

    missing = [name for name in STATE_FIELDS if name not in fields]
    if missing:
        raise CorruptFile(f"no field {', '.join(missing)}")
    made_by = fields["made_by"]
    given = optimizer is not None and optimizer.name == made_by
    if not given and made_by not in OPTIMIZERS:
        raise CorruptFile(f"made_by {made_by!r} is not one of {', '.join(OPTIMIZERS)}")
    if not given:
        optimizer = _rebuild(OPTIMIZERS[made_by], config)
    if not isinstance(optimizer, Optimizer):  # a whole-array rule (Prodigy, …): no protocol
        _check_arrays(fields)  # to read its moments from, so what every state must be
        return
    t = fields["t"]
    if not (isinstance(t, int) and not isinstance(t, bool) and t >= 0):
        raise CorruptFile(f"t must be an integer >= 0, got {t!r}")
    skipped = fields.get("skipped", 0)
    if not (isinstance(skipped, int) and not isinstance(skipped, bool) and skipped >= 0):
        raise CorruptFile(f"skipped must be an integer >= 0, got {skipped!r}")
    if fields.get("impl", "numpy") not in IMPLS:
        raise CorruptFile(f"impl must be one of {', '.join(IMPLS)}, got {fields['impl']!r}")
    shape = fields["shape"]
    if not (isinstance(shape, tuple) and all(n >= 0 for n in shape)):
        raise CorruptFile(f"shape must be a tuple of sizes >= 0, got {shape!r}")
    try:
        dtype = np.dtype(fields["dtype"])
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise CorruptFile(f"dtype must name a floating dtype, got {fields['dtype']!r}")
    moments = optimizer.moment_names()
    allowed = {*STATE_FIELDS, *OPTIONAL_STATE_FIELDS, *optimizer.SCALAR_STATE, *moments}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise CorruptFile(f"{made_by}'s state has no field {', '.join(unknown)}")
    try:
        expected = _kept_moments(optimizer, shape)
    except ValueError as exc:  # a hyperparameter array that does not fit this shape
        raise CorruptFile(str(exc)) from None
    held = {name for name in moments if name in fields}
    if held != expected or any(name not in fields for name in optimizer.SCALAR_STATE):
        raise CorruptFile(
            f"it holds the moments {', '.join(sorted(held)) or 'none'}, but {made_by} with "
            f"this configuration keeps {', '.join(sorted(expected)) or 'none'}"
        )
    nonnegative = nonnegative_state(optimizer)
    for name in sorted(held):
        value = fields[name]
        if not (isinstance(value, np.ndarray) and value.shape == shape and value.dtype == dtype):
            raise CorruptFile(
                f"moment {name} must be an array of shape {shape} and dtype {dtype}, got "
                f"{type(value).__name__} {np.shape(value)} {getattr(value, 'dtype', '')}"
            )
        _check_values(name, value, name in nonnegative)
    for name in optimizer.SCALAR_STATE:
        value = fields[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.ndarray)):
            raise CorruptFile(f"{name} must be a number, got {type(value).__name__}")
        array = np.asarray(value, dtype=np.float64)
        if array.ndim > len(shape) or not np.can_cast(np.asarray(value).dtype, np.float64):
            raise CorruptFile(f"{name} must be a float or float64 array, got {value!r}")
        _check_values(name, array, name in nonnegative)


def _check_arrays(fields: Mapping[str, Any]) -> None:
    """What any optimizer's state must be: t an integer >= 0, every array of theta's
    shape and dtype, without NaN."""
    t = fields["t"]
    if not (isinstance(t, int) and not isinstance(t, bool) and t >= 0):
        raise CorruptFile(f"t must be an integer >= 0, got {t!r}")
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            if value.shape != fields["shape"] or value.dtype != np.dtype(fields["dtype"]):
                raise CorruptFile(f"{name} must be an array of theta's shape and dtype")
            _check_values(name, value, nonnegative=False)


def _kept_moments(optimizer, shape: tuple[int, ...]) -> set[str]:
    """The moments ``optimizer`` keeps for theta of ``shape`` (ValueError: a hyperparameter
    array that does not fit the shape)."""
    return set(optimizer.state_shapes(shape, optimizer.declared_for(shape)))


def _check_values(name: str, array: np.ndarray, nonnegative: bool) -> None:
    if np.isnan(array).any():
        raise CorruptFile(f"{name} holds NaN")
    if nonnegative and (array < 0).any():
        raise CorruptFile(f"{name} holds negative values; the rule keeps it >= 0")


def _rebuild(cls, config: Mapping[str, Any] | None):
    """The optimizer a saved configuration describes; its defaults if that fails (a file
    from another version): the checks then use the class's moments and defaults."""
    from steplab.optim import schedules

    known = {f.name for f in dataclasses.fields(cls)}
    options = {k: v for k, v in (config or {}).items() if k in known}
    if isinstance(options.get("lr"), dict):
        try:
            options["lr"] = schedules.from_config(options["lr"])
        except ValueError:
            options.pop("lr")
    try:
        return cls(**options)
    except (TypeError, ValueError, ImportError):
        return cls()


_NONNEGATIVE: dict[tuple, frozenset[str]] = {}


def _scalar_twin(optimizer):
    """The optimizer with each hyperparameter array (one value per configuration) replaced
    by its element of largest magnitude: the same moments kept, and a probe of any shape."""
    changes = {
        f.name: np.asarray(value).flat[int(np.argmax(np.abs(value)))].item()
        for f in dataclasses.fields(optimizer)
        if isinstance(value := getattr(optimizer, f.name), np.ndarray)
    }
    return optimizer.replace(**changes) if changes else optimizer


def nonnegative_state(optimizer, moments: Iterable[str] | None = None) -> frozenset[str]:
    """The names, among ``moments`` (by default every moment ``optimizer`` keeps) and its
    scalar state, that its rule keeps >= 0: the entries a loaded state must hold >= 0.

    Found by running the rule, so no optimizer is named here: eight steps on 64
    coordinates from the initial state, with gradients of both signs and magnitudes from
    1e-3 to 1e3. Second moments (squares, maxima of magnitudes) and running products of
    positive factors stay >= 0; first moments change sign. A name the rule does not keep
    is not in the answer. ``optimizer`` is an element-wise :class:`~steplab.optim.Optimizer`
    (hyperparameter arrays allowed); ``State.load`` and ``steplab.torch``'s
    ``load_state_dict`` both ask this. Cached per optimizer class and set of names."""
    optimizer = _scalar_twin(optimizer)
    kept = _kept_moments(optimizer, (64,))
    names = (*optimizer.SCALAR_STATE, *sorted(kept if moments is None else set(moments)))
    key = (type(optimizer), names)
    if key not in _NONNEGATIVE:
        rng = np.random.default_rng(0)
        theta = rng.standard_normal(64)
        state = optimizer.init_state(theta)
        keeps = dict.fromkeys(names, True)
        with np.errstate(all="ignore"):
            for _ in range(8):
                grad = rng.standard_normal(64) * 10.0 ** rng.uniform(-3, 3, 64)
                theta, state = optimizer.update(theta, grad, state)
                for name in names:
                    value = getattr(state, name, None)  # None: not kept by this rule
                    keeps[name] &= value is not None and bool((np.asarray(value) >= 0).all())
        _NONNEGATIVE[key] = frozenset(name for name, stays in keeps.items() if stays)
    return _NONNEGATIVE[key]
