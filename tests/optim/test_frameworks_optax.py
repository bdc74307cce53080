"""The "optax" presets step for step against optax (JAX in float64)."""

from __future__ import annotations

import importlib
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

STEPS = 150


@pytest.fixture(autouse=True, scope="module")
def float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def optax_path(transform, stream, steps=STEPS):
    params = jnp.asarray(stream.start, dtype=jnp.float64)
    state = transform.init(params)
    update = jax.jit(transform.update)
    path = []
    for t in range(steps):
        grad = jnp.asarray(stream.gradient(np.asarray(params), t))
        updates, state = update(grad, state, params)
        params = optax.apply_updates(params, updates)
        path.append(np.asarray(params))
    return np.array(path)


CASES = {
    "sgd": (sl.SGD(lr=0.05), lambda: optax.sgd(0.05)),
    "momentum": (sl.Momentum(lr=0.01), lambda: optax.sgd(0.01, momentum=0.9)),
    "nesterov": (sl.Nesterov(lr=0.01), lambda: optax.sgd(0.01, momentum=0.9, nesterov=True)),
    "adagrad": (sl.AdaGrad.like("optax"), lambda: optax.adagrad(0.01)),
    "rmsprop": (sl.RMSProp.like("optax"), lambda: optax.rmsprop(1e-3)),
    "rmsprop-lr": (sl.RMSProp.like("optax", lr=0.01), lambda: optax.rmsprop(0.01)),
    "adadelta": (sl.AdaDelta.like("optax"), lambda: optax.adadelta(1.0)),
    "adam": (sl.Adam.like("optax"), lambda: optax.adam(1e-3)),
    "adam-tuned": (
        sl.Adam.like("optax", lr=0.05, rho1=0.8, rho2=0.99, eps_root=1e-10),
        lambda: optax.adam(0.05, b1=0.8, b2=0.99, eps_root=1e-10),
    ),
    "adam-seed": (  # the seed's β inside the root is optax's eps_root with eps = 0
        sl.Adam(),
        lambda: optax.adam(1e-3, eps=0.0, eps_root=1e-8),
    ),
    "adamw": (sl.AdamW.like("optax"), lambda: optax.adamw(1e-3)),
    "adamax": (sl.Adamax.like("optax"), lambda: optax.adamax(2e-3)),
    "radam": (sl.RAdam.like("optax", lr=0.01), lambda: optax.radam(0.01)),
    "lion": (sl.Lion.like("optax"), lambda: optax.lion(1e-4)),
    "lion-lr": (
        sl.Lion(lr=3e-3, rho1=0.8, rho2=0.95),
        lambda: optax.lion(3e-3, b1=0.8, b2=0.95, weight_decay=0.0),
    ),
    # the registered newcomers' optax presets (more settings: tests/optim/test_modifiers.py
    # and test_schedule_free.py)
    "adopt": (sl.optim.ADOPT.like("optax", lr=0.01), lambda: optax.contrib.adopt(0.01)),
    "ademamix": (
        sl.optim.AdEMAMix.like("optax", lr=0.01),
        lambda: optax.contrib.ademamix(0.01, weight_decay=0.0),
    ),
    "schedule_free_sgd": (
        sl.optim.ScheduleFreeSGD.like("optax", lr=0.05),
        lambda: optax.contrib.schedule_free_sgd(0.05),
    ),
    "schedule_free_adamw": (
        sl.optim.ScheduleFreeAdamW.like("optax", lr=0.01),
        lambda: optax.contrib.schedule_free_adamw(0.01),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_equals_optax(case, stream):
    ours, theirs = CASES[case]
    expected = optax_path(theirs(), stream)
    np.testing.assert_allclose(stream.run(ours, STEPS), expected, rtol=1e-11, atol=1e-13)


def test_every_optax_preset_is_checked():
    checked = {ours.name for ours, _ in CASES.values()}
    with_preset = {name for name, cls in sl.OPTIMIZERS.items() if "optax" in cls.PRESETS}
    assert with_preset <= checked
