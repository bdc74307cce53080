"""Smoke test of an installed wheel (run by .ci/run in a clean venv with the wheel alone).

Catches packaging mistakes the source tree hides: a module or package data missing from
the wheel, an undeclared dependency of the core, a broken entry point.
"""

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

import steplab as sl

package = Path(sl.__file__).parent
assert "site-packages" in str(package), f"steplab imported from {package}, not the wheel"
for data in ("py.typed", "web/static/index.html"):
    assert (package / data).is_file(), f"{data} is missing from the wheel"

requires = metadata.requires("steplab") or []
core = [r for r in requires if "extra ==" not in r]
assert [r.split(">")[0].strip() for r in core] == ["numpy"], core

theta = np.array([1.0, -2.0])
opt = sl.Adam()
state = opt.init(theta)
opt.step(theta, 2 * theta, state)
assert state.t == 1 and np.all(np.abs(theta) < [1.0, 2.0])
run = sl.minimize(sl.problems.get("rosenbrock"), sl.Adam(lr=0.05), steps=100)
assert run.status in sl.run.STATUSES, run.status

exe = shutil.which("steplab") or str(Path(sys.executable).with_name("steplab"))
result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
assert "demo" in result.stdout
result = subprocess.run([exe, "demo"], capture_output=True, text=True, check=False)
assert result.returncode == 2 and 'pip install "steplab[viz]"' in result.stderr, result.stderr
print(f"wheel OK: steplab {sl.__version__} from {package}")
