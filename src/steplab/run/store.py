"""A results store on disk: every finished trial of a sweep, written as it completes.

``sl.sweep(..., store="results.sqlite")`` writes finished trials to an SQLite file in
batches (group commits: every ``batch_rows`` trials or ``batch_seconds`` seconds, whichever
comes first, and when the sweep ends or fails). Started again after a crash (or Ctrl+C, or
a lost machine), the same sweep reads what is done, runs only the rest, and returns the
table an uninterrupted sweep gives: a ``kill -9`` costs at most the last unflushed batch,
and no trial is ever stored twice.

Why SQLite and not Parquet: a sweep adds rows as trials finish and may be killed at any
moment. SQLite appends atomically (a transaction is all there or not at all, even after
``kill -9``), needs nothing outside Python's standard library, and is read directly by the
tools people use on tables: ``pandas.read_sql("SELECT * FROM trials", sqlite3.connect(p))``,
``polars.read_database``, DuckDB (``ATTACH 'p' (TYPE sqlite)``), R's ``DBI``, the ``sqlite3``
shell. Parquet files are immutable: appending per batch means one small file per batch plus
a compaction step, and it needs pyarrow.

Layout: table ``meta`` (key, value) holds ``format``, the sweep's ``fingerprint`` (problem,
grid, seeds, options: a store only ever belongs to one sweep), the list of flat ``columns``
and a ``checksum`` of those three; table ``trials`` has one row per finished trial, keyed by
``(entry, trial)`` (the grid entry and the trial's position in it), with one column per
result field (``optimizer``, ``lr``, ``seed``, ``final_loss``…; SQLite turns NaN into NULL
there), ``row_json`` (the row exactly, NaN included, as the sweep returns it), ``curves``
(the run's loss and metrics per recorded step as float32 arrays, see :func:`curves`),
``versions`` (Python, NumPy, steplab, where the trial ran), ``finished_at`` (UTC, when its
task finished), ``session`` (which start of the sweep wrote it) and ``checksum``. A task
prepares its trials' records itself (:class:`RowSigner`); the driver checks their keys and
inserts them.

Integrity: ``checksum`` is a BLAKE2b digest of the sweep's fingerprint, the trial's key and
everything else the row holds, so a damaged row — or a row copied over another trial's, or
from another sweep's store — is found when the store is read. Such rows are reported
(:class:`StoreWarning`, by key), removed and run again; a store whose structure is damaged
is refused with one :class:`StoreError` naming the file. Nothing damaged is ever returned.

One driver at a time: a driver holds an exclusive ``flock`` on the store file while it
writes (POSIX systems), so a second driver of the same store — or a different sweep racing
for the same new path — is refused with a clear error instead of mixing rows. Readers
(``read``, ``curves``, pandas…) are never blocked. A store on a read-only file system is
read, and resumed when it holds every trial (nothing to write).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import sqlite3
import struct
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steplab.run.records import Table, _jsonable, versions

try:  # advisory locks; on systems without fcntl (Windows) drivers are not serialized
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = "steplab-results-2"
BATCH_ROWS = 1000  # a group commit after this many finished trials …
BATCH_SECONDS = 0.1  # … or once the oldest unwritten trial is this old
_SQLITE_HEADER = b"SQLite format 3\x00"
_KEY_COLUMNS = ("entry", "trial")
_STORED = ("row_json", "curves", "versions", "finished_at", "session", "checksum")
_RESERVED = {*_KEY_COLUMNS, *_STORED}
_META_KEYS = ("format", "fingerprint", "columns", "checksum")
_LOCK_WAIT = 2.0  # seconds a new driver waits for readers' brief shared locks to go
_CURVES_MAGIC = b"SLC1"


class StoreError(ValueError):
    """A results store that cannot be used for this sweep: damaged, in use by another
    driver, read-only with work left, or another sweep's."""


class StoreWarning(UserWarning):
    """Damaged trial rows were found (named by key) and will be run again."""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


_ENCODER = json.JSONEncoder(default=_json_default)


def encode_row(row: dict) -> str:
    """The row as JSON that decodes to equal values (floats by repr, NaN and inf kept)."""
    return _ENCODER.encode(row)


def fingerprint_text(fingerprint: dict) -> str:
    """Canonical JSON of a sweep's identity (sorted keys, floats exact)."""
    return json.dumps(_jsonable(fingerprint), sort_keys=True, default=_json_default)


def _text(data: bytes) -> str:
    """How connections here read TEXT: damaged UTF-8 becomes lone surrogates (so it fails
    a checksum instead of raising a decoding error in the middle of a query)."""
    return data.decode("utf-8", "surrogateescape")


def _bytes(value: Any) -> bytes | None:
    """A TEXT/BLOB cell as bytes (the exact bytes stored); None for anything else."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


def _feed(h: Any, *parts: Any) -> Any:
    """Add typed, length-prefixed parts to the hash ``h``: text, blob, integer and NULL never
    collide, so a cell whose stored type flipped (TEXT to BLOB) fails too."""
    for part in parts:
        if part is None:
            h.update(b"N")
            continue
        if isinstance(part, int):
            tag, data = b"I", str(part).encode()
        elif isinstance(part, str):
            tag, data = b"T", part.encode("utf-8", "surrogateescape")
        elif isinstance(part, bytes):
            tag, data = b"B", part
        else:
            tag, data = b"F", repr(part).encode()
        h.update(tag + len(data).to_bytes(8, "little"))
        h.update(data)
    return h


def _digest(*parts: Any) -> str:
    """BLAKE2b (128 bits) of :func:`_feed`'s parts."""
    return _feed(hashlib.blake2b(digest_size=16), *parts).hexdigest()


def _row_hasher(sweep: str, versions_: Any, stamp: Any, session: Any) -> Any:
    """The hash of the parts a batch's rows share; each row's digest continues a copy of it
    with the row's own parts (``_feed(h.copy(), entry, trial, row_json, curves)``)."""
    return _feed(hashlib.blake2b(digest_size=16), sweep, versions_, stamp, session)


def _meta_checksum(fmt: Any, fingerprint: Any, columns: Any) -> str:
    return _digest(b"meta", *(_bytes(v) for v in (fmt, fingerprint, columns)))


def _differences(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [k for k in keys if stored.get(k) != wanted.get(k)]


def _unusable(path: Path, why: str) -> StoreError:
    return StoreError(
        f"{path} is not a usable steplab results store ({why}); give a new file name or delete it"
    )


def _connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open results store {path}: {exc}") from None
    db.text_factory = _text
    return db


def _header(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(len(_SQLITE_HEADER))


def _in_use(path: Path) -> bool:
    """Whether a driver holds the store's write lock right now."""
    if fcntl is None:  # pragma: no cover - Windows
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _in_use_error(path: Path) -> StoreError:
    return StoreError(
        f"{path} is being written by another running sweep driver; wait for it to finish "
        "(then start this sweep again to resume it), or give another file name"
    )


def _read_meta(db: sqlite3.Connection, path: Path) -> tuple[dict[str, bytes], list[str]] | None:
    """The verified meta values and the table's flat columns; None for a blank database
    (created, never written: what a ``kill -9`` right after creating it leaves)."""
    tables = {_bytes(n) for (n,) in db.execute("SELECT name FROM sqlite_master")}
    if not tables:
        return None
    if not {b"meta", b"trials"} <= tables:
        raise _unusable(path, "it has no steplab tables")
    meta: dict[str, bytes] = {}
    for key, value in db.execute("SELECT key, value FROM meta"):
        name, data = _bytes(key), _bytes(value)
        if name is None or data is None:
            raise _unusable(path, "its meta table is damaged")
        text = name.decode("utf-8", "replace")
        if text in meta:
            raise _unusable(path, f"meta key {text!r} twice")
        meta[text] = data
    fmt = meta.get("format")
    if fmt != FORMAT.encode():
        shown = fmt.decode("utf-8", "replace") if fmt is not None else None
        older = (
            " (an older steplab's format, without checksums)"
            if shown == "steplab-results-1"
            else ""
        )
        raise _unusable(path, f"format {shown!r}{older}, expected {FORMAT!r}")
    if set(meta) != set(_META_KEYS) or meta["checksum"].decode(
        "ascii", "replace"
    ) != _meta_checksum(meta["format"], meta["fingerprint"], meta["columns"]):
        raise _unusable(path, "its sweep description fails its checksum: the file is damaged")
    columns = json.loads(meta["columns"])
    table = [_bytes(row[1]) for row in db.execute("PRAGMA table_info(trials)")]
    expected = [c.encode() for c in (*_KEY_COLUMNS, *_STORED, *columns)]
    if table != expected:
        raise _unusable(path, "the trials table's columns differ from its recorded list: damaged")
    return meta, columns


def _check_fingerprint(path: Path, stored: bytes, fingerprint: dict) -> None:
    wanted_text = fingerprint_text(fingerprint)
    if stored == wanted_text.encode():
        return
    parts = ", ".join(_differences(json.loads(stored), json.loads(wanted_text)))
    raise StoreError(
        f"{path} holds results of another sweep (different {parts}); "
        "resume with the same problem, grid, seeds and options, or give a new file name"
    )


def check(path: str | Path, fingerprint: dict) -> int:
    """Check, reading only, that ``path`` is absent, blank or a store of this very sweep.

    Returns the number of trial rows in it (0 when the file does not exist or was created
    but never written). Raises :class:`StoreError` naming the problem for a file that is not
    a steplab store (damaged, truncated, another program's), a store of another sweep
    (which parts differ) or a store another driver is writing right now.
    """
    path = Path(path)
    if not path.exists():
        return 0
    if path.is_dir():
        raise StoreError(
            f"results store {path} is a directory; give a file name such as {path}/results.sqlite"
        )
    if _in_use(path):
        raise _in_use_error(path)
    if path.stat().st_size == 0:
        return 0
    if _header(path) != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a steplab results store (not an SQLite file); "
            "give a new file name or delete it"
        )
    db = _connect_readonly(path)
    try:
        found = _read_meta(db, path)
        if found is None:
            return 0
        _check_fingerprint(path, found[0]["fingerprint"], fingerprint)
        return int(db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
    except (sqlite3.Error, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, StoreError):
            raise
        raise _unusable(path, str(exc)) from None
    finally:
        db.close()


class ResultStore:
    """An open store for one sweep; use :meth:`open` to check it and create it if new.

    :meth:`add` buffers finished trials and commits them in batches (``batch_rows`` trials
    or ``batch_seconds`` seconds); :meth:`flush` and :meth:`close` commit the rest.
    """

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        lock: int | None,
        fingerprint: bytes,
        columns: list[str],
        *,
        writable: bool,
        batch_rows: int = BATCH_ROWS,
        batch_seconds: float = BATCH_SECONDS,
    ):
        self.path = path
        self.writable = writable
        self.batch_rows, self.batch_seconds = batch_rows, batch_seconds
        self._db = connection
        self._lock = lock
        self._fingerprint = fingerprint
        self._sweep = hashlib.sha256(fingerprint).hexdigest()
        self._columns = list(columns)
        self.session = uuid.uuid4().hex[:12]
        self._keys: set[tuple[int, int]] | None = None
        self._buffer: Records = {}  # flat fields → records, as RowSigner.records makes them
        self._buffered = 0  # trials in the buffer
        self._oldest = 0.0  # monotonic time the oldest buffered trial was added
        self.commits = 0  # transactions written (what group commits save)

    @classmethod
    def open(
        cls,
        path: str | Path,
        fingerprint: dict,
        *,
        batch_rows: int = BATCH_ROWS,
        batch_seconds: float = BATCH_SECONDS,
    ) -> ResultStore:
        """Check ``path``, take its write lock, and open it (creating it if absent or blank).

        Raises :class:`StoreError` for a damaged file, another sweep's store, a store another
        driver is writing, or a new store that cannot be created (read-only file system…).
        A store that exists but cannot be written is opened read-only (``writable`` False).
        """
        path = Path(path)
        if path.is_dir():
            raise StoreError(
                f"results store {path} is a directory; give a file name such as "
                f"{path}/results.sqlite"
            )
        text = fingerprint_text(fingerprint).encode()
        fd, writable = _open_file(path)
        db = None
        try:
            if writable:
                _lock_exclusive(fd, path)
            blank = os.fstat(fd).st_size == 0
            if not blank and _header(path) != _SQLITE_HEADER:
                raise StoreError(
                    f"{path} is not a steplab results store (not an SQLite file); "
                    "give a new file name or delete it"
                )
            if writable:
                db = sqlite3.connect(
                    path, isolation_level=None, timeout=30, check_same_thread=False
                )
                db.text_factory = _text
            else:
                db = _connect_readonly(path)
            try:
                if writable:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable against kill -9
                found = _read_meta(db, path)
                if found is None:
                    if not writable:
                        raise StoreError(f"{path} is an empty results store on a read-only path")
                    columns: list[str] = []
                    _create(db, text)
                else:
                    meta, columns = found
                    _check_fingerprint(path, meta["fingerprint"], fingerprint)
                    if writable:
                        verdict = _bytes(db.execute("PRAGMA quick_check").fetchone()[0])
                        if verdict != b"ok":
                            raise _unusable(path, f"integrity check: {verdict!r}")
            except (sqlite3.Error, ValueError, UnicodeDecodeError) as exc:
                if isinstance(exc, StoreError):
                    raise
                raise _unusable(path, str(exc)) from None
        except BaseException:
            if db is not None:
                db.close()
            os.close(fd)
            raise
        return cls(
            path,
            db,
            fd,
            text,
            columns,
            writable=writable,
            batch_rows=batch_rows,
            batch_seconds=batch_seconds,
        )

    def done(self) -> dict[tuple[int, int], dict]:
        """The finished trials, verified: ``(entry, trial)`` → the row the sweep returned.

        Rows that fail their checksum (or whose flat columns disagree with it) are reported
        by key in one :class:`StoreWarning` and deleted, so that the sweep runs them again;
        in a read-only store they raise :class:`StoreError`.
        """
        good, damaged = self._verified_rows()
        if damaged:
            keys = ", ".join(f"(entry {e}, trial {t})" for _, e, t in damaged[:20])
            more = f" and {len(damaged) - 20} more" if len(damaged) > 20 else ""
            if not self.writable:
                raise StoreError(
                    f"{self.path}: {len(damaged)} damaged trial rows ({keys}{more}) and the "
                    "store is read-only; copy it somewhere writable to run them again"
                )
            warnings.warn(
                f"{self.path}: {len(damaged)} damaged trial rows fail their checksum and "
                f"will be run again: {keys}{more}",
                StoreWarning,
                stacklevel=3,
            )
            self._write(
                lambda: self._db.executemany(
                    "DELETE FROM trials WHERE rowid = ?", [(rowid,) for rowid, *_ in damaged]
                )
            )
        self._keys = set(good)
        return {key: row for key, (row, _) in good.items()}

    def _verified_rows(self) -> tuple[dict, list]:
        good: dict[tuple[int, int], tuple[dict, bytes | None]] = {}
        damaged: list[tuple[int, Any, Any]] = []
        flat = list(self._columns)
        names = ", ".join(map(_quote, ("rowid", *_KEY_COLUMNS, *_STORED, *flat)))
        try:
            for record in self._db.execute(f"SELECT {names} FROM trials"):
                rowid, entry, trial = record[:3]
                row = self._verify(record)
                if row is None or (entry, trial) in good:
                    damaged.append((rowid, entry, trial))
                else:
                    good[(entry, trial)] = (row, _bytes(record[4]))
        except sqlite3.Error as exc:
            raise _unusable(self.path, str(exc)) from None
        return good, damaged

    def _verify(self, record: Sequence[Any]) -> dict | None:
        """The row of a stored record if it passes its checksum and its flat columns match
        it; None if anything is damaged."""
        _, entry, trial, row_json, curves_blob, versions_, stamp, session, checksum = record[:9]
        if type(entry) is not int or type(trial) is not int:
            return None
        shared = _row_hasher(self._sweep, versions_, stamp, session)
        expected = _feed(shared, entry, trial, row_json, curves_blob).hexdigest()
        if checksum != expected:
            return None
        try:
            row = json.loads(row_json)
        except (ValueError, TypeError):  # pragma: no cover - the checksum matched
            return None
        for name, stored in zip(self._columns, record[9:], strict=True):
            want = _cell(row[name]) if name in row else None
            if stored != want or type(stored) is not type(want) and not _same_number(stored, want):
                return None
        return row

    def signer(self) -> RowSigner:
        """What a task needs to turn its own trials into this store's records (JSON, curves
        blob, flat cells, checksum), so that the driver only inserts them: see
        :class:`RowSigner` and :meth:`add_records`."""
        return RowSigner(self._sweep, self.session)

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Buffer finished trials ``(entry, trial, row)`` or ``(entry, trial, row, curves)``
        (curves: name → 1-D array, see :func:`curves`) and commit a batch when it is due.

        A trial already in the store (or buffered) is an error: each trial is counted once.
        """
        self.add_records(self.signer().records(rows))

    def add_records(self, records: Records) -> None:
        """Buffer trials prepared by :meth:`RowSigner.records` (in a task, or here) and
        commit a batch when it is due. All of them or none: a trial already stored (or
        buffered) is refused before anything is buffered; each trial is counted once."""
        if not self.writable:
            raise StoreError(f"{self.path} is read-only; cannot write trials to it")
        if self._keys is None:
            self.done()
        assert self._keys is not None
        keys = [(r[0], r[1]) for group in records.values() for r in group]
        fresh = set(keys)
        if len(fresh) != len(keys) or not self._keys.isdisjoint(fresh):
            entry, trial = next(k for i, k in enumerate(keys) if k in self._keys or k in keys[:i])
            raise StoreError(
                f"{self.path}: trial (entry {entry}, trial {trial}) is already stored; "
                "a trial is counted once"
            )
        if not keys:
            return
        self._keys |= fresh
        if not self._buffered:
            self._oldest = time.monotonic()
        for fields, group in records.items():
            self._buffer.setdefault(fields, []).extend(group)
        self._buffered += len(keys)
        if (
            self._buffered >= self.batch_rows
            or time.monotonic() - self._oldest >= self.batch_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Commit every buffered trial in one transaction."""
        if not self._buffered:
            return
        batch, self._buffer, self._buffered = self._buffer, {}, 0
        new: list[str] = []
        for fields in batch:
            new += [k for k in fields if k not in self._columns and k not in new]

        def write() -> None:
            if new:
                for name in new:
                    self._db.execute(f"ALTER TABLE trials ADD COLUMN {_quote(name)}")
                columns = json.dumps([*self._columns, *new])
                checksum = _meta_checksum(FORMAT, self._fingerprint, columns)
                self._db.executemany(
                    "UPDATE meta SET value = ? WHERE key = ?",
                    [(columns, "columns"), (checksum, "checksum")],
                )
            for fields, group in batch.items():
                names = [*_KEY_COLUMNS, *_STORED, *fields]
                self._db.executemany(
                    f"INSERT INTO trials ({', '.join(map(_quote, names))}) "
                    f"VALUES ({', '.join('?' * len(names))})",
                    group,
                )

        try:
            self._write(write)
        except BaseException:
            for group in batch.values():  # not stored: a later run may add them again
                for record in group:
                    if self._keys is not None:
                        self._keys.discard((record[0], record[1]))
            raise
        self._columns.extend(new)

    def _write(self, work) -> None:
        """Run ``work`` in one write transaction; SQLite errors become a StoreError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                work()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to results store {self.path}: {exc}") from None
        self.commits += 1

    def close(self) -> None:
        """Commit what is buffered, fold the write-ahead log back into the file (a
        finished store is one file, readable on read-only media), release the lock."""
        try:
            if self.writable and self._db is not None:
                try:
                    self.flush()
                finally:
                    try:  # needs no other connection reading; otherwise it stays in WAL
                        self._db.execute("PRAGMA busy_timeout = 200")
                        self._db.execute("PRAGMA journal_mode=DELETE")
                    except sqlite3.Error:
                        pass
        finally:
            self._db.close()
            if self._lock is not None:  # after the connection: closing any descriptor of
                os.close(self._lock)  # the file drops this process's SQLite locks on it
                self._lock = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


Records = dict[tuple[str, ...], list[tuple[Any, ...]]]
"""Prepared trials, grouped by their flat fields: each record is ``(entry, trial, row_json,
curves, versions, finished_at, session, checksum, *cells)``, the row of table ``trials``."""

_VERSIONS: str | None = None  # this process's versions, as stored (computed once)


def _versions_text() -> str:
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = json.dumps(versions())
    return _VERSIONS


class RowSigner:
    """Turns finished trials into a store's records, checksum included, wherever they ran.

    A sweep gives one to each task (:meth:`ResultStore.signer`: two short strings), so the
    JSON, curves and checksum work of a trial is done by the worker that ran it, in
    parallel, and the driver only checks keys and inserts. ``finished_at`` and
    ``versions`` are then the worker's: when and with what the trial was computed. The
    driver trusts what it inserts (its tasks made it), and verifies every row it reads.
    """

    def __init__(self, sweep: str, session: str):
        self.sweep, self.session = sweep, session

    def records(self, rows: Iterable[Sequence[Any]]) -> Records:
        """``(entry, trial, row)`` or ``(entry, trial, row, curves)`` items as records."""
        versions_ = _versions_text()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        shared = _row_hasher(self.sweep, versions_, stamp, self.session)
        out: Records = {}
        shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        encode = _ENCODER.encode
        for item in rows:
            entry, trial, row = int(item[0]), int(item[1]), item[2]
            blob = encode_curves(item[3]) if len(item) > 3 and item[3] else None
            shape = tuple(row)
            fields = shapes.get(shape)
            if fields is None:
                fields = shapes[shape] = tuple(k for k in shape if k not in _RESERVED)
            text = encode(row)
            checksum = _feed(shared.copy(), entry, trial, text, blob).hexdigest()
            out.setdefault(fields, []).append(
                (entry, trial, text, blob, versions_, stamp, self.session, checksum)
                + tuple([_cell(row[k]) for k in fields])
            )
        return out


def _same_number(a: Any, b: Any) -> bool:
    """SQLite may give back 3 for a stored 3.0 (and True is stored as 1)."""
    numbers = (int, float)
    return isinstance(a, numbers) and isinstance(b, numbers) and a == b


def _open_file(path: Path) -> tuple[int, bool]:
    """A descriptor of the store file (created if absent) and whether it can be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if not path.exists():
            raise StoreError(f"cannot create results store {path}: {exc.strerror or exc}") from None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as again:
            raise StoreError(f"cannot open results store {path}: {again.strerror}") from None
        return fd, False
    # SQLite writes a journal next to the file: a read-only folder makes the store read-only.
    return fd, os.access(path.parent, os.W_OK)


def _lock_exclusive(fd: int, path: Path) -> None:
    """Take the driver's write lock, or refuse: another driver is writing this store."""
    if fcntl is None:  # pragma: no cover - Windows
        return
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return  # a file system without flock: go on unserialized
            if time.monotonic() > deadline:  # readers hold a shared lock for milliseconds
                raise _in_use_error(path) from None
            time.sleep(0.02)


def _create(db: sqlite3.Connection, fingerprint: bytes) -> None:
    db.execute("BEGIN IMMEDIATE")
    # No PRIMARY KEY index: uniqueness is the driver's (it holds the lock and every key),
    # and a table without an index has no second copy of the keys to disagree when damaged.
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL, value TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS trials (entry INTEGER NOT NULL, trial INTEGER NOT NULL, "
        "row_json TEXT NOT NULL, curves BLOB, versions TEXT, finished_at TEXT, session TEXT, "
        "checksum TEXT NOT NULL)"
    )
    db.execute("DELETE FROM meta")
    columns = "[]"
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("format", FORMAT),
            ("fingerprint", fingerprint.decode()),
            ("columns", columns),
            ("checksum", _meta_checksum(FORMAT, fingerprint, columns)),
        ],
    )
    db.execute("COMMIT")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(value: Any) -> Any:
    """A value SQLite stores as a column: numbers, text, NULL (NaN becomes NULL)."""
    kind = type(value)
    if kind is float:  # the common cases first: this runs once per field of every trial
        return None if value != value else value
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return json.dumps(_jsonable(value), default=_json_default)


_EVALUATIONS = ("train_", "val_", "test_")  # full-data metrics, recorded at evaluations


def run_curves(run: Any) -> dict[str, np.ndarray]:
    """What the store keeps of a :class:`~steplab.run.Run`'s history: ``step``, ``loss`` and
    ``time`` at every recorded step, and the full-data metrics at each evaluation
    (``eval_step``, ``train_loss``, ``test_accuracy``…; the history has NaN in between)."""
    history = run.history
    out = {name: history[name] for name in ("step", "loss", "time")}
    metrics = [n for n in history.keys() if n.startswith(_EVALUATIONS)]
    if metrics:
        evaluated = np.any([~np.isnan(history[n]) for n in metrics], axis=0)
        out["eval_step"] = history["step"][evaluated]
        out.update((n, history[n][evaluated]) for n in metrics)
    return out


def encode_curves(curves: dict[str, Any]) -> bytes:
    """Curves (name → 1-D array) as a compact blob: float arrays as float32, integer arrays
    (step numbers) as int32, after a small JSON header of names, kinds and lengths."""
    shape, chunks = [], []
    for name, values in curves.items():
        array = np.asarray(values)
        kind = "<i4" if array.dtype.kind in "iub" else "<f4"
        chunks.append(array.astype(kind, copy=False).tobytes())
        shape.append((name, kind, array.size))
    key = tuple(shape)  # a sweep's trials share a few shapes: their headers are made once
    head = _CURVE_HEADERS.get(key)
    if head is None:
        text = json.dumps([[name, kind[1:], n] for name, kind, n in shape]).encode()
        head = _CURVE_HEADERS[key] = _CURVES_MAGIC + struct.pack("<I", len(text)) + text
        if len(_CURVE_HEADERS) > 4096:
            _CURVE_HEADERS.clear()
    return head + b"".join(chunks)


_CURVE_HEADERS: dict[tuple, bytes] = {}


def decode_curves(blob: bytes | None) -> dict[str, np.ndarray]:
    """The curves :func:`encode_curves` wrote (an empty dict for none)."""
    if not blob:
        return {}
    if blob[:4] != _CURVES_MAGIC:
        raise ValueError("not a steplab curves blob")
    (size,) = struct.unpack_from("<I", blob, 4)
    offset = 8 + size
    out = {}
    for name, kind, n in json.loads(blob[8:offset]):
        out[name] = np.frombuffer(blob, dtype="<" + kind, count=n, offset=offset).copy()
        offset += 4 * n
    return out


def _open_for_reading(path: str | Path) -> tuple[Path, ResultStore]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results store at {path}")
    if path.stat().st_size == 0:
        raise StoreError(f"{path} is an empty results store (created, never written)")
    if _header(path) != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a steplab results store (not an SQLite file)")
    db = _connect_readonly(path)
    try:
        found = _read_meta(db, path)
        if found is None:
            raise StoreError(f"{path} is an empty results store (created, never written)")
    except (sqlite3.Error, ValueError, UnicodeDecodeError) as exc:
        db.close()
        if isinstance(exc, StoreError):
            raise
        raise _unusable(path, str(exc)) from None
    except BaseException:
        db.close()
        raise
    meta, columns = found
    return path, ResultStore(path, db, None, meta["fingerprint"], columns, writable=False)


def _verified(path: str | Path) -> list[tuple[tuple[int, int], dict, bytes | None]]:
    """Every trial of a store, verified, in sweep order; damaged rows raise StoreError."""
    path, store = _open_for_reading(path)
    try:
        good, damaged = store._verified_rows()
    finally:
        store.close()
    if damaged:
        keys = ", ".join(f"(entry {e}, trial {t})" for _, e, t in damaged[:20])
        raise StoreError(
            f"{path}: {len(damaged)} damaged trial rows fail their checksum ({keys}); "
            "start the sweep again with this store to run them again"
        )
    return [(key, *good[key]) for key in sorted(good)]


def read(path: str | Path) -> Table:
    """The finished trials in a store as a :class:`Table`, in sweep order (reads only;
    every row verified against its checksum)."""
    return Table(row for _, row, _ in _verified(path))


def curves(path: str | Path) -> list[dict[str, np.ndarray]]:
    """Each finished trial's curves, in the order of :func:`read`'s rows (reads only).

    A trial run by the loop engine has ``step``, ``loss`` and ``time`` (seconds since the
    start) at every recorded step, and — for problems with data — ``eval_step`` with the
    full-data metrics at each evaluation (``train_loss``, ``test_loss``, ``test_accuracy``…).
    Values are float32 (steps int32). Trials run by the compiled kernels have none ({}).
    """
    return [decode_curves(blob) for *_, blob in _verified(path)]
