"""docs/distributed.md's extrapolated table for 100 machines × 64 cores is what
``benchmarks/bench_cluster.py --write-docs`` makes from the driver CPU it measured (the
inputs are recorded beside the table): nobody types it, and it cannot drift from them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_cluster():
    spec = importlib.util.spec_from_file_location(
        "bench_cluster", ROOT / "benchmarks" / "bench_cluster.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_extrapolated_table_is_the_commands_output_for_its_recorded_inputs():
    bench = bench_cluster()
    docs = ROOT / "docs" / "distributed.md"
    table, expected = bench.docs_table(docs)
    assert table == expected
    text = docs.read_text()
    assert "bench_cluster.py --sweep-rounds 3 --write-docs docs/distributed.md" in text
    assert "Extrapolated" in text[text.index("100 machines × 64 cores sustain") :][:400]


def test_write_docs_replaces_only_the_table(tmp_path):
    bench = bench_cluster()
    page = tmp_path / "page.md"
    page.write_text(
        f"before\n{bench._DOCS_BEGIN}task_ms=1.000, trial_ms=0.0100) -->\n\nold\n"
        f"{bench._DOCS_END}\nafter\n"
    )
    bench.write_docs(page, 0.5, 0.0042)
    table, expected = bench.docs_table(page)
    assert table == expected == bench.extrapolation(0.5, 0.0042)
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith(f"{bench._DOCS_END}\nafter\n")
    assert "old" not in text
    # One trial per 1 s task on 6,400 CPUs: 6,400 tasks/s × 0.5 ms = 3.2 driver cores (+ the
    # trials' 6,400 × 0.0042 ms), so a third of the CPUs kept busy (hand-computed).
    assert "| 1 s | 6,400 | 1 | 3.23 | 31 % |" in table


@pytest.mark.parametrize("per_task", [1, 8, 64])
def test_the_extrapolation_counts_driver_cores_per_task_and_per_trial(per_task):
    bench = bench_cluster()
    rows = [line for line in bench.extrapolation(1.0, 0.0).splitlines() if "| 10 s |" in line]
    cells = [r.split("|")[1:-1] for r in rows]
    need = {int(c[2]): float(c[3]) for c in cells}
    assert need[per_task] == pytest.approx(640 / per_task * 1.0 / 1e3, abs=0.005)
