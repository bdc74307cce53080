"""Ctrl+C while the ``steplab`` command starts: exit 130, one line, never a traceback.

Before: ``import steplab`` imported NumPy and every optimizer (about half a second) before
any of the command's code ran, so Ctrl+C there printed a ``KeyboardInterrupt`` traceback
(7 of 30 in ``benchmarks/attack_cli_sigint.py --tries 30``). Now the package root imports
nothing heavy and ``steplab.__main__`` guards the rest of the start-up.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest

import steplab as sl
from steplab.__main__ import _ExitQuietly
from steplab.cli import main


def python(code: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        **kwargs,
    )


def test_import_steplab_imports_nothing_heavy_and_every_name_still_resolves():
    result = python(
        """
        import sys
        import steplab as sl
        heavy = [m for m in ("numpy", "steplab.optim", "steplab.run") if m in sys.modules]
        assert not heavy, heavy
        assert set(sl.__all__) <= set(dir(sl)), set(sl.__all__) - set(dir(sl))
        from steplab import *  # every name of __all__ resolves
        from steplab import Adam, make
        assert sl.make("adam").__class__ is Adam is sl.optim.Adam
        assert sl.schedules is sl.optim.schedules and sl.matrix.Muon
        assert sl.minimize is sl.run.minimize and sl.Run is sl.run.Run
        try:
            sl.not_a_name
        except AttributeError as exc:
            assert "not_a_name" in str(exc)
        else:
            raise AssertionError("no AttributeError")
        """
    )
    assert result.returncode == 0, result.stderr


def test_fused_step_backend_is_wired_without_importing_steplab_first():
    """The root wires optim's fused backend by name: a program that imports steplab.optim
    directly still gets steplab.fast's backend, and steplab.fast is imported only then."""
    result = python(
        """
        import sys
        from steplab.optim.base import step_backend
        assert "steplab.fast" not in sys.modules
        backend = step_backend("fused")
        from steplab.fast.dispatch import STEP_BACKEND
        assert backend is STEP_BACKEND, backend
        assert step_backend("no such backend") is None
        """
    )
    assert result.returncode == 0, result.stderr


# A sitecustomize (imported by Python before anything else) that stops the first import of
# steplab.optim (the heaviest part of the start-up): it prints "ready" and waits there, so
# the parent interrupts exactly in the middle of an import (a condition, not a timing).
BLOCK_IN_IMPORT = """
import sys, time

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "steplab.optim":
            sys.meta_path.remove(self)
            print("ready", flush=True)
            time.sleep(600)
        return None

sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "steplab", "list", "optimizers"],  # python -m steplab
        ["-c", "import sys; from steplab.__main__ import run; sys.exit(run())"],  # the script
    ],
    ids=["python -m steplab", "console entry point"],
)
def test_ctrl_c_in_the_middle_of_start_up_imports_exits_130_in_one_line(tmp_path, command):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_IN_IMPORT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err == "steplab: interrupted\n"


def test_ctrl_c_at_random_moments_of_start_up_never_prints_a_traceback():
    """The attack itself (``benchmarks/attack_cli_sigint.py``), shorter: SIGINT at seeded
    random moments of the first second. Every run ends in one of three quiet ways, or
    (rarely) in a traceback from the interpreter's own start-up, before steplab's code."""
    rng = random.Random(27)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outcomes: list[int | str] = []
    for _ in range(8):
        process = subprocess.Popen(
            [sys.executable, "-m", "steplab", "list", "optimizers"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            process.wait(timeout=rng.uniform(0.0, 0.8))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        if "Traceback" in err and f"{os.sep}steplab{os.sep}" not in err:
            # Python's own start-up (site, runpy finding the package: a few hundredths of a
            # second before any steplab code runs) raises KeyboardInterrupt where it is;
            # no package can guard that. A traceback through steplab's code fails below.
            outcomes.append("interpreter")
            continue
        assert "Traceback" not in err, err
        quiet = {
            130: err == "steplab: interrupted\n",  # the guard, or main's own handler
            -signal.SIGINT: err == "",  # before Python installed any handler
            0: True,  # finished first
        }
        assert quiet.get(process.returncode, False), (process.returncode, err)
        outcomes.append(process.returncode)
    assert 130 in outcomes, outcomes  # the attack did hit the start-up


def test_main_hands_ctrl_c_back_to_python_before_the_command_runs(capsys):
    """So that a command's KeyboardInterrupt handler can write its partial outputs."""
    previous = signal.signal(signal.SIGINT, _ExitQuietly())
    try:
        assert main(["list", "optimizers"]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # a handler that is not the start-up guard is left alone
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert main(["list", "optimizers"]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "adam" in capsys.readouterr().out
    assert sl.__version__
