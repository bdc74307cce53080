"""The documentation site builds in strict mode, and its guides' examples run.

``mkdocs build --strict`` fails on a broken link, a missing page or an unresolved API
reference; the build also generates the optimizer pages and runs the demo for the gallery
(here its ``--quick`` version, to keep the suite fast).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ["index.md", "quickstart.md", "problems.md", "sweeps.md"]


def blocks(page: str, language: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", GUIDES)
def test_guide_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    namespace: dict = {"__name__": "docs_example"}
    for block in blocks(page, "python"):
        exec(compile(block, page, "exec"), namespace)


def test_quickstart_shows_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme_commands = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[0]
    assert readme_commands in blocks("quickstart.md", "bash")


def test_every_extra_is_documented_in_the_quickstart():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = re.findall(r"^([a-z]+) = \[", section, flags=re.M)
    table = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert extras and all(f"`{extra}`" in table for extra in extras), extras


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "STEPLAB_DOCS_QUICK": "1", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in ("optimizers/adam/index.html", "gallery/index.html", "cli/index.html"):
        assert (tmp_path / page).is_file(), page
    assert (tmp_path / "optimizers" / "adam.png").stat().st_size > 1000
    assert (tmp_path / "gallery" / "saddle_animation.gif").is_file()
    adam = (tmp_path / "optimizers" / "adam" / "index.html").read_text(encoding="utf-8")
    assert "ρ₁" in adam and "keras" in adam  # the update rule and the presets
