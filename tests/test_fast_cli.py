"""``steplab bench``: runs, prints its table, and names bad input."""

from __future__ import annotations

import pytest

from steplab.cli import main


def test_bench_prints_one_row_per_optimizer(capsys):
    pytest.importorskip("numba")
    assert main(["bench", "sgd", "adam", "--size", "5000", "--repeats", "2", "--no-torch"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["sgd"], ["adam"])]
    assert [r[0] for r in rows] == ["sgd", "adam"]
    for row in rows:
        assert float(row[2]) > 0 and float(row[3]) > 0  # ms per step, GB/s
        assert row[4].endswith("%") and row[-1] == "–"  # fraction of the limit; no torch


def test_bench_names_an_unknown_optimizer(capsys):
    assert main(["bench", "adamx"]) == 2
    err = capsys.readouterr().err
    assert "unknown optimizer 'adamx'" in err and "adam" in err
