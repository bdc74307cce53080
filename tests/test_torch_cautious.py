"""steplab.torch.modifiers.Cautious around torch optimizers equals the NumPy core's
Cautious (float64, 1e-12; the mask over every parameter, as the core's θ concatenates them)
and pytorch_optimizer's cautious=True on one tensor; state_dict round trips bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import steplab.torch as st  # noqa: E402
from steplab.optim import Adam, AdamW, Cautious, Lion  # noqa: E402
from steplab.torch.modifiers import Cautious as TorchCautious  # noqa: E402

START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25, 0.7])
SPLIT = 4  # two tensors on the torch side: θ[:4] and θ[4:]


def gradient(theta, t):
    return np.array([0.01, 0.1, 1, 3, 10, 100, 0.5]) * theta + np.sin(3 * t + theta)


def numpy_path(opt, steps):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path)


def tensors():
    return [torch.tensor(START[:SPLIT].copy(), requires_grad=True),
            torch.tensor(START[SPLIT:].copy(), requires_grad=True)]  # fmt: skip


def torch_path(opt, params, steps, start=0):
    path = []
    for t in range(start, start + steps):
        theta = np.concatenate([p.detach().numpy() for p in params])
        g = gradient(theta, t)
        params[0].grad, params[1].grad = torch.tensor(g[:SPLIT]), torch.tensor(g[SPLIT:])
        opt.step()
        path.append(np.concatenate([p.detach().numpy().copy() for p in params]))
    return np.array(path)


CASES = {
    "adamw (decoupled decay)": (
        lambda p: st.AdamW(p, lr=0.05, weight_decay=0.1),
        lambda: AdamW(lr=0.05, weight_decay=0.1),
    ),  # fmt: skip
    "torch.optim.AdamW": (
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
        lambda: AdamW.like("torch", lr=0.05, weight_decay=0.1),
    ),  # fmt: skip
    "adam (L2 decay)": (
        lambda p: st.Adam(p, lr=0.05, weight_decay=0.1),
        lambda: Adam(lr=0.05, weight_decay=0.1),
    ),  # fmt: skip
    "lion": (
        lambda p: st.Lion(p, lr=0.01, weight_decay=0.1),
        lambda: Lion(lr=0.01, weight_decay=0.1),
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_the_numpy_core(name):
    make_torch, make_core = CASES[name]
    params = tensors()
    ours = torch_path(TorchCautious(make_torch(params)), params, 40)
    reference = numpy_path(Cautious(base=make_core()), 40)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-14)
    assert not np.allclose(ours, numpy_path(make_core(), 40))  # the mask changed the path


def test_equals_pytorch_optimizer_on_one_tensor():
    po = pytest.importorskip("pytorch_optimizer")
    paths = []
    ours = lambda p: TorchCautious(st.Lion(p, lr=0.01, rho1=0.9, rho2=0.99, weight_decay=0.1))  # noqa: E731
    theirs = lambda p: po.Lion(p, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, cautious=True)  # noqa: E731
    for wrap in (ours, theirs):
        p = torch.tensor(START.copy(), requires_grad=True)
        opt, path = wrap([p]), []
        for t in range(40):
            p.grad = torch.tensor(gradient(p.detach().numpy().copy(), t))
            opt.step()
            path.append(p.detach().numpy().copy())
        paths.append(np.array(path))
    np.testing.assert_allclose(paths[0], paths[1], rtol=1e-12, atol=1e-14)


def test_state_dict_round_trip_is_bit_for_bit():
    make = CASES["adamw (decoupled decay)"][0]
    params = tensors()
    straight = torch_path(TorchCautious(make(params)), params, 20)
    params = tensors()
    first = TorchCautious(make(params))
    torch_path(first, params, 10)
    saved = copy.deepcopy(first.state_dict())
    again = [torch.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    resumed = TorchCautious(make(again))
    resumed.load_state_dict(saved)
    assert torch_path(resumed, again, 10, start=10)[-1].tobytes() == straight[-1].tobytes()
    assert resumed.param_groups[0]["weight_decay"] == 0.1  # restored after each step


def test_wraps_only_torch_optimizers():
    with pytest.raises(TypeError, match="Cautious wraps a torch optimizer"):
        TorchCautious(AdamW())
