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
