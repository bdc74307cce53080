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
and a ``checksum`` of those three. Table ``trials`` has one row per finished trial, keyed by
``(entry, trial)`` (the grid entry and the trial's position in it), with one column per
result field (``optimizer``, ``lr``, ``seed``, ``final_loss``…), ``batch`` (which task
wrote it), ``curves`` (the run's loss and metrics per recorded step as float32 arrays, see
:func:`curves`), ``exact`` (NULL, or the JSON of the few values a column cannot give back
exactly: NaN, which SQLite stores as NULL, booleans, lists) and ``checksum``. What a task's
trials share is stored once, in table ``batches``: the row's field names in order
(``fields``), ``versions`` (Python, NumPy, steplab, where the trials ran), ``finished_at``
(UTC, when the task finished) and ``session`` (which start of the sweep wrote them). A task
prepares its trials' records itself (:class:`RowSigner`) and ships them as a small SQLite
database of their own (:class:`Batch`); the driver checks their keys and copies them in.

Integrity: ``checksum`` is a BLAKE2b digest of the sweep's fingerprint, the trial's batch
(fields, versions, time, session), its key and everything else the row holds, so a damaged
row — or a row copied over another trial's, or from another sweep's store — is found when
the store is read. Such rows are reported (:class:`StoreWarning`, by key), removed and run
again; a store whose structure is damaged is refused with one :class:`StoreError` naming
the file. Nothing damaged is ever returned.

One driver at a time: a driver holds an exclusive ``flock`` on the store file while it
writes (POSIX systems), so a second driver of the same store — or a different sweep racing
for the same new path — is refused with a clear error instead of mixing rows. Readers
(``read``, ``curves``, pandas…) are never blocked. A store on a read-only file system is
read, and resumed when it holds every trial (nothing to write).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import operator
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

FORMAT = "steplab-results-3"
# Older layouts this steplab names but does not read (the sweep that wrote one is finished
# with the steplab that started it, or started again in a new file).
_OLDER_FORMATS = {
    "steplab-results-1": "an older steplab's format, without checksums",
    "steplab-results-2": "an older steplab's layout, one JSON copy of each row",
}
BATCH_ROWS = 1000  # a group commit after this many finished trials …
BATCH_SECONDS = 0.1  # … or once the oldest unwritten trial is this old
_SQLITE_HEADER = b"SQLite format 3\x00"
_KEY_COLUMNS = ("entry", "trial")
_STORED = ("batch", "curves", "exact", "checksum")
_BATCH_COLUMNS = ("batch", "fields", "versions", "finished_at", "session")
# The fixed columns of table ``trials``, declared alike in the store and in a task's shard:
# SQLite then copies a shard's records as they are (its transfer optimization), not value
# by value, when the shard's columns are the store's.
_PAGE_SIZE = 16384
_TRIALS_DECLARED = (
    "entry INTEGER NOT NULL, trial INTEGER NOT NULL, batch INTEGER, curves BLOB, exact TEXT, "
    "checksum BLOB"
)
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
    if not {b"meta", b"trials", b"batches"} <= tables and not (
        b"meta" in tables and b"trials" in tables and _older(db)
    ):
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
        older = f" ({_OLDER_FORMATS[shown]})" if shown in _OLDER_FORMATS else ""
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
    batches = [_bytes(row[1]) for row in db.execute("PRAGMA table_info(batches)")]
    if batches != [c.encode() for c in _BATCH_COLUMNS]:
        raise _unusable(path, "its batches table is damaged")
    return meta, columns


def _older(db: sqlite3.Connection) -> bool:
    """Whether a store without a batches table says it is of an older format (so that the
    format, not a missing table, is what the error names)."""
    try:
        found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.Error:
        return False
    return found is not None and _bytes(found[0]) in {f.encode() for f in _OLDER_FORMATS}


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
        self._keys: dict[int, bytearray] | None = None  # entry → 1 at each stored trial
        self._next_batch = 1  # the id the next batch written gets
        self._buffer: list[Batch] = []  # as RowSigner.records makes them
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
                if writable:  # a new store's pages: 16 KiB, not 4, copy a shard in ~1/3 faster
                    db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")  # (an old store keeps its own)
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable against kill -9
                    db.execute("ATTACH ':memory:' AS shard")  # where batches arrive
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

        Rows that fail their checksum (or whose batch is damaged) are reported by key in one
        :class:`StoreWarning` and deleted, so that the sweep runs them again; in a read-only
        store they raise :class:`StoreError`.
        """
        found: dict[tuple[int, int], dict] = {}
        self._scan(lambda key, row, _: found.__setitem__(key, row))
        return found

    def done_trials(self) -> dict[int, bytearray]:
        """Which trials are finished, verified as :meth:`done` does, without keeping their
        rows: entry → a bytearray with 1 at each finished trial's index (one byte a trial,
        so that resuming a sweep of millions of trials holds no row in memory)."""
        self._scan(None)
        assert self._keys is not None
        return {entry: bytearray(bits) for entry, bits in self._keys.items()}

    def _scan(self, keep) -> None:
        """Verify every stored trial, hand the good ones to ``keep(key, row, curves)``,
        report and delete the damaged ones, and note which trials are stored."""
        self._keys = {}
        damaged = self._verified_rows(keep)
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
                stacklevel=4,
            )

            def remove() -> None:
                self._db.executemany(
                    "DELETE FROM trials WHERE rowid = ?", [(rowid,) for rowid, *_ in damaged]
                )
                self._db.execute(  # batches no trial refers to any more
                    "DELETE FROM batches WHERE batch NOT IN (SELECT batch FROM trials "
                    "WHERE batch IS NOT NULL)"
                )

            self._write(remove)
        if self.writable:
            self._next_batch = self._last_batch() + 1

    def _last_batch(self) -> int:
        try:
            ids = [b for (b,) in self._db.execute("SELECT batch FROM batches")]
        except sqlite3.Error as exc:
            raise _unusable(self.path, str(exc)) from None
        return max((b for b in ids if type(b) is int), default=0)

    def _batches(self) -> dict[int, tuple[Any, tuple[str, ...]]]:
        """Each intact batch: id → (the hash its trials' checksums continue, its fields).
        A batch whose id appears twice or whose fields do not parse is left out (its
        trials then fail their check)."""
        found: dict[Any, tuple[Any, tuple[str, ...]]] = {}
        twice = set()
        query = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches"
        for batch, fields_text, versions_, stamp, session in self._db.execute(query):
            if batch in found:
                twice.add(batch)
            try:
                fields = json.loads(fields_text)
            except (TypeError, ValueError):
                continue
            if type(batch) is not int or not isinstance(fields, list):
                continue
            if not all(type(f) is str for f in fields):
                continue
            shared = _batch_hasher(self._sweep, fields_text, versions_, stamp, session)
            found[batch] = (shared, tuple(fields))
        for batch in twice:
            del found[batch]
        return found

    def _verified_rows(self, keep) -> list:
        """Check every stored trial (see :meth:`_scan`); return the damaged ones as
        ``(rowid, entry, trial)``."""
        assert self._keys is not None
        damaged: list[tuple[int, Any, Any]] = []
        flat = list(self._columns)
        names = ", ".join(map(_quote, ("rowid", *_KEY_COLUMNS, *_STORED, *flat)))
        seen = self._keys
        try:
            batches = self._batches()
            shapes: dict[Any, _Shape] = {}
            for record in self._db.execute(f"SELECT {names} FROM trials"):
                rowid, entry, trial, batch = record[:4]
                shape = shapes.get(batch)
                if shape is None and batch in batches:
                    shape = shapes[batch] = _Shape(*batches[batch], flat)
                row = shape.verify(record) if shape is not None else None
                if row is None or _mark(seen, entry, trial):
                    damaged.append((rowid, entry, trial))
                elif keep is not None:
                    keep((entry, trial), row, _bytes(record[4]))
        except sqlite3.Error as exc:
            raise _unusable(self.path, str(exc)) from None
        return damaged

    def signer(self) -> RowSigner:
        """What a task needs to turn its own trials into this store's records (curves blob,
        flat cells, checksum, column by column), so that the driver only inserts them: see
        :class:`RowSigner` and :meth:`add_records`."""
        return RowSigner(self._sweep, self.session)

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Buffer finished trials ``(entry, trial, row)`` or ``(entry, trial, row, curves)``
        (curves: name → 1-D array, see :func:`curves`) and commit a batch when it is due.

        A trial already in the store (or buffered) is an error: each trial is counted once.
        """
        self.add_records(self.signer().records(rows))

    def add_records(self, batches: list[Batch]) -> None:
        """Buffer trials prepared by :meth:`RowSigner.records` (in a task, or here) and
        commit a group when it is due. All of them or none: a trial already stored (or
        buffered) is refused before anything is buffered; each trial is counted once."""
        if not self.writable:
            raise StoreError(f"{self.path} is read-only; cannot write trials to it")
        if self._keys is None:
            self.done_trials()
        assert self._keys is not None
        claimed: list[Batch] = []
        for batch in batches:
            taken = _claim(self._keys, batch.entry, batch.trials)
            if taken is not None:
                for earlier in claimed:  # all or none
                    _release(self._keys, earlier.entry, earlier.trials)
                raise StoreError(
                    f"{self.path}: trial (entry {batch.entry}, trial {taken}) is already "
                    "stored; a trial is counted once"
                )
            claimed.append(batch)
        count = sum(len(batch.trials) for batch in batches)
        if not count:
            return
        if not self._buffered:
            self._oldest = time.monotonic()
        self._buffer.extend(b for b in batches if b.trials)
        self._buffered += count
        if (
            self._buffered >= self.batch_rows
            or time.monotonic() - self._oldest >= self.batch_seconds
        ):
            self.flush()

    def reserve_batch(self) -> int:
        """A batch id for a task to write into its shard (:meth:`RowSigner.records`): no
        other batch gets it. One that never arrives (the task cancelled, the driver killed)
        leaves a gap in the ids, which nothing reads."""
        if self._keys is None:
            self.done_trials()  # (which sets the next id after the stored ones)
        self._next_batch += 1
        return self._next_batch - 1

    def flush(self) -> None:
        """Commit every buffered trial in one transaction."""
        if not self._buffered:
            return
        group, self._buffer, self._buffered = self._buffer, [], 0
        new: list[str] = []
        for batch in group:
            new += [k for k in batch.flat if k not in self._columns and k not in new]
        ids = []
        for batch in group:  # a reserved id, or the next one
            ids.append(batch.id if batch.id is not None else self._next_batch)
            self._next_batch += batch.id is None

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
            self._db.executemany(
                f"INSERT INTO batches VALUES ({', '.join('?' * len(_BATCH_COLUMNS))})",
                [(i, *batch.shared()) for i, batch in zip(ids, group, strict=True)],
            )
            layout = [*_KEY_COLUMNS, *_STORED, *self._columns, *new]
            for i, batch in zip(ids, group, strict=True):
                names = batch.names()
                into = f"INSERT INTO main.trials ({', '.join(map(_quote, names))})"
                if batch.shard is None:
                    self._db.executemany(
                        f"{into} VALUES ({', '.join('?' * len(names))})", batch.columns(i)
                    )
                    continue
                self._db.deserialize(batch.shard, name="shard")  # type: ignore[attr-defined]
                if batch.id is not None and names == layout:  # record by record, as stored
                    self._db.execute("INSERT INTO main.trials SELECT * FROM shard.trials")
                    continue
                taken = ", ".join("?" if n == "batch" else _quote(n) for n in names)
                self._db.execute(f"{into} SELECT {taken} FROM shard.trials", (i,))

        try:
            self._write(write)
        except BaseException:
            for batch in group:  # not stored: a later run may add them again
                _release(self._keys or {}, batch.entry, batch.trials)
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


_VERSIONS: str | None = None  # this process's versions, as stored (computed once)


def _versions_text() -> str:
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = json.dumps(versions())
    return _VERSIONS


def _mark(seen: dict[int, bytearray], entry: Any, trial: Any) -> bool:
    """Mark trial ``(entry, trial)`` stored; return whether it already was (or its key is
    not a pair of non-negative integers: damaged)."""
    if type(entry) is not int or type(trial) is not int or entry < 0 or trial < 0:
        return True
    bits = seen.get(entry)
    if bits is None:
        bits = seen[entry] = bytearray(max(1024, trial + 1))
    elif trial >= len(bits):
        bits.extend(bytes(max(trial + 1, 2 * len(bits)) - len(bits)))
    if bits[trial]:
        return True
    bits[trial] = 1
    return False


def _claim(seen: dict[int, bytearray], entry: int, trials: list[int]) -> int | None:
    """Mark a batch's trials stored, or none of them: return the first that already was
    (None if none was). A run of consecutive trials, the usual batch, is one slice."""
    if not trials:
        return None
    first, last = trials[0], trials[-1]
    if first >= 0 and trials == list(range(first, last + 1)):
        bits = seen.get(entry)
        if bits is None:
            bits = seen[entry] = bytearray(max(1024, last + 1))
        elif last >= len(bits):
            bits.extend(bytes(max(last + 1, 2 * len(bits)) - len(bits)))
        hit = bits.find(1, first, last + 1)
        if hit >= 0:
            return hit
        bits[first : last + 1] = b"\x01" * len(trials)
        return None
    for i, trial in enumerate(trials):
        if _mark(seen, entry, trial):
            _release(seen, entry, trials[:i])
            return trial
    return None


def _release(seen: dict[int, bytearray], entry: int, trials: list[int]) -> None:
    """Undo :func:`_claim`: the trials are not stored."""
    bits = seen.get(entry)
    if bits is None:
        return
    for trial in trials:
        bits[trial] = 0


# Python ≥ 3.11 (SQLite ≥ 3.36) can ship a batch as a small SQLite database of its own, which
# the driver copies into the store in C (INSERT … SELECT): no Python work per trial there.
_SHARDS = hasattr(sqlite3.Connection, "serialize")


class Batch:
    """A task's finished trials of one grid entry and one set of fields: what a task ships
    to the driver and the driver inserts (one ``batches`` row, then one ``trials`` row per
    trial). Filled column by column; :meth:`pack` (in the task) turns the columns into a
    *shard*, an in-memory SQLite database of those ``trials`` rows, which the driver copies
    into the store with one ``INSERT … SELECT`` (where Python lacks ``serialize``, the
    columns travel and ``executemany`` zips them)."""

    def __init__(
        self, entry: int, fields: tuple[str, ...], versions_: str, stamp: str, session: str
    ):
        self.entry, self.fields = entry, fields
        self.flat = tuple(k for k in fields if k not in _RESERVED)
        self.versions, self.stamp, self.session = versions_, stamp, session
        self.trials: list[int] = []
        self.curves: list[bytes | None] = []
        self.exact: list[str | None] = []
        self.checksums: list[bytes] = []
        self.cells: list[list[Any]] = [[] for _ in self.flat]
        self.shard: bytes | None = None
        self.id: int | None = None  # the batch id the driver reserved for it, if any

    def shared(self) -> tuple[str, str, str, str]:
        """The ``batches`` row, less its id: fields, versions, finished_at, session."""
        return json.dumps(self.fields), self.versions, self.stamp, self.session

    def names(self) -> list[str]:
        """The ``trials`` columns this batch fills."""
        return [*_KEY_COLUMNS, *_STORED, *self.flat]

    def columns(self, batch: int | None = None) -> Iterable[tuple]:
        """The ``trials`` rows, from the columns (``batch``: the id the driver gives)."""
        return zip(
            itertools.repeat(self.entry),
            self.trials,
            itertools.repeat(batch),
            self.curves,
            self.exact,
            self.checksums,
            *self.cells,
        )

    def pack(self) -> Batch:
        """Turn the columns into a shard (nothing to do where Python cannot serialize)."""
        if not _SHARDS or self.shard is not None:
            return self
        names = self.names()
        memory = sqlite3.connect(":memory:", isolation_level=None)
        try:
            declared = ", ".join([_TRIALS_DECLARED, *map(_quote, self.flat)])
            memory.execute(f"CREATE TABLE trials ({declared})")
            memory.execute("BEGIN")
            memory.executemany(
                f"INSERT INTO trials VALUES ({', '.join('?' * len(names))})",
                self.columns(self.id),
            )
            memory.execute("COMMIT")
            self.shard = memory.serialize()  # type: ignore[attr-defined]  # Python ≥ 3.11
        finally:
            memory.close()
        self.curves, self.exact, self.checksums, self.cells = [], [], [], []
        return self

    def rows(self) -> list[dict]:
        """The trials' rows as the sweep returns them, in the batch's order."""
        if self.shard is not None:
            memory = sqlite3.connect(":memory:")
            try:
                memory.deserialize(self.shard)  # type: ignore[attr-defined]
                flat = ", ".join(map(_quote, ("exact", *self.flat)))
                found = memory.execute(f"SELECT {flat} FROM trials ORDER BY rowid").fetchall()
            finally:
                memory.close()
            return [
                _assemble(self.fields, dict(zip(self.flat, r[1:], strict=True)), r[0])
                for r in found
            ]
        columns = self.cells
        if self.flat == self.fields and not any(self.exact):  # the common case, in C
            return [dict(zip(self.fields, v, strict=True)) for v in zip(*columns, strict=True)]
        out = []
        for i, exact in enumerate(self.exact):
            cells = {k: column[i] for k, column in zip(self.flat, columns, strict=True)}
            out.append(_assemble(self.fields, cells, exact))
        return out


def _assemble(fields: Sequence[str], cells: dict, exact: str | None) -> dict:
    """A row from its flat cells and its ``exact`` JSON (which wins), in ``fields`` order."""
    precise = json.loads(exact) if exact else {}
    return {k: precise[k] if k in precise else cells.get(k) for k in fields}


def _batch_hasher(sweep: str, fields: Any, versions_: Any, stamp: Any, session: Any) -> Any:
    """The hash of what a batch's trials share; each trial's checksum continues a copy of it
    with the trial's own parts (:func:`_trial_checksum`)."""
    return _feed(hashlib.blake2b(digest_size=16), sweep, fields, versions_, stamp, session)


def _trial_checksum(shared: Any, entry, trial, cells: tuple, curves, exact) -> bytes:
    """A trial's checksum: its key, its cells (``repr`` tells int, float, text, blob and
    NULL apart, and gives every float exactly), curves and exact values."""
    return _feed(shared.copy(), entry, trial, repr(cells), curves, exact).digest()


class _Shape:
    """How to read and check the trials of one stored batch."""

    def __init__(self, shared, fields: tuple[str, ...], columns: list[str]):
        self.shared, self.fields = shared, fields
        self.flat = tuple(k for k in fields if k not in _RESERVED)
        offset = 1 + len(_KEY_COLUMNS) + len(_STORED)  # rowid, keys, stored
        index = {name: offset + i for i, name in enumerate(columns)}
        self.ok = all(k in index for k in self.flat)
        where = [index[k] for k in self.flat if k in index]
        self.take = operator.itemgetter(*where) if len(where) > 1 else self._few
        self._where = where
        self.others = [i for name, i in index.items() if name not in self.flat]

    def _few(self, record: Sequence[Any]) -> tuple:  # itemgetter of one index is no tuple
        return tuple(record[i] for i in self._where)

    def verify(self, record: Sequence[Any]) -> dict | None:
        """The trial's row if the record passes its checksum and holds nothing in columns
        its fields do not have; None if anything is damaged."""
        if not self.ok:
            return None
        _, entry, trial, _, curves_blob, exact, checksum = record[:7]
        if type(entry) is not int or type(trial) is not int or type(checksum) is not bytes:
            return None
        cells = self.take(record)
        expected = _trial_checksum(self.shared, entry, trial, cells, curves_blob, exact)
        if checksum != expected or any(record[i] is not None for i in self.others):
            return None
        try:
            return _assemble(self.fields, dict(zip(self.flat, cells, strict=True)), exact)
        except (ValueError, TypeError):  # pragma: no cover - the checksum matched
            return None


class RowSigner:
    """Turns finished trials into a store's records, checksum included, wherever they ran.

    A sweep gives one to each task (:meth:`ResultStore.signer`: two short strings), so the
    cells, curves and checksum work of a trial is done by the worker that ran it, in
    parallel, and the driver only checks keys and inserts. ``finished_at`` and
    ``versions`` are then the worker's: when and with what the trial was computed. The
    driver trusts what it inserts (its tasks made it), and verifies every row it reads.
    """

    def __init__(self, sweep: str, session: str):
        self.sweep, self.session = sweep, session

    def records(self, rows: Iterable[Sequence[Any]], batch_id: int | None = None) -> list[Batch]:
        """``(entry, trial, row)`` or ``(entry, trial, row, curves)`` items as batches (one
        per grid entry and set of fields, in order of first appearance). ``batch_id`` (from
        :meth:`ResultStore.reserve_batch`) is the first batch's id, written into its shard,
        which the driver can then copy as it is; the others get theirs from the driver."""
        versions_ = _versions_text()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        batches: dict[tuple, tuple[Batch, Any]] = {}
        for item in rows:
            entry, trial, row = int(item[0]), int(item[1]), item[2]
            blob = encode_curves(item[3]) if len(item) > 3 and item[3] else None
            shape = (entry, *row)
            found = batches.get(shape)
            if found is None:
                batch = Batch(entry, tuple(row), versions_, stamp, self.session)
                if not batches:
                    batch.id = batch_id
                shared = _batch_hasher(
                    self.sweep, batch.shared()[0], versions_, stamp, self.session
                )
                found = batches[shape] = (batch, shared)
            batch, shared = found
            cells, precise = [], None
            for name in batch.flat:
                cell, exact = _cell(row[name])
                cells.append(cell)
                if not exact:
                    precise = precise or {}
                    precise[name] = row[name]
            for name in batch.fields:
                if name in _RESERVED:  # a field named like a store column: kept exactly
                    precise = precise or {}
                    precise[name] = row[name]
            exact_text = encode_row(precise) if precise else None
            for column, cell in zip(batch.cells, cells, strict=True):
                column.append(cell)
            batch.trials.append(trial)
            batch.curves.append(blob)
            batch.exact.append(exact_text)
            batch.checksums.append(
                _trial_checksum(shared, entry, trial, tuple(cells), blob, exact_text)
            )
        return [batch.pack() for batch, _ in batches.values()]


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
    db.execute(f"CREATE TABLE IF NOT EXISTS trials ({_TRIALS_DECLARED})")
    db.execute(
        "CREATE TABLE IF NOT EXISTS batches (batch INTEGER, fields TEXT, versions TEXT, "
        "finished_at TEXT, session TEXT)"
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


_INT64 = 2**63


def _cell(value: Any) -> tuple[Any, bool]:
    """A value as SQLite stores it in a column (numbers, text, NULL), and whether the column
    gives it back exactly; if not (NaN becomes NULL, True becomes 1, a list becomes text),
    the row's ``exact`` JSON keeps it."""
    kind = type(value)
    if kind is float:  # the common cases first: this runs once per field of every trial
        return (value, True) if value == value else (None, False)
    if kind is str or value is None:
        return value, True
    if kind is int:
        return (value, True) if -_INT64 <= value < _INT64 else (None, False)
    if kind is bool:
        return int(value), False
    if isinstance(value, np.generic):
        return _cell(value.item())
    return json.dumps(_jsonable(value), default=_json_default), False


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
    good: list[tuple[tuple[int, int], dict, bytes | None]] = []
    try:
        store._keys = {}
        damaged = store._verified_rows(lambda key, row, blob: good.append((key, row, blob)))
    finally:
        store.close()
    if damaged:
        keys = ", ".join(f"(entry {e}, trial {t})" for _, e, t in damaged[:20])
        raise StoreError(
            f"{path}: {len(damaged)} damaged trial rows fail their checksum ({keys}); "
            "start the sweep again with this store to run them again"
        )
    good.sort(key=operator.itemgetter(0))
    return good


def read(path: str | Path) -> Table:
    """The finished trials in a store as a :class:`Table`, in sweep order (reads only;
    every row verified against its checksum)."""
    return Table(row for _, row, _ in _verified(path))


def curves(path: str | Path) -> list[dict[str, np.ndarray]]:
    """Each finished trial's curves, in the order of :func:`read`'s rows (reads only).

    A trial run by the loop engine has ``step``, ``loss`` and ``time`` (seconds since the
    start) at every recorded step, and — for problems with data — ``eval_step`` with the
    full-data metrics at each evaluation (``train_loss``, ``test_loss``, ``test_accuracy``…).
    Values are float32 (steps int32). Trials run by the compiled kernels
    (``engine="fast"``) have ``step`` and ``loss`` at the same steps, and no ``time``: the
    kernels do not time single steps.
    """
    return [decode_curves(blob) for *_, blob in _verified(path)]
