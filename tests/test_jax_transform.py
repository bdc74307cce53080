"""steplab.jax: every optimizer and preset as an optax transformation, equal to the NumPy core
(JAX in float64) and, for the "optax" presets, to optax's own optimizers; jit, vmap sweeps,
schedules, float32/bfloat16 parameters and the errors for bad input."""

from __future__ import annotations

import importlib
import math
import os

import numpy as np
import pytest

import steplab as sl

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _require(name):
    # CI installs optax and jax; there a missing one is a failure, never a silent skip.
    return importlib.import_module(name) if os.environ.get("CI") else pytest.importorskip(name)


jax = _require("jax")
optax = _require("optax")
jnp = _require("jax.numpy")
sj = _require("steplab.jax")

STEPS = 25
SHAPES = {"w": (3, 4), "b": (5,)}


@pytest.fixture(autouse=True, scope="module")
def float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def _start(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s) for k, s in SHAPES.items()}


def _coefficients(k):
    return 1.5 + 0.5 * math.cos(k), -0.3 + 0.1 * math.sin(3.0 * k)


def _gradient(theta, k):
    """A noisy quadratic's gradient (the same formula for NumPy and JAX arrays)."""
    a, b = _coefficients(k)
    return a * theta + b


def _numpy_run(core, steps=STEPS):
    thetas = {k: v.copy() for k, v in _start().items()}
    states = {k: core.init(v) for k, v in thetas.items()}
    for k in range(steps):
        for name, theta in thetas.items():
            core.step(theta, _gradient(theta, k), states[name])
    return thetas


def _jax_run(tx, steps=STEPS, dtype=None, jit=True):
    params = {k: jnp.asarray(v, dtype=dtype) for k, v in _start().items()}
    state = tx.init(params)

    def step(params, state, a, b):
        grads = jax.tree.map(lambda p: (a * p + b).astype(p.dtype), params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step)
    for k in range(steps):
        params, state = step(params, state, *_coefficients(k))
    return params, state


# Every optimizer × preset × two settings: the preset as it is, and changed numbers with
# every switch that adds code or state turned on.
OTHER_SETTING = {
    "sgd": {"lr": 0.05, "weight_decay": 0.1},
    "momentum": {"rho": 0.5, "weight_decay": 0.1},
    "nesterov": {"rho": 0.7, "weight_decay": 0.2},
    "adagrad": {"lr": 0.05, "r0": 0.3, "eps_root": 1e-3, "weight_decay": 0.1},
    "rmsprop": {"centered": True, "momentum": 0.5, "weight_decay": 0.01, "r0": 0.1},
    "adadelta": {"rho": 0.8, "weight_decay": 0.1},
    "adam": {"amsgrad": True, "bias_correction": False, "weight_decay": 0.1, "lr": 0.01},
    "adamw": {"amsgrad": True, "eps_hat": True, "weight_decay": 0.3, "lr": 0.01},
    "adamax": {"rho1": 0.5, "eps": 1e-3, "weight_decay": 0.1},
    "nadam": {"momentum_decay": 0.1, "weight_decay": 0.1, "lr": 0.01},
    "radam": {"rho2": 0.9, "weight_decay": 0.1},  # ρₜ > 5 after a few steps: both branches
    "lion": {"lr": 0.01, "rho2": 0.9, "weight_decay": 0.5},
    "adopt": {"clipping": False, "rho2": 0.9, "weight_decay": 0.1},
    "ademamix": {"warmup_steps": 4.0, "alpha": 2.0, "weight_decay": 0.1},
    "schedule_free_sgd": {"weight_decay": 0.1, "warmup_steps": 3.0, "lr": 0.1},
    "schedule_free_adamw": {"weight_decay": 0.1, "poly_power": 1.0, "lr": 0.01},
}
# ... and every other registered optimizer (a new module in steplab/optim): its switches on
OTHER_SETTING.update({
    name: {k: True for k, f in cls.hyperparameters().items() if f.metadata["interval"] == "bool"}
    for name, cls in sl.OPTIMIZERS.items()
    if name not in OTHER_SETTING
})  # fmt: skip
CASES = [
    (name, preset, setting)
    for name, cls in sl.OPTIMIZERS.items()
    for preset in ["seed", *cls.PRESETS]
    for setting in ({}, OTHER_SETTING[name])
]


def test_every_optimizer_has_a_second_setting():
    assert set(OTHER_SETTING) == set(sl.OPTIMIZERS)


@pytest.mark.parametrize(("name", "preset", "setting"), CASES)
def test_equals_numpy_core_in_float64(name, preset, setting):
    expected = _numpy_run(sl.make(name, preset=preset, **setting))
    # op by op (compiling ~90 configurations would dominate); jit is proven below
    params, state = _jax_run(sj.make(name, preset=preset, **setting), jit=False)
    for key, theta in expected.items():
        assert params[key].dtype == jnp.float64
        assert not np.allclose(theta, _start()[key], atol=1e-6)  # the run moved
        np.testing.assert_allclose(np.asarray(params[key]), theta, rtol=1e-12, atol=1e-14)
        assert int(state[key].t) == STEPS


# The presets that claim optax's algorithm, against optax's own alias (optax counts lr
# schedules from 0; both defaults are the same numbers).
OPTAX_ALIASES = {
    "sgd": lambda: optax.sgd(1e-2),
    "adagrad": lambda: optax.adagrad(1e-2),
    "rmsprop": lambda: optax.rmsprop(1e-3),
    "adadelta": lambda: optax.adadelta(1.0),
    "adam": lambda: optax.adam(1e-3),
    "adamw": lambda: optax.adamw(1e-3),
    "adamax": lambda: optax.adamax(2e-3),
    "radam": lambda: optax.radam(1e-3),
    "lion": lambda: optax.lion(1e-4),
}


#: optax presets whose optax counterpart lives in optax.contrib: the NumPy core equals it
#: (tests/optim/test_frameworks_optax.py) and this path equals the core (the cases above).
CONTRIB_PRESETS = {"adopt", "ademamix", "schedule_free_sgd", "schedule_free_adamw"}


def test_every_optax_preset_has_its_alias():
    with_preset = {name for name, cls in sl.OPTIMIZERS.items() if "optax" in cls.PRESETS}
    assert with_preset - CONTRIB_PRESETS == set(OPTAX_ALIASES)


@pytest.mark.parametrize("name", list(OPTAX_ALIASES))
def test_optax_preset_equals_optax_alias(name):
    ours, _ = _jax_run(sj.make(name, preset="optax"), steps=60)
    theirs, _ = _jax_run(OPTAX_ALIASES[name](), steps=60)
    for key in SHAPES:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-11, atol=1e-13)


def test_vmap_sweep_over_hyperparameters_equals_single_runs():
    lrs = jnp.asarray([1e-3, 1e-2, 1e-1])
    rho1s = jnp.asarray([0.0, 0.5, 0.9])

    def run(lr, rho1):
        return _jax_run(sj.make("adam", lr=lr, rho1=rho1, weight_decay=0.1), steps=10)[0]

    swept = jax.vmap(run)(lrs, rho1s)
    for i in range(3):
        single = _numpy_run(
            sl.Adam(lr=float(lrs[i]), rho1=float(rho1s[i]), weight_decay=0.1), steps=10
        )
        for key in SHAPES:
            np.testing.assert_allclose(swept[key][i], single[key], rtol=1e-12, atol=1e-14)


def test_array_hyperparameters_sweep_along_the_leading_axis_like_the_core():
    lrs = np.asarray([1e-3, 1e-2, 1e-1])
    start = np.random.default_rng(3).normal(size=(3, 4))
    core = sl.Adam(lr=lrs)
    theta, state = start.copy(), core.init(start)
    tx = sj.make("adam", lr=lrs)
    params = jnp.asarray(start)
    tx_state = tx.init(params)
    for k in range(10):
        core.step(theta, _gradient(theta, k), state)
        updates, tx_state = tx.update(_gradient(params, k), tx_state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, theta, rtol=1e-12, atol=1e-14)


def test_schedules_steplab_and_optax_give_the_same_steps_as_the_core():
    schedule = sl.schedules.cosine_decay_schedule(0.1, decay_steps=20)
    expected = _numpy_run(sl.Adam(lr=schedule))
    ours, _ = _jax_run(sj.make("adam", lr=schedule))
    with_optax, _ = _jax_run(sj.make("adam", lr=optax.cosine_decay_schedule(0.1, 20)))
    for key, theta in expected.items():
        np.testing.assert_allclose(ours[key], theta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(with_optax[key], theta, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_low_precision_parameters_track_the_float64_run(dtype):
    expected = _numpy_run(sl.Adam(lr=0.01))
    params, state = _jax_run(sj.make("adam", lr=0.01), dtype=getattr(jnp, dtype))
    # bfloat16 keeps 8 bits of θ: its gradients and rounded steps drift by a few 2⁻⁸
    tolerance = {"float32": 1e-5, "bfloat16": 0.06}[dtype]
    for key, theta in expected.items():
        assert params[key].dtype == getattr(jnp, dtype)
        assert state[key].s.dtype == jnp.float32  # moments: float32 for bfloat16 too
        np.testing.assert_allclose(
            np.asarray(params[key], np.float64), theta, rtol=tolerance, atol=tolerance
        )


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="no hyperparameter betas"):
        sj.make("adam", betas=(0.9, 0.99))
    with pytest.raises(ValueError, match=r"rho1 must be in \[0, 1\)"):
        sj.make("adam", rho1=1.0)
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        sj.make("adamm")
    with pytest.raises(ValueError, match="no preset 'jax'"):
        sj.make("adam", preset="jax")
    with pytest.raises(ValueError, match="apply_if_finite"):
        sj.make("adam", nonfinite="skip")
    tx = sj.make("adam")
    with pytest.raises(TypeError, match="int32.*float16, bfloat16, float32, float64"):
        tx.init({"w": jnp.zeros(3, jnp.int32)})
    with pytest.raises(TypeError, match="complex64"):
        tx.init({"w": jnp.zeros(3, jnp.complex64)})
    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(params, state)
    from jax.experimental import sparse

    with pytest.raises(TypeError, match="sparse"):
        tx.update({"w": sparse.BCOO.fromdense(jnp.ones(3))}, state, params)
    with pytest.raises(TypeError, match="amsgrad .*Python bool"):
        jax.vmap(lambda a: sj.make("adam", amsgrad=a).init(params))(jnp.asarray([True]))
