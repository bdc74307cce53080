"""sl.sweep's results store: written as trials finish, resumable after a kill, and strict
about stores that belong to another sweep or are not stores at all."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import steplab as sl
from steplab.run import store as stores

GRID = {"sgd": {"lr": [1e-3, 1e-2, 1e-1]}, "adam": {"lr": [1e-3, 1e-2, 1e-1]}}
OPTIONS = {"steps": 60, "batch_size": 32}
SEEDS = [0, 1]


def same_rows(a, b) -> bool:
    """Rows equal in every field but wall time (NaN equal to NaN)."""

    def clean(row):
        return {
            k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k != "time"
        }

    return len(a) == len(b) and all(clean(x) == clean(y) for x, y in zip(a, b, strict=True))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count(path: Path) -> int:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]


def test_store_holds_every_trial_and_gives_the_same_table(tmp_path):
    path = tmp_path / "results.sqlite"
    plain = sl.sweep("two_d_beale", GRID, seeds=SEEDS, **OPTIONS)
    stored = sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, chunk_size=4, **OPTIONS)
    assert same_rows(stored, plain)
    assert count(path) == len(plain) == 12
    assert same_rows(stores.read(path), plain)
    # The flat columns are there for pandas/duckdb/sqlite3 users, one per result field.
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM trials ORDER BY entry, trial").fetchall()
    assert [r["final_loss"] for r in rows] == [r["final_loss"] for r in plain]
    assert [r["optimizer"] for r in rows] == ["sgd"] * 6 + ["adam"] * 6
    # What a task's trials share is stored once, in table batches.
    with sqlite3.connect(path) as db:
        (versions,) = db.execute(
            "SELECT versions FROM trials JOIN batches USING (batch) LIMIT 1"
        ).fetchone()
    assert json.loads(versions)["numpy"] == np.__version__
    # Started again, a finished sweep runs nothing and returns the same table.
    again = sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, **OPTIONS)
    assert same_rows(again, plain)
    assert count(path) == 12


def test_a_trial_is_counted_once(tmp_path):
    fingerprint = {"sweep": "x"}
    with stores.ResultStore.open(tmp_path / "s.sqlite", fingerprint) as db:
        row = {"final_loss": float("nan"), "best_loss": float("inf"), "lr": np.float64(0.1)}
        db.add([(0, 0, row)])
        with pytest.raises(stores.StoreError, match=r"trial \(entry 0, trial 0\) is already"):
            db.add([(0, 1, row), (0, 0, row)])  # the whole chunk is refused
        db.flush()
        done = db.done()
    assert list(done) == [(0, 0)]
    assert math.isnan(done[(0, 0)]["final_loss"]) and done[(0, 0)]["best_loss"] == math.inf


# A sweep in a child process, killed with SIGKILL once some trials are on disk.
CHILD = """
import steplab as sl, sys
sl.sweep("logistic_regression", {grid!r}, seeds={seeds!r}, store=sys.argv[1], chunk_size=1,
         **{options!r})
"""


def test_a_killed_sweep_resumes_without_losing_or_repeating_trials(tmp_path):
    path = tmp_path / "results.sqlite"
    options = {"steps": 150, "batch_size": 32}
    code = CHILD.format(grid=GRID, seeds=SEEDS, options=options)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            try:
                if count(path) >= 2:
                    break
            except sqlite3.Error:
                pass  # not created yet
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the sweep finished before it was killed"
    before = count(path)
    assert 2 <= before < 12
    with sqlite3.connect(path) as db:
        first = db.execute(
            "SELECT entry, trial, session, checksum FROM trials JOIN batches USING (batch)"
        ).fetchall()

    resumed = sl.sweep("logistic_regression", GRID, seeds=SEEDS, store=path, **options)
    whole = sl.sweep("logistic_regression", GRID, seeds=SEEDS, **options)
    assert same_rows(resumed, whole)
    with sqlite3.connect(path) as db:
        keys = db.execute("SELECT entry, trial FROM trials").fetchall()
        sessions = db.execute(
            "SELECT session, COUNT(*) FROM trials JOIN batches USING (batch) GROUP BY session"
        ).fetchall()
        kept = db.execute(
            "SELECT entry, trial, session, checksum FROM trials JOIN batches USING (batch) "
            f"WHERE session = '{first[0][2]}'"
        ).fetchall()
    assert len(keys) == len(set(keys)) == 12  # nothing lost, nothing twice
    assert sorted(kept) == sorted(first)  # the killed run's trials were not run again
    assert sorted(n for _, n in sessions) == sorted([before, 12 - before])


@pytest.mark.parametrize(
    "change",
    [
        {"grid": {"sgd": {"lr": [1e-3, 1e-2]}}},
        {"problem": "two_d_rosenbrock"},
        {"seeds": [0, 1, 2]},
        {"options": {"steps": 61, "batch_size": 32}},
    ],
    ids=["grid", "problem", "seeds", "options"],
)
def test_a_store_of_another_sweep_is_refused_and_left_alone(tmp_path, change):
    path = tmp_path / "results.sqlite"
    sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, **OPTIONS)
    before = digest(path)
    other = {"problem": "two_d_beale", "grid": GRID, "seeds": SEEDS, "options": OPTIONS, **change}
    with pytest.raises(stores.StoreError, match="another sweep") as error:
        sl.sweep(
            other["problem"], other["grid"], seeds=other["seeds"], store=path, **other["options"]
        )
    assert next(iter(change)).rstrip("s") in str(error.value)  # names what differs
    assert digest(path) == before


def corrupt_stores(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.sqlite"
    sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=good, **OPTIONS)
    data = good.read_bytes()
    paths = {
        "text": b"optimizer,lr\nsgd,0.1\n",
        "truncated": data[: len(data) // 2],
        "garbled": data[:100] + bytes(len(data) - 100),
    }
    out = {}
    for name, content in paths.items():
        out[name] = tmp_path / f"{name}.sqlite"
        out[name].write_bytes(content)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    out["foreign"] = foreign
    return out


def test_a_corrupt_store_gives_a_clear_error_and_is_left_alone(tmp_path):
    for name, path in corrupt_stores(tmp_path).items():
        before = digest(path)
        with pytest.raises(stores.StoreError, match="not a (usable )?steplab results store"):
            sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, **OPTIONS)
        assert digest(path) == before, name
    with pytest.raises(stores.StoreError, match="is a directory"):
        sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=tmp_path, **OPTIONS)


def test_finished_trials_are_committed_in_batches_by_count_and_by_time(tmp_path):
    path = tmp_path / "s.sqlite"
    row = {"final_loss": 0.5, "status": "max_steps"}
    with stores.ResultStore.open(path, {"sweep": "x"}, batch_rows=100, batch_seconds=60) as db:
        for t in range(250):
            db.add([(0, t, row)])
        assert count(path) == 200 and db.commits == 2  # two full batches, 50 waiting
    assert count(path) == 250  # closing commits the rest
    path = tmp_path / "t.sqlite"
    with stores.ResultStore.open(path, {"sweep": "x"}, batch_rows=100, batch_seconds=0.05) as db:
        db.add([(0, 0, row)])
        assert count(path) == 0
        time.sleep(0.06)
        db.add([(0, 1, row)])  # the oldest waited longer than batch_seconds: both written
        assert count(path) == 2


def test_an_error_in_a_sweep_keeps_the_finished_trials(tmp_path, monkeypatch):
    """Buffered trials are committed when the sweep fails, not lost with the batch."""
    sweeps = importlib.import_module("steplab.run.sweep")  # the module, not sl.run.sweep
    path = tmp_path / "results.sqlite"
    real, calls = sweeps._run_chunk, []

    def failing(problem, chunk, options):
        calls.append(chunk)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return real(problem, chunk, options)

    monkeypatch.setattr(sweeps, "_run_chunk", failing)
    with pytest.raises(RuntimeError, match="boom"):
        sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, chunk_size=2, **OPTIONS)
    assert count(path) == 6  # three chunks of two, all in one (unfinished) batch
    monkeypatch.undo()
    resumed = sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, chunk_size=2, **OPTIONS)
    assert same_rows(resumed, sl.sweep("two_d_beale", GRID, seeds=SEEDS, **OPTIONS))


def test_each_trial_keeps_its_curves(tmp_path):
    path = tmp_path / "results.sqlite"
    grid = {"adam": {"lr": [1e-2, 1e-1]}}
    options = {"steps": 30, "batch_size": 32, "eval_every": 10}
    table = sl.sweep("logistic_regression", grid, seeds=SEEDS, store=path, **options)
    kept = stores.curves(path)
    assert len(kept) == len(table) == 4
    runs = sl.minimize("logistic_regression", sl.Adam(lr=[1e-2, 1e-2]), seed=SEEDS, **options)
    for curves, run in zip(kept[:2], runs, strict=True):  # trial order: lr, then seed
        history = run.history
        assert curves["step"].dtype == np.int32 and curves["loss"].dtype == np.float32
        np.testing.assert_array_equal(curves["step"], history["step"])
        np.testing.assert_array_equal(curves["loss"], history["loss"].astype(np.float32))
        assert list(curves["eval_step"]) == [0, 10, 20, 30]
        np.testing.assert_array_equal(
            curves["test_accuracy"], history["test_accuracy"][::10].astype(np.float32)
        )
        assert curves["test_accuracy"][-1] == np.float32(run.metrics["test_accuracy"])
    with sqlite3.connect(path) as db:
        blobs = [blob for (blob,) in db.execute("SELECT curves FROM trials")]
    for blob in blobs:  # 4 bytes a value: 31 steps × (step, loss, time), 4 evaluations ×
        header = 8 + int.from_bytes(blob[4:8], "little")  # (eval_step + 6 metrics)
        assert len(blob) - header == 31 * 3 * 4 + 4 * 7 * 4


def test_a_second_driver_of_a_store_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "results.sqlite"
    sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, **OPTIONS)
    fingerprint_of_that_sweep = None
    with sqlite3.connect(path) as db:
        fingerprint_of_that_sweep = json.loads(
            db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0]
        )
    with stores.ResultStore.open(path, fingerprint_of_that_sweep):  # a driver holds it
        before = digest(path)
        with pytest.raises(stores.StoreError, match="being written by another running sweep"):
            sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=path, **OPTIONS)
        with pytest.raises(stores.StoreError, match="being written by another running sweep"):
            stores.ResultStore.open(path, fingerprint_of_that_sweep)
        assert same_rows(stores.read(path), sl.sweep("two_d_beale", GRID, seeds=SEEDS, **OPTIONS))
        assert digest(path) == before


RACER = """
import steplab as sl, sys, time
from pathlib import Path
from steplab.run.store import StoreError
ready = Path(sys.argv[1] + "." + sys.argv[2])
ready.touch()  # then wait for the other racer: both start their sweep at the same moment
while len(list(ready.parent.glob(Path(sys.argv[1]).name + ".*"))) < 2:
    time.sleep(0.001)
try:
    table = sl.sweep("rosenbrock", {{"sgd": {{"lr": {lrs!r}}}}}, seeds=[0, 1], store=sys.argv[1],
                     steps=200, engine="loop", chunk_size=1)
    print("finished", len(table))
except StoreError as exc:
    print("refused", exc)
"""


def test_two_different_sweeps_racing_for_a_new_path_never_mix(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    lrs = {"a": [1e-3, 1e-2, 1e-1], "b": [1e-4, 2e-4]}
    for attempt in range(3):
        path = tmp_path / f"race{attempt}.sqlite"
        racers = {
            name: subprocess.Popen(
                [sys.executable, "-c", RACER.format(lrs=values), str(path), name],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, values in lrs.items()
        }
        said = {name: racer.communicate(timeout=180) for name, racer in racers.items()}
        for _, err in said.values():
            assert "Traceback" not in err, err
        finished = [name for name, (out, _) in said.items() if out.startswith("finished")]
        assert len(finished) == 1, said
        (loser,) = set(lrs) - set(finished)
        message = said[loser][0]
        assert "not an SQLite file" not in message
        assert "being written by another running sweep" in message or "another sweep" in message
        stored = stores.read(path)
        assert sorted({row["lr"] for row in stored}) == lrs[finished[0]]
        assert len(stored) == 2 * len(lrs[finished[0]])


MANY = """
import steplab as sl, sys
sl.sweep("rosenbrock", {{"sgd": {{"lr": {lrs!r}}}, "adam": {{"lr": {lrs!r}}}}}, seeds=[0, 1],
         store=sys.argv[1], chunk_size=4, steps=300, engine="loop")
"""


def test_repeated_kills_during_group_commits_lose_and_repeat_nothing(tmp_path):
    """Three drivers killed at random moments of a sweep of 400 small trials (several
    chunks per batch); the fourth start finishes it: the uninterrupted table, each trial
    stored once."""
    import random

    path = tmp_path / "results.sqlite"
    lrs = np.logspace(-5, -1, 100).tolist()
    code = MANY.format(lrs=lrs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    counts, chance = [], random.Random(0)
    for _ in range(3):
        before = count(path) if path.exists() else 0
        child = subprocess.Popen([sys.executable, "-c", code, str(path)], env=env)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and child.poll() is None:
                try:
                    if count(path) > before:
                        break
                except sqlite3.Error:
                    pass
                time.sleep(0.01)
            time.sleep(chance.uniform(0, 0.3))  # somewhere inside a batch
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait()
        counts.append(count(path))
    assert counts[-1] < 400, "the sweep finished before the last kill"
    grid = {"sgd": {"lr": lrs}, "adam": {"lr": lrs}}
    options = {"seeds": [0, 1], "steps": 300, "engine": "loop"}
    resumed = sl.sweep("rosenbrock", grid, store=path, chunk_size=4, **options)
    assert same_rows(resumed, sl.sweep("rosenbrock", grid, **options))
    with sqlite3.connect(path) as db:
        keys = db.execute("SELECT entry, trial FROM trials").fetchall()
        sessions = db.execute(
            "SELECT COUNT(DISTINCT session) FROM trials JOIN batches USING (batch)"
        ).fetchone()[0]
    assert len(keys) == len(set(keys)) == 400
    assert sessions >= 2


def test_a_sweep_without_a_table_keeps_every_trial_in_its_store(tmp_path):
    """return_table=False: nothing returned, every row in the store, in sweep order."""
    path = tmp_path / "results.sqlite"
    plain = sl.sweep("two_d_beale", GRID, seeds=SEEDS, **OPTIONS)
    kwargs = {"store": path, "chunk_size": 4, "return_table": False, **OPTIONS}
    assert sl.sweep("two_d_beale", GRID, seeds=SEEDS, **kwargs) is None
    assert same_rows(stores.read(path), plain)
    assert sl.sweep("two_d_beale", GRID, seeds=SEEDS, **kwargs) is None  # resumed: all done
    assert count(path) == len(plain)


def test_trials_follow_the_grid_in_product_order(tmp_path):
    """Trials are computed from their index, not listed: the order is still every
    combination (the last hyperparameter fastest, as itertools.product) times every seed."""
    import itertools

    lrs, rho1s, seeds = [1e-3, 1e-2, 1e-1], [0.5, 0.8, 0.9, 0.99], [4, 7]
    grid = {"adam": {"lr": lrs, "rho1": rho1s}}
    path = tmp_path / "results.sqlite"
    table = sl.sweep("rosenbrock", grid, seeds=seeds, steps=3, chunk_size=5, store=path)
    expected = [
        (c, lr, rho1, s)
        for c, (lr, rho1) in enumerate(itertools.product(lrs, rho1s))
        for s in seeds
    ]
    for rows in (table, stores.read(path)):
        got = [(r["config"], r["lr"], r["rho1"], r["seed"]) for r in rows]
        assert got == expected
        assert all(type(r["config"]) is int and type(r["seed"]) is int for r in rows)


def test_a_task_of_several_chunks_runs_one_chunk_at_a_time(monkeypatch):
    """Ray tasks hold up to eight chunks (fewer, bigger tasks: less driver work per trial);
    a task runs them chunk_size at a time, with the rows of the local engine."""
    sweep_module = importlib.import_module("steplab.run.sweep")
    widths = []
    real = sweep_module.minimize

    def spy(problem, optimizer, seed, **options):
        widths.append(len(seed))
        return real(problem, optimizer, seed=seed, **options)

    monkeypatch.setattr(sweep_module, "minimize", spy)
    problem = sl.problems.get("two_d_beale")
    base = sl.optim.make("adam")
    values = [np.asarray([1e-3, 1e-2, 1e-1])]
    plan = sweep_module._Plan(values, SEEDS)
    part = sweep_module._Part(0, base, ["lr"], values, plan, False)
    chunk = sweep_module._Chunk(part, list(range(6)), width=4)
    rows, batches, stopped = sweep_module._run_chunk(problem, chunk, OPTIONS)
    assert widths == [4, 2] and batches == [] and not stopped
    monkeypatch.undo()
    local = sl.sweep("two_d_beale", {"adam": {"lr": values[0]}}, seeds=SEEDS, **OPTIONS)
    for row, c in zip(local, [0, 0, 1, 1, 2, 2], strict=True):
        assert row["config"] == c
    assert same_rows(rows, local)


def test_where_python_cannot_serialize_sqlite_the_columns_travel(tmp_path, monkeypatch):
    """Python 3.10 has no Connection.serialize: batches then ship their columns, and the
    store holds the same rows as with shards."""
    plain = sl.sweep("two_d_beale", GRID, seeds=SEEDS, **OPTIONS)
    with_shards = tmp_path / "shards.sqlite"
    sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=with_shards, chunk_size=4, **OPTIONS)
    monkeypatch.setattr(stores, "_SHARDS", False)
    without = tmp_path / "columns.sqlite"
    table = sl.sweep("two_d_beale", GRID, seeds=SEEDS, store=without, chunk_size=4, **OPTIONS)
    assert same_rows(table, plain)
    assert same_rows(stores.read(without), plain) and same_rows(stores.read(with_shards), plain)
    assert [c["loss"].size for c in stores.curves(without)] == [
        c["loss"].size for c in stores.curves(with_shards)
    ]
    signer = stores.RowSigner("sweep", "session")
    (batch,) = signer.records([(0, t, dict(plain[t])) for t in range(3)])
    assert batch.shard is None and len(batch.checksums) == 3
    assert same_rows(batch.rows(), plain[:3])
    monkeypatch.setattr(stores, "_SHARDS", True)
    (packed,) = signer.records([(0, t, dict(plain[t])) for t in range(3)])
    assert packed.shard is not None and packed.checksums == []
    assert same_rows(packed.rows(), plain[:3])


def test_values_a_column_cannot_hold_come_back_exactly(tmp_path):
    """SQLite stores NaN as NULL, True as 1 and a list as text: such values are kept in the
    row's exact JSON too, so that read gives back the row as it was, types included; the
    flat columns still show pandas users what they can."""
    row = {
        "optimizer": "sgd",
        "final_loss": float("nan"),
        "best_loss": float("inf"),
        "zero": -0.0,
        "nesterov": True,
        "betas": [0.9, 0.999],
        "big": 2**70,
        "batch": "a field named like a store column",
        "epochs": None,
        "seed": np.int64(3),
    }
    path = tmp_path / "s.sqlite"
    with stores.ResultStore.open(path, {"sweep": "exact"}) as db:
        db.add([(0, 0, dict(row))])
    (back,) = stores.read(path)
    assert list(back) == list(row)  # the fields, in order
    assert math.isnan(back["final_loss"]) and back["best_loss"] == math.inf
    assert math.copysign(1, back["zero"]) == -1
    assert back["nesterov"] is True and back["betas"] == [0.9, 0.999] and back["big"] == 2**70
    assert back["batch"] == row["batch"] and back["epochs"] is None
    assert back["seed"] == 3 and type(back["seed"]) is int
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        flat = db.execute("SELECT * FROM trials").fetchone()
    assert flat["final_loss"] is None and flat["nesterov"] == 1 and flat["batch"] == 1
    assert json.loads(flat["betas"]) == [0.9, 0.999]
    assert flat["exact"] is not None and "seed" not in json.loads(flat["exact"])
