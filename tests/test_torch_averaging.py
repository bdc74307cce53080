"""steplab.torch's EMA and Lookahead wrappers equal the NumPy core's around torch.optim.Adam
(float64, 1e-12); state_dict round trips; a state_dict of another wrapper is refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steplab.optim import Adam  # noqa: E402
from steplab.optim import averaging as core  # noqa: E402
from steplab.torch.averaging import EMA, Lookahead  # noqa: E402

START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25])


def gradient(theta, t):
    return np.array([0.01, 0.1, 1, 3, 10, 100]) * theta + np.sin(t + theta)


def torch_run(wrapper, steps, p=None, start=0):
    p = wrapper.params[0]
    path, averages = [], []
    for t in range(start, start + steps):
        p.grad = torch.tensor(gradient(p.detach().numpy().copy(), t))
        wrapper.step()
        path.append(p.detach().numpy().copy())
        averages.append(wrapper.averaged()[0].numpy().copy())
    return np.array(path), np.array(averages)


def numpy_run(wrapper, steps):
    theta = START.copy()
    state = wrapper.init(theta)
    path, averages = [], []
    for t in range(steps):
        wrapper.step(theta, gradient(theta, t), state)
        path.append(theta.copy())
        averages.append(wrapper.averaged(state))
    return np.array(path), np.array(averages)


def make(cls, **settings):
    p = torch.tensor(START.copy(), requires_grad=True)
    return cls(torch.optim.Adam([p], lr=0.05), **settings)


CASES = [
    (EMA, core.EMA, dict(decay=0.9, debias=True)),
    (EMA, core.EMA, dict(decay=0.9, debias=False)),
    (Lookahead, core.Lookahead, dict(sync_period=4, slow_step_size=0.3)),
]


@pytest.mark.parametrize(("cls", "numpy_cls", "settings"), CASES)
def test_equals_the_numpy_core(cls, numpy_cls, settings):
    path, averages = torch_run(make(cls, **settings), 40)
    base = Adam.like("torch", lr=0.05)
    numpy_path, numpy_averages = numpy_run(numpy_cls(base=base, **settings), 40)
    np.testing.assert_allclose(path, numpy_path, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(averages, numpy_averages, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("cls", "numpy_cls", "settings"), CASES)
def test_state_dict_round_trip_is_bit_for_bit(cls, numpy_cls, settings):
    straight, straight_averages = torch_run(make(cls, **settings), 20)
    wrapper = make(cls, **settings)
    torch_run(wrapper, 10)
    saved = copy.deepcopy(wrapper.state_dict())
    q = torch.tensor(wrapper.params[0].detach().numpy().copy(), requires_grad=True)
    fresh = cls(torch.optim.Adam([q], lr=0.05), **settings)
    fresh.load_state_dict(saved)
    path, averages = torch_run(fresh, 10, start=10)
    assert path[-1].tobytes() == straight[-1].tobytes()
    assert averages[-1].tobytes() == straight_averages[-1].tobytes()


def test_a_state_dict_of_another_wrapper_is_refused():
    ema, lookahead = make(EMA, decay=0.9), make(Lookahead)
    before = [b.clone() for b in ema.buffers]
    with pytest.raises(ValueError, match="belongs to adam\\+lookahead, not to adam\\+ema"):
        ema.load_state_dict(lookahead.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(before, ema.buffers, strict=True))


def test_bad_settings_name_the_interval():
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        make(EMA, decay=1.0)
