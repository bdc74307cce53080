"""Where the AlgoPerf protocol's trials run, and how they are kept.

A trial is named by its key (workload, size, optimizer, study, trial, hyperparameters, seed,
steps) and saved, once computed, as one JSON file ``OUT/trials/<workload>/<optimizer>/
study<m>-trial<j>.json`` written atomically (a temporary file, then a rename), so a killed
run leaves whole trials or none and the same command started again resumes.

The missing trials run either here, one after another (``engine="local"``), or as Ray tasks
(``engine="ray"``: a local Ray runtime, or the cluster at ``address``), one trial per task,
through :func:`steplab.run.ray_engine.run`. Either way only this process, the driver,
writes: a worker trains and returns the record, so workers need no shared disk. A trial is
a pure function of its key (one CPU thread, seeded initialization and batch order), so the
engine changes nothing but the wall seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

ENGINES = ("local", "ray")


def trial_path(out: Path, key: dict) -> Path:
    name = f"study{key['study']}-trial{key['trial']}.json"
    return Path(out) / "trials" / key["workload"] / key["optimizer"] / name


def saved(out: Path, key: dict) -> dict | None:
    """The record saved under ``key`` in ``out``, or None. A saved trial with another key
    belongs to another benchmark: an error."""
    path = trial_path(out, key)
    if not path.exists():
        return None
    content = json.loads(path.read_text())
    if content.get("key") != key:
        raise ValueError(
            f"{path} holds a trial of another benchmark (other settings); "
            "give another --out or the same settings"
        )
    return content["record"]


def save(out: Path, key: dict, record: dict) -> None:
    path = trial_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "record": record}, allow_nan=True))
    os.replace(tmp, path)  # atomic: a killed run leaves the whole file or none


def train(key: dict) -> dict:
    """Train the trial named by ``key`` (in whichever process runs it). ``workloads.train``
    is looked up at call time, so tests can count or interrupt the trainings."""
    from steplab.benchmark import workloads

    return workloads.train(
        workloads.get(key["workload"]),
        key["size"],
        key["optimizer"],
        key["hyperparameters"],
        key["seed"],
        steps=key["steps"],
    )


def _task(_problem: None, item: tuple[int, dict], _options: dict) -> dict:
    """One Ray task: the trial of ``item = (position, key)`` (the signature
    :func:`steplab.run.ray_engine.run` calls)."""
    return train(item[1])


def check_engine(engine: str, address: str | None) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("an address is for engine='ray' (a Ray cluster to join)")
    if address is not None and not isinstance(address, str):
        raise ValueError(f"address must be 'HOST:PORT' or None, got {address!r}")


def run_missing(
    out: Path,
    keys: Sequence[dict],
    *,
    engine: str = "local",
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[int, dict]:
    """Compute and save the trials of ``keys`` that ``out`` lacks; returns every key's
    record by position. Saved trials of other settings are refused before anything runs."""
    check_engine(engine, address)
    records: dict[int, dict] = {}
    for i, key in enumerate(keys):
        record = saved(out, key)
        if record is not None:
            records[i] = record
    missing = [i for i in range(len(keys)) if i not in records]
    if not missing:
        return records
    log(f"{len(missing)} of {len(keys)} trials to run ({engine})")
    if engine == "local":
        for i in missing:
            records[i] = train(keys[i])
            save(out, keys[i], records[i])
        return records
    from steplab.run import ray_engine

    ray = ray_engine.connect(address)
    tasks = ray_engine.run(_task, None, [(i, keys[i]) for i in missing], {}, ray)
    with contextlib.closing(tasks):  # cancels what is in flight on an error or Ctrl+C
        for (i, key), record in tasks:  # in the order they finish
            save(out, key, record)
            records[i] = record
    return records
