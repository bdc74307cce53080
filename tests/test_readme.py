"""The README keeps its promises: two quickstart commands, the test command is the one CI
runs, and its code examples run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quickstart_has_exactly_two_commands():
    quickstart = code_blocks("bash")[0].strip().splitlines()
    assert len(quickstart) == 2
    assert quickstart[0].endswith("steplab demo")
    assert "pytest" in quickstart[1]


def test_ci_runs_the_readme_test_command():
    test_command = code_blocks("bash")[0].strip().splitlines()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    for block in code_blocks("python"):
        exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})


def console_lines() -> list[str]:
    """Every ``$ command`` of the README's console blocks, comments stripped."""
    lines = []
    for block in code_blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                lines.append(line[2:].split("  #")[0].strip())
    return lines


# Not run here: a server that runs until stopped, and the docs build (tests/test_docs.py).
NOT_RUN = {"steplab serve", "mkdocs build --strict"}


def test_console_lines_are_copy_pasteable_commands():
    lines = console_lines()
    assert "steplab list optimizers" in lines
    for line in lines:
        assert not re.search(r"\[[a-z]+\|", line), f"a shell reads [a|b] as a pipe: {line}"


@pytest.mark.slow
def test_every_console_line_runs(tmp_path):
    """Each README console line, run by a shell as a reader pastes it (in a scratch folder
    with the ``my.csv`` the CSV example names), exits 0."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    label = (features @ [1.0, -2.0, 0.5] > 0).astype(int)
    lines = ["a,b,c,label"] + [
        ",".join(map(str, [*f, y])) for f, y in zip(features, label, strict=True)
    ]
    (tmp_path / "my.csv").write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for line in console_lines():
        if line in NOT_RUN:
            continue
        result = subprocess.run(
            line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{line}\n{result.stdout[-1500:]}{result.stderr[-1500:]}"


def reproduction_rows() -> dict[str, str]:
    """The README's reproduction table: name → its "steplab measured" cell."""
    section = README.split("## Reproductions", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    return rows


_NUMBER = re.compile(r"(?<![\w.=])−?\d+\.\d+(?: ± \d+\.\d+)?")


def measured_numbers(text: str) -> list[str]:
    """Every decimal number (with its ± part) of a cell, minus signs made ASCII; a
    setting written ``name = value`` is no measurement and is skipped."""
    text = re.sub(r"= \d+(\.\d+)?", "", text)
    return [n.replace("−", "-") for n in _NUMBER.findall(text)]


def test_readme_reproduction_numbers_are_the_commands_saved_output():
    """Each measured number in the README's table appears in a cell of the JSON that
    ``steplab reproduce NAME`` wrote (docs/data): none is typed from memory."""
    import json

    rows = reproduction_rows()
    from steplab import reproductions

    assert sorted(rows) == sorted(reproductions.REPRODUCTIONS)
    pending: set[str] = set()  # as tests/test_docs.py's PENDING
    for name, cell in rows.items():
        path = ROOT / "docs" / "data" / f"repro-{name}.json"
        assert path.exists() != (name in pending), f"{name}: update the pending set"
        if name in pending:
            continue
        saved = json.loads(path.read_text("utf-8"))
        printed = {  # every number of every cell the command printed, ± parts included
            n.replace("−", "-")
            for rows_ in saved["tables"].values()
            for row in rows_
            for v in row.values()
            for n in _NUMBER.findall(str(v).replace("-", "−"))
        }
        numbers = measured_numbers(cell)
        assert numbers, f"{name}: no measured number in the README's cell"
        missing = [n for n in numbers if n not in printed]
        assert not missing, f"{name}: {missing} not in docs/data/repro-{name}.json"
        assert saved["ok"] and not saved["quick"], name


def test_readme_number_check_can_fail():
    assert measured_numbers("Adam 87.13 ± 0.06, x → −0.998 at α = 0.1") == [
        "87.13 ± 0.06",
        "-0.998",
    ]
