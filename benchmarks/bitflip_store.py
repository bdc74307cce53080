"""Flip single bits of a small finished results store and resume the sweep on each copy.

For every flipped bit the sweep is started again with the damaged store, as a user would,
and the outcome is sorted into:

* ``same``      — resumed, table and stored rows equal the original (the bit did not matter,
                  or the damaged trial was reported and run again);
* ``refused``   — one :class:`steplab.run.store.StoreError` naming the file;
* ``silent``    — resumed without an error but the returned table, or the rows the store
                  holds afterwards (``store.read``, the flat columns), differ from the
                  original's: silent corruption;
* ``raw``       — any other exception (``JSONDecodeError``, ``sqlite3.OperationalError``…).

Target: 0 silent, 0 raw. Wall time (``time``, and the ``batch`` a trial's time and session
are stored in) is not compared: a trial run again has a new one.

    python benchmarks/bitflip_store.py [--flips 2000] [--seed 0] [--all]
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import sqlite3
import tempfile
import time
import warnings
from pathlib import Path

import steplab as sl
from steplab.run import store as stores

PROBLEM = "rosenbrock"
GRID = {"sgd": {"lr": [1e-4, 1e-3, 1e-2]}, "adam": {"lr": [1e-3, 1e-2, 1e-1]}}
SEEDS = [0, 1]
OPTIONS = {"steps": 20, "engine": "loop"}
_VOLATILE = {"time", "batch", "checksum"}


def _clean(row: dict) -> dict:
    return {
        k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
        for k, v in dict(row).items()
        if k not in _VOLATILE
    }


def _rows(table) -> list[dict]:
    return [_clean(r) for r in table]


def _flat(path: Path) -> list[dict]:
    """The flat columns as pandas/sqlite users see them."""
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM trials ORDER BY entry, trial").fetchall()
    return [_clean({k: r[k] for k in r.keys() if k != "curves"}) for r in rows]


def finished_store(folder: Path) -> tuple[bytes, list[dict], list[dict]]:
    """A finished store's bytes, its sweep's rows and its flat columns."""
    path = folder / "original.sqlite"
    table = sl.sweep(PROBLEM, GRID, seeds=SEEDS, store=path, **OPTIONS)
    return path.read_bytes(), _rows(table), _flat(path)


def outcome(path: Path, rows: list[dict], flat: list[dict]) -> tuple[str, str]:
    """Resume the sweep on ``path``; classify what happened (and a short note)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = sl.sweep(PROBLEM, GRID, seeds=SEEDS, store=path, **OPTIONS)
            if _rows(table) != rows:
                return "silent", "returned table differs"
            if _rows(stores.read(path)) != rows:
                return "silent", "stored rows differ"
            if _flat(path) != flat:
                return "silent", "flat columns differ"
        return ("repaired" if caught else "same"), ""
    except stores.StoreError as exc:
        if str(path) not in str(exc):
            return "raw", f"StoreError without the path: {exc}"
        return "refused", ""
    except Exception as exc:  # noqa: BLE001 - counting exactly these
        return "raw", f"{type(exc).__name__}: {exc}"


def flip_sweep(flips: int | None, seed: int = 0, log=print) -> collections.Counter:
    """Flip ``flips`` random bits (all bits when None), one per copy; count the outcomes."""
    counts: collections.Counter = collections.Counter()
    notes: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        data, rows, flat = finished_store(folder)
        bits = range(len(data) * 8)
        chosen = list(bits) if flips is None else random.Random(seed).sample(bits, flips)
        start = time.perf_counter()
        for i, bit in enumerate(chosen):
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            path = folder / f"flip{i}.sqlite"
            path.write_bytes(bytes(damaged))
            kind, note = outcome(path, rows, flat)
            counts[kind] += 1
            if note:
                notes[note[:160]] += 1
                log(f"  bit {bit} (byte {bit // 8}): {kind}: {note[:300]}")
            for extra in folder.glob(f"flip{i}.sqlite*"):
                extra.unlink()
        seconds = time.perf_counter() - start
    log(
        f"store of {len(rows)} trials, {len(data)} bytes; {len(chosen)} bits flipped "
        f"in {seconds:.0f} s"
    )
    for kind in ("same", "repaired", "refused", "silent", "raw"):
        log(f"  {kind:9s} {counts[kind]}")
    for note, n in notes.most_common(10):
        log(f"    {n:5d} × {note}")
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="flip every bit of the store")
    args = parser.parse_args(argv)
    flip_sweep(None if args.all else args.flips, args.seed)


if __name__ == "__main__":
    main()
