"""The "keras" presets step for step against Keras 3 (torch backend, float64 variables).

Keras keeps the learning rate (and Nadam's μ-product) in float32 variables, so its α
differs from ours by up to ~5e-8 relative and that error accumulates over 150 steps;
the tolerance (1e-6) is set by that, not by the algorithms: a wrong convention (ε
inside vs outside the root, ε̂, Nadam's ψ) shows up as 1e-5 … 1e-2.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import steplab as sl

os.environ.setdefault("KERAS_BACKEND", "torch")

keras = importlib.import_module("keras") if os.environ.get("CI") else pytest.importorskip("keras")

STEPS = 150
if keras.backend.backend() != "torch":  # pragma: no cover - depends on the environment
    pytest.skip("these tests pin Keras to its torch backend", allow_module_level=True)


def keras_path(optimizer, stream, steps=STEPS):
    variable = keras.Variable(stream.start.copy(), dtype="float64")
    path = []
    for t in range(steps):
        theta = keras.ops.convert_to_numpy(variable)
        grad = keras.ops.convert_to_tensor(stream.gradient(theta, t), dtype="float64")
        optimizer.apply_gradients([(grad, variable)])
        path.append(keras.ops.convert_to_numpy(variable).copy())
    return np.array(path)


K = keras.optimizers
CASES = {
    "sgd": (sl.SGD.like("keras"), lambda: K.SGD()),
    "momentum": (sl.Momentum.like("keras"), lambda: K.SGD(momentum=0.9)),
    "nesterov": (sl.Nesterov.like("keras"), lambda: K.SGD(momentum=0.9, nesterov=True)),
    "adagrad": (sl.AdaGrad.like("keras"), lambda: K.Adagrad()),
    "adagrad-lr": (sl.AdaGrad.like("keras", lr=0.1), lambda: K.Adagrad(learning_rate=0.1)),
    "rmsprop": (sl.RMSProp.like("keras"), lambda: K.RMSprop()),
    "rmsprop-centered": (
        sl.RMSProp.like("keras", lr=0.01, centered=True),
        lambda: K.RMSprop(learning_rate=0.01, centered=True),
    ),
    "adadelta": (sl.AdaDelta.like("keras", lr=1.0), lambda: K.Adadelta(learning_rate=1.0)),
    "adam": (sl.Adam.like("keras"), lambda: K.Adam()),
    "adam-lr-amsgrad": (
        sl.Adam.like("keras", lr=0.05, amsgrad=True),
        lambda: K.Adam(learning_rate=0.05, amsgrad=True),
    ),
    "adamw": (sl.AdamW.like("keras"), lambda: K.AdamW()),
    "adamax": (sl.Adamax.like("keras"), lambda: K.Adamax()),
    "nadam": (sl.Nadam.like("keras"), lambda: K.Nadam()),
    "lion": (sl.Lion.like("keras"), lambda: K.Lion()),
}


@pytest.mark.parametrize("case", CASES)
def test_equals_keras(case, stream):
    ours, theirs = CASES[case]
    expected = keras_path(theirs(), stream)
    np.testing.assert_allclose(stream.run(ours, STEPS), expected, rtol=1e-6, atol=1e-7)


def test_every_keras_preset_is_checked():
    checked = {ours.name for ours, _ in CASES.values()}
    with_preset = {name for name, cls in sl.OPTIMIZERS.items() if "keras" in cls.PRESETS}
    assert with_preset <= checked
