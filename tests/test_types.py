"""The type annotations hold: mypy checks src/ with the configuration in pyproject.toml.

steplab ships ``py.typed``, so its annotations are a promise to users' type checkers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors_in_src():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],  # files: see [tool.mypy]
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_is_package_data():
    assert (ROOT / "src" / "steplab" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    package_data = re.search(r"\[tool\.setuptools\.package-data\]\s*steplab = \[(.*?)\]", pyproject)
    assert package_data is not None
    assert '"py.typed"' in package_data.group(
        1
    )  # .ci/run also checks that the built wheel holds it
