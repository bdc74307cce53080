"""A task's shard whose batch id the driver reserved, and whose columns are the store's, is
copied by SQLite record by record (``INSERT … SELECT *``, its transfer optimization); the
store it makes is the one the column-by-column copy makes: the same rows, read back equal,
every checksum good."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import steplab as sl
from steplab.run import store as stores

if not stores._SHARDS:  # pragma: no cover - Python 3.10: the columns travel, no shards
    pytest.skip(
        "shards need sqlite3.Connection.serialize (Python >= 3.11)", allow_module_level=True
    )

ONE = {"sgd": {"lr": np.logspace(-4, -1, 6)}}  # one set of fields: every batch copied as is
TWO = {**ONE, "adam": {"lr": [1e-3, 1e-2]}}  # adam has fields sgd lacks


def sweep_traced(path, grid, monkeypatch):
    """Sweep with a store; return the table and the INSERT statements the driver ran."""
    statements: list[str] = []
    real_open = stores.ResultStore.open

    def open_traced(*args, **kwargs):
        store = real_open(*args, **kwargs)
        store._db.set_trace_callback(
            lambda q: statements.append(q) if q.startswith("INSERT INTO main.trials") else None
        )
        return store

    with monkeypatch.context() as patch:
        patch.setattr(stores.ResultStore, "open", open_traced)
        table = sl.sweep("rosenbrock", grid, seeds=[0, 1], steps=20, store=path, chunk_size=4)
    return table, statements


def stored(path) -> list[tuple]:
    """The stored trial rows in order, less what differs between two runs of a sweep: the
    batch ids, the run times, and the checksums and curves that cover them."""
    with sqlite3.connect(path) as db:
        skip = {"batch", "time", "checksum", "curves"}
        names = [r[1] for r in db.execute("PRAGMA table_info(trials)") if r[1] not in skip]
        query = f"SELECT {', '.join(map(repr, names))} FROM trials ORDER BY rowid"
        return db.execute(query).fetchall()


@pytest.mark.parametrize("grid", [ONE, TWO], ids=["one optimizer", "two optimizers"])
def test_a_reserved_batch_is_copied_as_it_is_and_stores_the_same(tmp_path, monkeypatch, grid):
    copied, statements = sweep_traced(tmp_path / "copied.sqlite", grid, monkeypatch)
    as_is = [q.endswith("SELECT * FROM shard.trials") for q in statements]
    # two sets of fields in one commit: the first set's shards lack the second's columns,
    # so they are copied column by column
    assert all(as_is) if grid is ONE else not all(as_is)
    monkeypatch.setattr(stores.ResultStore, "reserve_batch", lambda self: None)  # no ids
    by_column, statements = sweep_traced(tmp_path / "by_column.sqlite", grid, monkeypatch)
    assert statements and not any(q.endswith("SELECT * FROM shard.trials") for q in statements)
    # each store reads back (every checksum good) as its own sweep's table
    assert stores.read(tmp_path / "copied.sqlite") == copied
    assert stores.read(tmp_path / "by_column.sqlite") == by_column
    assert len(copied) == len(by_column) == len(stored(tmp_path / "copied.sqlite"))
    assert stored(tmp_path / "copied.sqlite") == stored(tmp_path / "by_column.sqlite")


def test_reserved_ids_are_never_given_twice(tmp_path):
    with stores.ResultStore.open(tmp_path / "s.sqlite", {"sweep": 1}) as store:
        reserved = [store.reserve_batch() for _ in range(3)]
        signer = store.signer()
        row = {"optimizer": "sgd", "lr": 0.1, "final_loss": 1.0}
        store.add_records(signer.records([(0, 0, row)], reserved[1]))
        store.add_records(signer.records([(0, 1, row)]))  # no reserved id: the driver's next
        store.flush()
        ids = [b for (b,) in store._db.execute("SELECT batch FROM batches ORDER BY batch")]
    assert reserved == [1, 2, 3] and ids == [2, 4]
    with stores.ResultStore.open(tmp_path / "s.sqlite", {"sweep": 1}) as store:
        assert store.reserve_batch() == 5  # after every stored id (a reserved one unused: a gap)
        assert len(store.done()) == 2


def test_a_new_store_has_16_kib_pages_and_an_old_one_keeps_its_own(tmp_path):
    """Larger pages make copying shards in cheaper (docs/distributed.md); SQLite fixes a
    file's page size when it is created, so a store made before keeps its 4 KiB."""
    with stores.ResultStore.open(tmp_path / "new.sqlite", {"sweep": 1}):
        pass
    old = tmp_path / "old.sqlite"
    with stores.ResultStore.open(old, {"sweep": 1}) as store:
        store._db.execute("PRAGMA journal_mode=DELETE")
        store._db.execute("PRAGMA page_size = 4096")
        store._db.execute("VACUUM")  # as a store written before this change
    with stores.ResultStore.open(old, {"sweep": 1}) as store:
        store.add([(0, 0, {"optimizer": "sgd", "final_loss": 1.0})])
    for path, size in ((tmp_path / "new.sqlite", 16384), (old, 4096)):
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA page_size").fetchone()[0] == size
    assert len(stores.read(old)) == 1
