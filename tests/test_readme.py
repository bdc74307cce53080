"""The README keeps its promises: two quickstart commands, the test command is the one CI
runs, and its code examples run."""

from __future__ import annotations

import re
from pathlib import Path

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
