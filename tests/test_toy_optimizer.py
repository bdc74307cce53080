"""An optimizer written in this one file gets every path steplab has, with no other edit:
registering it (the public ``steplab.optim.register``) is all it takes.

The toy is a bias-corrected moving average of ĝ stepped through a soft sign; its steps are
checked against the same formula written out in Python floats (an independent reference),
and every backend against its NumPy steps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np
import pytest

import steplab as sl
from steplab.optim.base import Optimizer, hyper


class ToyState(NamedTuple):
    t: int
    v: Any


def toy_step_scalars(ops, hp, t, state):
    return {"correct": 1 / (1 - ops.pow(hp.rho, t))}  # 1/(1 − ρᵗ)


def toy_rule(ops, hp, theta, g, v):
    v = hp.rho * v + (1 - hp.rho) * g  # moving average of ĝ
    v_hat = v * hp.correct  # bias-corrected
    theta = theta - hp.lr * v_hat / (1 + ops.abs(v_hat))  # a soft-sign step
    return theta, v


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Toy(Optimizer):
    """A toy: v ← ρv + (1−ρ)ĝ;  v̂ = v/(1−ρᵗ);  θ ← θ − α·v̂/(1 + |v̂|)."""

    name = "toy"
    PRESETS = {"torch": {"lr": 0.05}}
    state_type = ToyState
    rule = staticmethod(toy_rule)
    step_scalars = staticmethod(toy_step_scalars)

    lr: float = hyper(0.1, "(0, inf)", "step size α")
    rho: float = hyper(0.8, "[0, 1)", "decay rate ρ")


STEPS = 7


@pytest.fixture
def toy():
    sl.optim.register(Toy)
    try:
        yield Toy
    finally:
        sl.optim.unregister("toy")


def _gradients(n, steps=STEPS, dtype=np.float64):
    rng = np.random.default_rng(3)
    return [rng.standard_normal(n).astype(dtype) for _ in range(steps)]


def _numpy_steps(theta, grads, **options):
    opt = sl.make("toy", **options)
    theta = theta.copy()
    state = opt.init(theta)
    for g in grads:
        opt.step(theta, g, state)
    return theta, state


def test_the_numpy_step_is_the_formula(toy):
    theta0 = np.array([0.5, -1.5, 2.0])
    grads = _gradients(3)
    theta, state = _numpy_steps(theta0, grads, impl="numpy")
    lr, rho = 0.1, 0.8
    for i in range(3):
        x, v = float(theta0[i]), 0.0
        for t, g in enumerate(grads, start=1):
            v = rho * v + (1 - rho) * float(g[i])
            v_hat = v * (1 / (1 - math.pow(rho, t)))
            x = x - lr * v_hat / (1 + abs(v_hat))
        assert theta[i] == x and state.v[i] == v


def test_registration_reaches_every_registry(toy):
    import steplab.torch as st
    from steplab.cli.bench_measure import STREAMS

    assert sl.OPTIMIZERS["toy"] is Toy and isinstance(sl.make("TOY"), Toy)
    assert st.OPTIMIZERS["toy"].core is Toy and "toy" in list(st.OPTIMIZERS)
    assert STREAMS["toy"] == (3, 2)  # θ, ĝ, v read; θ, v written


def test_unregistering_removes_it_everywhere(toy):
    import steplab.torch as st

    sl.optim.unregister("toy")
    assert "toy" not in sl.OPTIMIZERS and "toy" not in st.OPTIMIZERS
    with pytest.raises(ValueError, match="unknown optimizer 'toy'"):
        sl.make("toy")
    sl.optim.register(Toy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_step_equals_numpy_bit_for_bit(toy, dtype):
    pytest.importorskip("numba")
    n = 5000  # above the dispatch threshold
    theta0 = np.random.default_rng(0).standard_normal(n).astype(dtype)
    grads = _gradients(n, dtype=dtype)
    fused, fused_state = _numpy_steps(theta0, grads, impl="fused")
    numpy, numpy_state = _numpy_steps(theta0, grads, impl="numpy")
    assert (fused_state.impl, numpy_state.impl) == ("fused", "numpy")
    np.testing.assert_array_equal(fused, numpy)
    np.testing.assert_array_equal(fused_state.v, numpy_state.v)


def test_sweep_equals_each_configuration_stepped_alone(toy):
    pytest.importorskip("numba")
    from steplab.formulas import rosenbrock_grad

    x0s = np.array([[-1.2, 1.0], [0.5, 0.5], [2.0, -1.0]])
    lrs = np.array([0.01, 0.05, 0.1])
    x, _ = sl.fast.sweep("rosenbrock", Toy(lr=lrs), x0s, STEPS)
    for k in range(3):
        opt = Toy(lr=float(lrs[k]), impl="numpy")
        theta = x0s[k].copy()
        state = opt.init(theta)
        for _ in range(STEPS):
            opt.step(theta, np.array(rosenbrock_grad(theta[0], theta[1], 1.0, 100.0)), state)
        np.testing.assert_array_equal(x[k], theta)


@pytest.mark.parametrize("fused", [False, True], ids=["multi-tensor", "single-pass"])
def test_torch_steps_equal_numpy(toy, fused):
    torch = pytest.importorskip("torch")
    import steplab.torch as st

    theta0 = np.random.default_rng(1).standard_normal(6)
    grads = _gradients(6)
    param = torch.nn.Parameter(torch.from_numpy(theta0.copy()))
    opt = st.make("toy", [param], fused=fused)
    for g in grads:
        param.grad = torch.from_numpy(g.copy())
        opt.step()
    expected, state = _numpy_steps(theta0, grads)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-13, atol=0)
    np.testing.assert_allclose(opt.state[param]["v"].numpy(), state.v, rtol=1e-13, atol=0)


def test_jax_transformation_equals_numpy(toy):
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import optax

    import steplab.jax as sj

    theta0 = np.random.default_rng(2).standard_normal(4).astype(np.float32)
    grads = _gradients(4, dtype=np.float32)
    tx = sj.make("toy", preset="torch")
    params = {"w": jnp.asarray(theta0)}
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
    expected, _ = _numpy_steps(theta0, grads, lr=0.05)
    np.testing.assert_allclose(np.asarray(params["w"]), expected, rtol=2e-6)


def test_the_command_line_lists_and_runs_it(toy, capsys):
    from steplab.cli import main

    assert main(["list", "optimizers"]) == 0
    assert "toy" in capsys.readouterr().out
    from steplab.cli.spec import parse

    spec = parse("toy@torch:rho=0.5")
    assert isinstance(spec.optimizer, Toy)
    assert (spec.optimizer.lr, spec.optimizer.rho) == (0.05, 0.5)


def test_the_web_lab_lists_it(toy):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from steplab.web.app import create_app

    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        meta = client.get("/api/meta").json()
    assert [o["name"] for o in meta["optimizers"]] == list(sl.OPTIMIZERS)
    assert "toy" in [o["name"] for o in meta["optimizers"]]


def test_the_benchmark_measures_it(toy):
    pytest.importorskip("numba")
    from steplab.cli.bench_measure import measure

    result = measure("toy", size=20_000, repeats=1, torch=False)
    assert result["optimizer"] == "toy" and result["ms"] > 0 and result["anchor_ms"] > 0


def test_registering_refuses_what_is_not_a_new_optimizer(toy):
    with pytest.raises(ValueError, match="'adam' is taken by steplab.optim.adam.Adam"):
        sl.optim.register(type("Other", (Toy,), {"name": "adam"}))
    with pytest.raises(TypeError, match="only steplab.optim.Optimizer subclasses"):
        sl.optim.register(dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lower-case name of its own"):
        sl.optim.register(type("Loud", (Toy,), {"name": "Loud"}))
    assert list(sl.OPTIMIZERS)[-1] == "toy" and sl.OPTIMIZERS["adam"] is sl.Adam


def test_a_rule_declares_its_kind():
    with pytest.raises(TypeError, match="KIND must be one of"):
        type("Odd", (Toy,), {"KIND": "diagonal"})
    per_tensor = type("Whole", (Toy,), {"KIND": "per_tensor", "name": "whole"})
    with pytest.raises(ValueError, match="per_tensor; sweeps run element-wise rules"):
        sl.fast.sweep("rosenbrock", per_tensor(), np.zeros((1, 2)), 3)


def test_a_new_module_in_the_optim_package_registers_itself(tmp_path, monkeypatch):
    """``import steplab.optim`` imports every other module of the package: a module that
    ends with ``register(ItsClass)`` needs no line anywhere else."""
    import sys

    (tmp_path / "signum_test_module.py").write_text(
        "import dataclasses\n"
        "from steplab.optim.registry import register\n"
        "from steplab.optim.sgd import Momentum\n\n\n"
        "@register\n"
        "@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)\n"
        "class SignumTest(Momentum):\n"
        '    name = "signum_test"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(sl.optim, "__path__", [str(tmp_path)])
    try:
        sl.optim._import_other_modules()
        assert list(sl.OPTIMIZERS)[-1] == "signum_test"
        assert sl.make("signum_test").name == "signum_test"
    finally:
        sl.optim.unregister("signum_test")
        sys.modules.pop("steplab.optim.signum_test_module", None)
