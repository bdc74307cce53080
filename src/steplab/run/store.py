"""A results store on disk: every finished trial of a sweep, written as it completes.

``sl.sweep(..., store="results.sqlite")`` writes each chunk's rows in one SQLite
transaction as soon as the chunk finishes. Started again after a crash (or Ctrl+C, or a
lost machine), the same sweep reads what is done, runs only the rest, and returns the table
an uninterrupted sweep gives.

Why SQLite and not Parquet: a sweep adds rows one chunk at a time and may be killed at any
moment. SQLite appends atomically (a transaction is all there or not at all, even after
``kill -9``), needs nothing outside Python's standard library, and is read directly by the
tools people use on tables: ``pandas.read_sql("SELECT * FROM trials", sqlite3.connect(p))``,
``polars.read_database``, DuckDB (``ATTACH 'p' (TYPE sqlite)``), R's ``DBI``, the ``sqlite3``
shell and any spreadsheet with an ODBC driver. Parquet files are immutable: appending per
chunk means one small file per chunk plus a compaction step, and it needs pyarrow.

Layout: table ``meta`` (key, value) holds ``format`` and the sweep's ``fingerprint``
(problem, grid, seeds, options: a store only ever belongs to one sweep); table ``trials``
has one row per finished trial, keyed by ``(entry, trial)`` (the grid entry and the trial's
position in it), with one column per result field (``optimizer``, ``lr``, ``seed``,
``final_loss``, ``test_accuracy``…; SQLite turns NaN into NULL there), ``row_json`` (the row
exactly, NaN included, as the sweep returns it), ``versions`` (Python, NumPy, steplab) and
``finished_at`` (UTC) and ``session`` (which start of the sweep wrote it).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from steplab.run.records import Table, _jsonable, versions

FORMAT = "steplab-results-1"
_SQLITE_HEADER = b"SQLite format 3\x00"
_KEY_COLUMNS = ("entry", "trial")
_RESERVED = {*_KEY_COLUMNS, "row_json", "versions", "finished_at", "session"}


class StoreError(ValueError):
    """A results store that cannot be used for this sweep: corrupt, or another sweep's."""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def encode_row(row: dict) -> str:
    """The row as JSON that decodes to equal values (floats by repr, NaN and inf kept)."""
    return json.dumps(row, default=_json_default)


def fingerprint_text(fingerprint: dict) -> str:
    """Canonical JSON of a sweep's identity (sorted keys, floats exact)."""
    return json.dumps(_jsonable(fingerprint), sort_keys=True, default=_json_default)


def _differences(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [k for k in keys if stored.get(k) != wanted.get(k)]


def check(path: str | Path, fingerprint: dict) -> int:
    """Check, reading only, that ``path`` is absent or a store of this very sweep.

    Returns the number of finished trials in it (0 when the file does not exist). Raises
    :class:`StoreError` naming the problem for a file that is not a steplab store (corrupt,
    truncated, another program's) or a store of another sweep (which parts differ).
    """
    path = Path(path)
    if not path.exists():
        return 0
    if path.is_dir():
        raise StoreError(
            f"results store {path} is a directory; give a file name such as {path}/results.sqlite"
        )
    with path.open("rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    if header != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a steplab results store (not an SQLite file); "
            "give a new file name or delete it"
        )
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:  # pragma: no cover - unreadable file
        raise StoreError(f"cannot open results store {path}: {exc}") from None
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        count = connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        connection.execute("SELECT entry, trial, row_json FROM trials LIMIT 1").fetchall()
        integrity = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(
            f"{path} is not a usable steplab results store ({exc}); "
            "give a new file name or delete it"
        ) from None
    finally:
        connection.close()
    if integrity != "ok" or meta.get("format") != FORMAT or "fingerprint" not in meta:
        raise StoreError(
            f"{path} is not a usable steplab results store "
            f"(format {meta.get('format')!r}, integrity check: {integrity}); "
            "give a new file name or delete it"
        )
    stored = json.loads(meta["fingerprint"])
    wanted = json.loads(fingerprint_text(fingerprint))
    if stored != wanted:
        parts = ", ".join(_differences(stored, wanted))
        raise StoreError(
            f"{path} holds results of another sweep (different {parts}); "
            "resume with the same problem, grid, seeds and options, or give a new file name"
        )
    return int(count)


class ResultStore:
    """An open store for one sweep; use :meth:`open` to check it and create it if new."""

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self._db = connection
        self._columns = {row[1] for row in connection.execute("PRAGMA table_info(trials)")}
        self.session = uuid.uuid4().hex[:12]
        self._versions = json.dumps(versions())

    @classmethod
    def open(cls, path: str | Path, fingerprint: dict) -> ResultStore:
        """Check ``path`` (see :func:`check`), then open it, creating it if absent."""
        path = Path(path)
        check(path, fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS trials (entry INTEGER NOT NULL, "
                "trial INTEGER NOT NULL, row_json TEXT NOT NULL, versions TEXT, "
                "finished_at TEXT, session TEXT, PRIMARY KEY (entry, trial))"
            )
            for key, value in (("format", FORMAT), ("fingerprint", fingerprint_text(fingerprint))):
                connection.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            connection.execute("COMMIT")
        return cls(path, connection)

    def done(self) -> dict[tuple[int, int], dict]:
        """The finished trials: ``(entry, trial)`` → the row the sweep returned for it."""
        cursor = self._db.execute("SELECT entry, trial, row_json FROM trials")
        return {(e, t): json.loads(text) for e, t, text in cursor}

    def add(self, rows: list[tuple[int, int, dict]]) -> None:
        """Write finished trials ``(entry, trial, row)`` in one transaction.

        A trial already in the store is an error (``sqlite3.IntegrityError``): each trial is
        counted once, and the sweep never runs a finished one again.
        """
        if not rows:
            return
        new = []
        for *_, row in rows:
            for name in row:
                if name not in self._columns and name not in _RESERVED and name not in new:
                    new.append(name)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for name in new:
                self._db.execute(f"ALTER TABLE trials ADD COLUMN {_quote(name)}")
            self._columns.update(new)
            # Rows with the same fields (one optimizer's, usually all) go in one statement.
            groups: dict[tuple[str, ...], list[list[Any]]] = {}
            for entry, trial, row in rows:
                fields = {k: _cell(v) for k, v in row.items() if k not in _RESERVED}
                values = [entry, trial, encode_row(row), self._versions, stamp, self.session]
                groups.setdefault(tuple(fields), []).append([*values, *fields.values()])
            for columns, records in groups.items():
                names = [*_KEY_COLUMNS, "row_json", "versions", "finished_at", "session", *columns]
                self._db.executemany(
                    f"INSERT INTO trials ({', '.join(map(_quote, names))}) "
                    f"VALUES ({', '.join('?' * len(names))})",
                    records,
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(value: Any) -> Any:
    """A value SQLite stores as a column: numbers, text, NULL (NaN becomes NULL)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return json.dumps(_jsonable(value), default=_json_default)


def read(path: str | Path) -> Table:
    """The finished trials in a store as a :class:`Table`, in sweep order (reads only)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results store at {path}")
    with path.open("rb") as handle:
        if handle.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            raise StoreError(f"{path} is not a steplab results store (not an SQLite file)")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        cursor = connection.execute("SELECT row_json FROM trials ORDER BY entry, trial")
        return Table(json.loads(text) for (text,) in cursor)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} is not a usable steplab results store ({exc})") from None
    finally:
        connection.close()
