"""The README's benchmark table is what `steplab benchmark --suite small` computed: it is
regenerated here from that run's saved trials (docs/data/benchmark-small-trials.tar.gz),
without training anything, and must appear in the README verbatim; so must the full text
table (steps, seconds, paired verdicts) in docs/benchmark.md and docs/data."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from steplab.benchmark import TORCH_OPTIMIZERS, TORCH_SUITES, algoperf, tuning

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_is_the_small_suites_output(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from steplab.benchmark import workloads

    with tarfile.open(ROOT / "docs" / "data" / "benchmark-small-trials.tar.gz") as archive:
        if hasattr(tarfile, "data_filter"):  # Python ≥ 3.10.12: refuse odd members
            archive.extractall(tmp_path, filter="data")
        else:
            archive.extractall(tmp_path)  # our own archive

    def no_training(*args, **kwargs):
        raise AssertionError("every trial should come from the saved run")

    monkeypatch.setattr(workloads, "train", no_training)
    suite = TORCH_SUITES["small"]
    settings = algoperf.Settings(size=suite.size, trials=suite.trials, studies=suite.studies)
    results = algoperf.run(
        tmp_path, optimizers=TORCH_OPTIMIZERS, settings=settings, log=lambda line: None
    )
    budget = tuning.budget_text("external", suite.trials, suite.studies, list(TORCH_OPTIMIZERS))
    table = algoperf.markdown_table(results, budget)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme
    text = algoperf.format_table(algoperf.table_rows(results, settings), budget)
    assert text in (ROOT / "docs" / "benchmark.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "data" / "benchmark-small-table.txt").read_text() == text + "\n"
    # docs/benchmark.md's reading of the run: AdamW's studies on the CNN drew no α in
    # [0.01, 0.05], and studies 1 and 2 drew two step sizes within 2 % of each other.
    cnn = next(r for r in results if r.name == "mnist1d_cnn")
    drawn = [sorted(t["hyperparameters"]["lr"] for t in study) for study in cnn.trials["adamw"]]
    assert not any(0.01 <= lr <= 0.05 for study in drawn for lr in study)
    close = [a / b for a, b in zip(drawn[1], drawn[2], strict=True) if abs(a / b - 1) < 0.02]
    assert len(close) == 2
