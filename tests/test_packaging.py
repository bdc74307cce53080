"""Packaging: the core needs NumPy alone, extras bring the rest, a missing extra says so.

Each check that needs a package to be *absent* runs in a subprocess that blocks the
package's import (``sys.modules[name] = None``), so it holds whatever this environment
has installed. ``.ci/run`` adds what needs real installs: a wheel in a clean venv, and the
lowest declared versions in a second venv.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from steplab._extras import EXTRAS, MissingExtra, install_hint, requires

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
OPTIONAL = ["matplotlib", "PIL", "sklearn", "scipy", "mnist1d", "tqdm", "fastapi", "uvicorn"]
OPTIONAL += ["pydantic", "numba", "torch", "jax", "optax", "ray"]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def block(*names: str) -> str:
    return "import sys\n" + "".join(f"sys.modules[{n!r}] = None\n" for n in names)


def extra(name: str) -> list[str]:
    section = PYPROJECT.split("[project.optional-dependencies]")[1].split("\n[")[0]
    match = re.search(rf"^{name} = \[(.*?)\]$", section, flags=re.M | re.S)
    assert match is not None, name
    return re.findall(r'"([^"]+)"', match.group(1))


def test_core_dependency_is_numpy_alone():
    match = re.search(r"^dependencies = \[(.*?)\]", PYPROJECT, flags=re.M | re.S)
    assert match is not None
    assert re.findall(r'"([^"]+)"', match.group(1)) == ["numpy>=2.0"]


def test_import_steplab_imports_no_optional_package():
    result = run_python(
        f"""
        import sys
        import numpy as np
        import steplab as sl
        loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules)
        assert not loaded, loaded
        assert "steplab.problems" not in sys.modules  # imported on first use
        opt = sl.Adam()
        theta = np.ones(3)
        opt.step(theta, theta, opt.init(theta))
        run = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.05), steps=50)
        loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules)
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr


def test_core_works_with_every_optional_package_blocked():
    result = run_python(
        block(*OPTIONAL)
        + """
import numpy as np
import steplab as sl
run = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.05), steps=200)
runs = sl.minimize(sl.problems.quadratic(dim=3), sl.Adam(lr=[0.01, 0.1]), steps=20)
table = sl.sweep("beale", {"adam": {"lr": [0.01, 0.1]}}, seeds=[0], steps=30)
assert run.status and len(runs) == 2 and len(table) == 2
"""
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("code", "extra_name"),
    [
        ("import steplab.viz", "viz"),
        ("import steplab.web", "web"),
        ("import steplab as sl; sl.problems.logistic_regression()", "data"),
        ("import steplab as sl; sl.problems.get('softmax_regression', dataset='mnist1d')", "data"),
    ],
)
def test_missing_extra_names_the_pip_install(code, extra_name):
    result = run_python(block(*OPTIONAL) + code)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("steplab._extras.MissingExtra:"), last
    assert f'pip install "steplab[{extra_name}]"' in last


def test_cli_reports_a_missing_extra_in_one_line(tmp_path):
    result = run_python(
        block("matplotlib")
        + f"from steplab.cli import main\nsys.exit(main(['demo', '--out', {str(tmp_path)!r}]))"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "steplab demo: error: steplab's figures needs matplotlib, which is not installed: "
        'pip install "steplab[viz]"'
    )


def test_cli_help_needs_no_extra():
    result = run_python(block(*OPTIONAL) + "from steplab.cli import main\nmain(['--help'])")
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout


def test_requires_translates_only_its_own_packages():
    with pytest.raises(MissingExtra, match=r'pip install "steplab\[viz\]"'):
        with requires("viz"):
            raise ModuleNotFoundError("No module named 'PIL'", name="PIL")
    with pytest.raises(ModuleNotFoundError) as info:  # a bug, not a missing extra
        with requires("viz"):
            raise ModuleNotFoundError("No module named 'steplab.nothing'", name="steplab.nothing")
    assert not isinstance(info.value, MissingExtra)
    with pytest.raises(ValueError, match="unknown extra"):
        install_hint("nope")


def test_every_extra_of_the_helper_is_declared():
    for name in EXTRAS:
        assert extra(name), name


def test_demo_extra_brings_what_the_demo_needs_and_the_readme_installs_it():
    assert extra("demo") == ["steplab[viz,data]"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[0].splitlines()[0]
    assert 'pip install ".[demo]"' in first


def test_min_versions_pin_exactly_the_declared_floors():
    pins = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    floors = dict(
        (m.group(1).lower(), m.group(2))
        for m in re.finditer(r'"([A-Za-z0-9_.-]+)(?:\[[a-z]+\])?>=([0-9][^",;]*)"', PYPROJECT)
    )
    # torch (2.13 is the one CI installs), JAX and Ray are tested in the main venv only.
    untested_here = {"torch", "jax", "optax", "ray", "ruff", "mypy", "playwright", "keras"}
    untested_here |= {"mkdocs", "mkdocs-material", "mkdocstrings", "setuptools"}
    # Test-only tools of the main venv (expression fuzzing, notebooks, to_pandas).
    untested_here |= {"mpmath", "pandas", "nbclient", "nbformat", "ipykernel", "scipy"}
    for name, floor in floors.items():
        if name not in untested_here:
            pinned = pins.get(name)
            assert pinned and Version(pinned) == Version(floor), f"{name} >={floor}: pin {pinned}"
    for name, version in pins.items():
        floor = floors.get(name)
        assert floor and Version(floor) == Version(version), f"{name}=={version} not declared"
