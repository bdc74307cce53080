"""Single-bit flips of a finished store: never a silently different table, never a raw
exception (benchmarks/bitflip_store.py, on a fixed random sample of bits)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bitflip_store.py"


@pytest.mark.slow  # about 300 resumed sweeps: 10-40 s
def test_no_bit_flip_resumes_silently_or_raises_a_raw_exception():
    spec = importlib.util.spec_from_file_location("bitflip_store", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines: list[str] = []
    counts = module.flip_sweep(300, seed=7, log=lines.append)
    assert sum(counts.values()) == 300
    assert counts["silent"] == 0 and counts["raw"] == 0, "\n".join(lines)
    # The sample reaches the rows: some flips were caught by a checksum and run again.
    assert counts["repaired"] > 0 and counts["refused"] > 0
