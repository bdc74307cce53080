"""The "torch" presets (and the friends torch has) step for step against torch.optim.

float64, 150 steps of a gradient stream that feeds back through the iterates; every
step's parameters must agree to ~1e-12 relative.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import steplab as sl

torch = importlib.import_module("torch") if os.environ.get("CI") else pytest.importorskip("torch")

STEPS = 150


@pytest.fixture(autouse=True)
def float64_scalars():
    """torch keeps some scalar state (NAdam's μ-product, step counters) in the default
    dtype; in float32 that alone differs from float64 math by ~1e-10."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def torch_path(make_optimizer, stream, steps=STEPS):
    param = torch.nn.Parameter(torch.tensor(stream.start, dtype=torch.float64))
    optimizer = make_optimizer([param])
    path = []
    for t in range(steps):
        theta = param.detach().numpy().copy()
        param.grad = torch.tensor(stream.gradient(theta, t), dtype=torch.float64)
        optimizer.step()
        path.append(param.detach().numpy().copy())
    return np.array(path)


CASES = {
    "sgd": (sl.SGD.like("torch"), lambda p: torch.optim.SGD(p)),
    "sgd-lr": (sl.SGD(lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    "momentum": (sl.Momentum(lr=0.01), lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    "nesterov": (
        sl.Nesterov(lr=0.01, rho=0.8),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.8, nesterov=True),
    ),
    "sgd-weight-decay": (
        sl.Momentum(lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=0.1),
    ),
    "adagrad": (sl.AdaGrad.like("torch"), lambda p: torch.optim.Adagrad(p)),
    "adagrad-r0": (
        sl.AdaGrad.like("torch", lr=0.1, r0=0.5, weight_decay=0.01),
        lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.5, weight_decay=0.01),
    ),
    "rmsprop": (sl.RMSProp.like("torch"), lambda p: torch.optim.RMSprop(p)),
    "rmsprop-centered-momentum": (
        sl.RMSProp.like("torch", centered=True, momentum=0.5),
        lambda p: torch.optim.RMSprop(p, centered=True, momentum=0.5),
    ),
    "adadelta": (sl.AdaDelta.like("torch"), lambda p: torch.optim.Adadelta(p)),
    "adam": (sl.Adam.like("torch"), lambda p: torch.optim.Adam(p)),
    "adam-tuned": (
        sl.Adam.like("torch", lr=0.05, rho1=0.8, rho2=0.99, weight_decay=0.01),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.01),
    ),
    "adam-amsgrad": (
        sl.Adam.like("torch", lr=0.01, amsgrad=True),
        lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
    ),
    "adamw": (sl.AdamW.like("torch"), lambda p: torch.optim.AdamW(p)),
    "adamw-amsgrad": (
        sl.AdamW.like("torch", lr=0.02, weight_decay=0.1, amsgrad=True),
        lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.1, amsgrad=True),
    ),
    "adamax": (sl.Adamax.like("torch"), lambda p: torch.optim.Adamax(p)),
    "nadam": (sl.Nadam.like("torch"), lambda p: torch.optim.NAdam(p)),
    "nadam-fast": (
        sl.Nadam.like("torch", lr=0.05, momentum_decay=0.01),
        lambda p: torch.optim.NAdam(p, lr=0.05, momentum_decay=0.01),
    ),
    "radam": (sl.RAdam.like("torch"), lambda p: torch.optim.RAdam(p)),
    "radam-lr": (sl.RAdam.like("torch", lr=0.05), lambda p: torch.optim.RAdam(p, lr=0.05)),
}


@pytest.mark.parametrize("case", CASES)
def test_equals_torch_optim(case, stream):
    ours, theirs = CASES[case]
    expected = torch_path(theirs, stream)
    np.testing.assert_allclose(stream.run(ours, STEPS), expected, rtol=1e-12, atol=1e-13)


def test_every_torch_preset_is_checked():
    """Each optimizer with a "torch" preset appears above with that preset."""
    checked = {ours.name for ours, _ in CASES.values()}
    with_preset = {name for name, cls in sl.OPTIMIZERS.items() if "torch" in cls.PRESETS}
    assert with_preset <= checked


def test_torch_defaults_are_the_presets():
    """The presets' values are torch's own defaults, read from torch's signatures."""
    import inspect

    def default(cls, name):
        return inspect.signature(cls.__init__).parameters[name].default

    assert sl.SGD.like("torch").lr == default(torch.optim.SGD, "lr")
    adagrad = sl.AdaGrad.like("torch")
    assert (adagrad.lr, adagrad.eps) == (
        default(torch.optim.Adagrad, "lr"),
        default(torch.optim.Adagrad, "eps"),
    )
    assert adagrad.r0 == default(torch.optim.Adagrad, "initial_accumulator_value")
    rms = sl.RMSProp.like("torch")
    assert (rms.lr, rms.rho, rms.eps) == tuple(
        default(torch.optim.RMSprop, k) for k in ("lr", "alpha", "eps")
    )
    adam = sl.Adam.like("torch")
    assert (adam.lr, (adam.rho1, adam.rho2), adam.eps) == tuple(
        default(torch.optim.Adam, k) for k in ("lr", "betas", "eps")
    )
    assert sl.AdamW.like("torch").weight_decay == default(torch.optim.AdamW, "weight_decay")
    delta = sl.AdaDelta.like("torch")
    assert (delta.lr, delta.rho, delta.eps_root) == tuple(
        default(torch.optim.Adadelta, k) for k in ("lr", "rho", "eps")
    )
    assert sl.Adamax.like("torch").lr == default(torch.optim.Adamax, "lr")
    assert sl.Nadam.like("torch").lr == default(torch.optim.NAdam, "lr")
    assert sl.Nadam().momentum_decay == default(torch.optim.NAdam, "momentum_decay")


def test_adam_float32_close_to_torch(stream):
    theta = stream.start.astype(np.float32)
    opt = sl.Adam.like("torch", lr=0.01)
    state = opt.init(theta)
    param = torch.nn.Parameter(torch.tensor(theta.copy()))
    torch_opt = torch.optim.Adam([param], lr=0.01, foreach=False)
    for t in range(100):
        g = stream.gradient(theta.astype(np.float64), t).astype(np.float32)
        opt.step(theta, g, state)
        param.grad = torch.tensor(g)
        torch_opt.step()
        # Each side steps from its own iterate, but with the gradient of ours:
        param.data = torch.tensor(theta.copy())
    assert theta.dtype == np.float32 and state.r.dtype == np.float32
    np.testing.assert_allclose(theta, param.detach().numpy(), rtol=2e-6, atol=1e-7)
