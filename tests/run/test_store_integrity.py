"""The results store never hands back a damaged row: checksums of content and key, one
clear error for a damaged file, a blank file resumed, read-only stores read (and resumed
when finished), and one driver at a time."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

import steplab as sl
from steplab.run import store as stores

GRID = {"sgd": {"lr": [1e-4, 1e-3, 1e-2]}, "adam": {"lr": [1e-3, 1e-2, 1e-1]}}
SEEDS = [0, 1]
OPTIONS = {"steps": 20, "engine": "loop"}


def same_rows(a, b) -> bool:
    def clean(row):
        return {k: v for k, v in row.items() if k != "time"}

    return len(a) == len(b) and all(clean(x) == clean(y) for x, y in zip(a, b, strict=True))


def run(path, **changes):
    arguments = {"grid": GRID, "seeds": SEEDS, **OPTIONS, **changes}
    grid = arguments.pop("grid")
    return sl.sweep("rosenbrock", grid, store=path, **arguments)


@pytest.fixture
def finished(tmp_path):
    path = tmp_path / "results.sqlite"
    return path, run(path)


def sessions(path: Path) -> dict[tuple[int, int], str]:
    with sqlite3.connect(path) as db:
        query = "SELECT entry, trial, session FROM trials JOIN batches USING (batch)"
        return {(e, t): s for e, t, s in db.execute(query)}


def test_a_damaged_row_is_reported_by_key_and_run_again(finished):
    path, table = finished
    before = sessions(path)
    with sqlite3.connect(path) as db:  # one character of one row's column, a valid value:
        db.execute(  # only the checksum can tell
            "UPDATE trials SET status = 'max_stepz' WHERE entry = 1 AND trial = 3"
        )
    with pytest.warns(stores.StoreWarning, match=r"1 damaged trial rows.*\(entry 1, trial 3\)"):
        again = run(path)
    assert same_rows(again, table)
    after = sessions(path)
    assert after.keys() == before.keys()
    assert [k for k in after if after[k] != before[k]] == [(1, 3)]  # only that one ran again
    assert same_rows(stores.read(path), table)


def test_a_damaged_flat_column_is_caught_too(finished):
    """pandas users read the flat columns: they are checked against the checksummed row."""
    path, table = finished
    with sqlite3.connect(path) as db:
        db.execute("UPDATE trials SET final_loss = final_loss * 2 WHERE entry = 0 AND trial = 0")
    with pytest.raises(stores.StoreError, match=r"damaged trial rows.*\(entry 0, trial 0\)"):
        stores.read(path)
    with pytest.warns(stores.StoreWarning, match=r"\(entry 0, trial 0\)"):
        assert same_rows(run(path), table)
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        flat = db.execute("SELECT final_loss FROM trials ORDER BY entry, trial").fetchall()
    assert [r["final_loss"] for r in flat] == [r["final_loss"] for r in table]


def test_a_damaged_batch_reruns_its_trials_only(finished):
    """What a task's trials share (fields, versions, time, session) is stored once, in table
    batches, and is inside each of its trials' checksums: damage there reruns that task's
    trials and no other."""
    path, table = finished
    before = sessions(path)
    with sqlite3.connect(path) as db:
        (batch,) = db.execute("SELECT batch FROM trials WHERE entry = 1 AND trial = 3").fetchone()
        hit = {
            k
            for k in before
            if db.execute(
                "SELECT 1 FROM trials WHERE entry = ? AND trial = ? AND batch = ?", (*k, batch)
            ).fetchone()
        }
        db.execute(
            "UPDATE batches SET finished_at = replace(finished_at, '2', '3') WHERE batch = ?",
            (batch,),
        )
    assert 0 < len(hit) < len(before)
    with pytest.warns(stores.StoreWarning, match=rf"{len(hit)} damaged trial rows"):
        assert same_rows(run(path), table)
    after = sessions(path)
    assert {k for k in after if after[k] != before[k]} == hit
    assert same_rows(stores.read(path), table)


def test_a_row_swapped_for_another_rows_is_detected(finished):
    """The key is inside the checksum: a whole valid row moved onto another key fails."""
    path, table = finished
    with sqlite3.connect(path) as db:
        db.execute("UPDATE trials SET trial = 99 WHERE entry = 0 AND trial = 1")
        db.execute("UPDATE trials SET trial = 1 WHERE entry = 0 AND trial = 2")
        db.execute("UPDATE trials SET trial = 2 WHERE entry = 0 AND trial = 99")
    with pytest.warns(stores.StoreWarning, match=r"2 damaged.*trial 2\).*trial 1\)"):
        assert same_rows(run(path), table)
    assert same_rows(stores.read(path), table)


def test_a_row_from_another_sweeps_store_is_detected(tmp_path, finished):
    """The sweep's fingerprint is inside the checksum too: rows copied between stores of
    different sweeps (same keys) fail."""
    path, table = finished
    other = tmp_path / "other.sqlite"
    run(other, seeds=[5, 6])
    with sqlite3.connect(path) as db:  # the other store's whole row, in place of ours
        db.execute(f"ATTACH '{other}' AS other")
        db.execute("DELETE FROM trials WHERE entry = 0 AND trial = 0")
        db.execute("INSERT INTO trials SELECT * FROM other.trials WHERE entry = 0 AND trial = 0")
    with pytest.warns(stores.StoreWarning, match=r"\(entry 0, trial 0\)"):
        assert same_rows(run(path), table)


def test_a_damaged_sweep_description_is_refused_with_one_error(finished):
    path, _ = finished
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = replace(value, 'rosenbrock', 'rosenbrocc')")
    with pytest.raises(stores.StoreError, match=rf"{path}.*fails its checksum"):
        run(path)


def test_a_store_created_but_never_written_is_resumed(tmp_path):
    """kill -9 right after the file appears leaves 0 bytes (or an SQLite file with no
    tables): a new store, not an error."""
    table = run(tmp_path / "reference.sqlite")
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert same_rows(run(empty), table)
    blank = tmp_path / "blank.sqlite"
    sqlite3.connect(blank).execute("PRAGMA journal_mode=WAL").fetchall()
    assert blank.stat().st_size > 0
    assert same_rows(run(blank), table)
    assert same_rows(stores.read(blank), table)


def test_an_old_format_store_is_refused_naming_its_format(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE trials (entry INTEGER, trial INTEGER, row_json TEXT)")
        db.execute("INSERT INTO meta VALUES ('format', 'steplab-results-1')")
    with pytest.raises(stores.StoreError, match="steplab-results-1.*older steplab"):
        run(path)
    with sqlite3.connect(path) as db:  # the layout before table batches
        db.execute("UPDATE meta SET value = 'steplab-results-2' WHERE key = 'format'")
    with pytest.raises(stores.StoreError, match="steplab-results-2.*older steplab.*new file"):
        run(path)
    with pytest.raises(stores.StoreError, match="steplab-results-2.*older steplab"):
        stores.read(path)


# ---------------------------------------------------------------- read-only stores


@pytest.fixture
def read_only(tmp_path):
    """A function making ``tmp_path/ro`` read-only: a read-only bind mount as root (whom
    permissions do not stop), read-only permissions otherwise."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = []

    def make_read_only() -> Path:
        if os.geteuid() == 0:
            for command in (
                ["mount", "--bind", str(folder), str(folder)],
                ["mount", "-o", "remount,ro,bind", str(folder)],
            ):
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    pytest.skip(f"root without mount rights: {done.stderr.strip()}")
                mounted.append(folder)
        else:
            for entry in folder.iterdir():
                entry.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            folder.chmod(0o555)
        assert not os.access(folder, os.W_OK)
        return folder

    yield folder, make_read_only
    for _ in mounted[:1]:
        subprocess.run(["umount", str(folder)], check=True)
    folder.chmod(0o755)


def test_a_finished_store_on_read_only_storage_is_read_and_resumed(read_only):
    folder, make_read_only = read_only
    path = folder / "results.sqlite"
    table = run(path)
    assert [p.name for p in folder.iterdir()] == ["results.sqlite"]  # one file, no journal
    make_read_only()
    assert same_rows(stores.read(path), table)
    assert same_rows(run(path), table)  # nothing to run, nothing written
    assert [p.name for p in folder.iterdir()] == ["results.sqlite"]


def test_an_unfinished_read_only_store_and_a_new_one_name_the_path(read_only):
    folder, make_read_only = read_only
    path = folder / "half.sqlite"
    run(path)
    with sqlite3.connect(path) as db:  # as if killed after 4 of each entry's 6 trials
        db.execute("DELETE FROM trials WHERE trial >= 4")
    make_read_only()
    before = path.read_bytes()
    with pytest.raises(stores.StoreError, match=f"store {path} is read-only and 4 trials remain"):
        run(path)
    assert path.read_bytes() == before
    new = folder / "new.sqlite"
    with pytest.raises(stores.StoreError, match=f"cannot create results store {new}"):
        run(new)
    assert not new.exists()
