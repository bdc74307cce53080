"""Without numba (or when it cannot compile a case) steplab works, slower, and says so once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import steplab as sl
from steplab.fast import _numba, dispatch, kernels

SCRIPT = """
import json, warnings
import numpy as np
import steplab as sl
from steplab import fast
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    opt = sl.Adam(lr=0.1)
    theta = np.linspace(-1, 1, 10_000)
    state = opt.init(theta)
    for _ in range(3):
        opt.step(theta, 2 * theta, state)
    x, loss = fast.sweep("rosenbrock", sl.Adam(lr=np.array([0.01, 0.1])), [[-1.2, 1], [0, 0]], 20)
print(json.dumps({
    "available": fast.available(),
    "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning],
    "theta": theta[:3].tolist(), "t": state.t, "x": x.tolist(), "loss": loss.tolist(),
}))
"""


def _run(env_extra):
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_numba_everything_works_and_warns_once():
    without = _run({"STEPLAB_NO_NUMBA": "1"})
    assert without["available"] is False
    assert len(without["warnings"]) == 1  # three steps and a sweep: one warning
    assert "numba is not available" in without["warnings"][0]
    assert without["t"] == 3
    # The readable path from the hand-derived first step: Adam moves each coordinate by
    # about lr·sign(g) (ŝ/√r̂ = ±1 at t = 1), here three times for a steady gradient.
    theta0 = np.linspace(-1, 1, 10_000)[:3]
    assert np.all(np.abs(np.array(without["theta"]) - (theta0 + 0.3)) < 0.01)
    pytest.importorskip("numba")
    with_numba = _run({"STEPLAB_NO_NUMBA": "0"})
    assert with_numba["available"] is True and with_numba["warnings"] == []
    # the same rule in the same float64 arithmetic on every path: the same bits
    assert with_numba["theta"] == without["theta"]
    np.testing.assert_array_equal(with_numba["x"], without["x"])
    np.testing.assert_array_equal(with_numba["loss"], without["loss"])


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(_numba, "_warned", False)
    monkeypatch.setattr(dispatch, "_broken", set())


def test_a_kernel_numba_cannot_compile_falls_back_once(monkeypatch, fresh_warning):
    numba_errors = pytest.importorskip("numba.core.errors")

    def broken_kernel(*args):
        raise numba_errors.TypingError("pretend numba cannot type this")

    monkeypatch.setattr(kernels, "step_kernel", lambda *args: broken_kernel)
    opt = sl.Momentum(lr=0.1)
    theta = np.ones(10_000)
    state = opt.init(theta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            opt.step(theta, np.ones_like(theta), state)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "could not compile the momentum rule" in messages[0]
    assert state.t == 2 and state.impl == "numpy"  # counted once per step, not twice
    np.testing.assert_allclose(theta, 1 - 0.1 * (1 + 1.9))  # b = 1, then 1.9
    with pytest.raises(ValueError, match="could not compile"):  # impl="fused" says so
        sl.Momentum(lr=0.1, impl="fused").step(theta, np.ones_like(theta), state)


def test_monkeypatched_missing_numba_uses_numpy(monkeypatch, fresh_warning):
    monkeypatch.setattr(_numba, "numba", None)
    opt = sl.RMSProp()
    theta = np.ones(10_000, dtype=np.float32)
    state = opt.init(theta)
    with pytest.warns(RuntimeWarning, match="numba is not available"):
        opt.step(theta, theta.copy(), state)
    assert state.t == 1 and theta.dtype == np.float32 and state.impl == "numpy"
    with pytest.raises(ImportError, match="impl='fused' needs numba"):
        sl.RMSProp(impl="fused")
