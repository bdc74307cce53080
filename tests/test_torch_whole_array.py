"""steplab.torch.modifiers.MARS and Prodigy run the NumPy core's own rule on torch tensors:
equal to the core (float64, the reductions over every parameter, as the core's θ
concatenates them) and to pytorch_optimizer 4.1.0's MARS (one tensor, 1e-10) and Prodigy
(several tensors, 1e-7: see PRODIGY_RTOL); state_dict round trips bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steplab.optim.modifiers import MARS, Prodigy  # noqa: E402
from steplab.torch.modifiers import MARS as TorchMARS  # noqa: E402
from steplab.torch.modifiers import Prodigy as TorchProdigy  # noqa: E402

START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25, 0.7])
SPLIT = 4  # two tensors, in two groups, on the torch side: θ[:4] and θ[4:]
STEPS = 60
# Prodigy's ⟨ĝ, θ₀ − θ⟩ cancels while θ is near θ₀: the last bits of a differently summed
# dot product grow through d (see tests/optim/test_modifiers.py's PRODIGY_RTOL). torch's and
# NumPy's dot products sum in different orders: 1.5e-12 apart here, hence 1e-11 to the core.
PRODIGY_RTOL = 1e-7
PRODIGY_CORE_RTOL = 1e-11


def gradient(theta, t, scale=1.0):
    return scale * (np.array([0.01, 0.1, 1, 3, 10, 100, 0.5]) * theta + np.sin(3 * t + theta))


def numpy_path(opt, steps=STEPS, scale=1.0):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t, scale), state)
        path.append(theta.copy())
    return np.array(path)


def tensors():
    return [torch.tensor(START[:SPLIT].copy(), requires_grad=True),
            torch.tensor(START[SPLIT:].copy(), requires_grad=True)]  # fmt: skip


def torch_path(opt, params, steps=STEPS, scale=1.0, start=0):
    path = []
    for t in range(start, start + steps):
        theta = np.concatenate([p.detach().numpy().ravel() for p in params])
        g = gradient(theta, t, scale)
        params[0].grad = torch.tensor(g[:SPLIT]).view_as(params[0])
        params[1].grad = torch.tensor(g[SPLIT:]).view_as(params[1])
        opt.step()
        path.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return np.array(path)


def two_groups(params):
    return [{"params": [params[0]]}, {"params": [params[1]]}]


@pytest.mark.parametrize("scale", [1.0, 0.01])  # ‖c‖ above 1 (clipped) and below
def test_mars_on_torch_equals_the_numpy_core(scale):
    values = {"lr": 0.01, "weight_decay": 0.1}
    params = tensors()
    ours = torch_path(TorchMARS(two_groups(params), **values), params, scale=scale)
    np.testing.assert_allclose(ours, numpy_path(MARS(**values), scale=scale),
                               rtol=1e-12, atol=1e-15)  # fmt: skip


def test_mars_on_torch_equals_pytorch_optimizer_on_one_tensor():
    po = pytest.importorskip("pytorch_optimizer")
    # one 2-D tensor: MARS' own path in the reference (its norm is per tensor; ours over all)
    made = []
    for make in (lambda p: TorchMARS(p, lr=0.01, weight_decay=0.1),
                 lambda p: po.MARS(p, lr=0.01, weight_decay=0.1)):  # fmt: skip
        p = torch.tensor(START[:6].reshape(2, 3).copy(), requires_grad=True)
        opt = make([p])
        path = []
        for t in range(STEPS):
            g = gradient(np.append(p.detach().numpy().ravel(), 0.0), t)[:6]
            p.grad = torch.tensor(g.reshape(2, 3))
            opt.step()
            path.append(p.detach().numpy().ravel().copy())
        made.append(np.array(path))
    np.testing.assert_allclose(made[0], made[1], rtol=1e-10, atol=1e-14)


def test_prodigy_on_torch_equals_the_numpy_core_and_pytorch_optimizer():
    params = tensors()
    ours = torch_path(TorchProdigy(two_groups(params), weight_decay=0.1), params)
    core = numpy_path(Prodigy(weight_decay=0.1))
    np.testing.assert_allclose(ours, core, rtol=PRODIGY_CORE_RTOL, atol=1e-14)
    po = pytest.importorskip("pytorch_optimizer")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # its sums d_numerator, d_de_nom: else float32
    try:
        params = tensors()
        reference = torch_path(po.Prodigy(params, lr=1.0, weight_decay=0.1), params)
    finally:
        torch.set_default_dtype(previous)
    np.testing.assert_allclose(ours, reference, rtol=PRODIGY_RTOL, atol=1e-14)
    assert ours[-1][0] != START[0]  # it moved


@pytest.mark.parametrize("kind", [TorchMARS, TorchProdigy])
def test_state_dict_resumes_bit_for_bit(kind):
    params = tensors()
    straight = torch_path(kind(two_groups(params)), params, steps=20)
    params = tensors()
    opt = kind(two_groups(params))
    torch_path(opt, params, steps=10)
    saved = copy.deepcopy(opt.state_dict())
    resumed = [p.detach().clone().requires_grad_() for p in params]
    again = kind(two_groups(resumed))
    again.load_state_dict(saved)
    np.testing.assert_array_equal(torch_path(again, resumed, steps=10, start=10), straight[10:])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="lr"):
        TorchMARS(tensors(), lr=-1.0)
    params = tensors()
    opt = TorchProdigy([{"params": [params[0]], "lr": 0.5}, {"params": [params[1]]}])
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="same"):
        opt.step()
    assert torch.equal(params[0].detach(), torch.tensor(START[:SPLIT]))
