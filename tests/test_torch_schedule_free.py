"""steplab.torch's Schedule-Free optimizers: the NumPy core's bits, the schedulefree
package's steps, the train/eval switch and its guards, BatchNorm at x, state_dict."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")

from steplab.optim import schedule_free as core  # noqa: E402
from steplab.torch.schedule_free import (  # noqa: E402
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
    update_bn,
)

CURVATURES = np.array([0.01, 0.1, 1.0, 3.0, 10.0, 100.0])
START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25])


def gradient(theta, t):
    return CURVATURES * theta + 0.3 * np.random.default_rng(1000 + t).standard_normal(6)


def torch_path(opt_factory, steps, start=START):
    p = torch.tensor(start.copy(), requires_grad=True)
    opt = opt_factory([p])
    opt.train()
    path = []
    for t in range(steps):
        p.grad = torch.tensor(gradient(p.detach().numpy().copy(), t))
        opt.step()
        path.append(p.detach().numpy().copy())
    opt.eval()
    return np.array(path), p.detach().numpy().copy(), opt


def numpy_path(opt, steps):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path), opt.eval_params(theta, state)


HYPER = [
    (
        ScheduleFreeSGD,
        dict(lr=0.05, rho=0.8, weight_decay=0.1, warmup_steps=10),
        "SGDScheduleFree",
        dict(lr=0.05, momentum=0.8, weight_decay=0.1, warmup_steps=10),
    ),
    (
        ScheduleFreeAdamW,
        dict(lr=0.05, rho2=0.99, weight_decay=0.1, warmup_steps=10),
        "AdamWScheduleFree",
        dict(lr=0.05, betas=(0.9, 0.99), weight_decay=0.1, warmup_steps=10),
    ),
]


@pytest.mark.parametrize(("cls", "ours", "name", "theirs"), HYPER)
def test_equals_the_numpy_core_and_schedulefree(cls, ours, name, theirs):
    path, x, _ = torch_path(lambda p: cls(p, **ours), 100)
    numpy, numpy_x = numpy_path(cls.core_type(**ours), 100)
    # 1e-12, not bits: torch's vectorized float64 sqrt is not always correctly rounded
    # (AVX-512 CPU: 1273 of 100000 random values differ from NumPy's by an ulp)
    np.testing.assert_allclose(path, numpy, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x, numpy_x, rtol=1e-12, atol=1e-15)
    reference, reference_x, _ = torch_path(lambda p: getattr(schedulefree, name)(p, **theirs), 100)
    np.testing.assert_allclose(path, reference, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(x, reference_x, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cls", [ScheduleFreeSGD, ScheduleFreeAdamW])
def test_state_dict_round_trip_is_bit_for_bit(cls):
    straight, _, _ = torch_path(lambda p: cls(p, lr=0.05, warmup_steps=4), 20)
    p = torch.tensor(START.copy(), requires_grad=True)
    opt = cls([p], lr=0.05, warmup_steps=4)
    for t in range(10):
        p.grad = torch.tensor(gradient(p.detach().numpy().copy(), t))
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    q = torch.tensor(p.detach().numpy().copy(), requires_grad=True)
    opt = cls([q], lr=0.05, warmup_steps=4)
    opt.load_state_dict(saved)
    for t in range(10, 20):
        q.grad = torch.tensor(gradient(q.detach().numpy().copy(), t))
        opt.step()
    assert q.detach().numpy().tobytes() == straight[-1].tobytes()


def test_eval_moves_to_x_and_train_back_to_y():
    path, x, opt = torch_path(lambda p: ScheduleFreeSGD(p, lr=0.05), 30)
    p = opt.param_groups[0]["params"][0]
    assert not opt.training
    opt.eval()  # idempotent
    np.testing.assert_array_equal(p.detach().numpy(), x)
    opt.train()
    assert opt.training
    np.testing.assert_allclose(p.detach().numpy(), path[-1], rtol=1e-12)


def test_a_step_in_eval_mode_is_refused():
    _, _, opt = torch_path(lambda p: ScheduleFreeAdamW(p), 3)
    with pytest.raises(RuntimeError, match=r"step\(\) was called while the optimizer is in eval"):
        opt.step()


def test_watch_catches_a_model_in_the_other_mode():
    model = torch.nn.Linear(3, 1)
    opt = ScheduleFreeAdamW(model.parameters())
    handle = opt.watch(model)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    model.eval()  # forgot opt.eval(): the model would be evaluated at y
    with pytest.raises(
        RuntimeError, match="model runs in eval mode while the optimizer is in train"
    ):
        model(torch.ones(1, 3))
    opt.eval()
    model(torch.ones(1, 3))  # both in eval mode: fine
    model.train()  # forgot opt.train(): gradients would be taken at x
    with pytest.raises(
        RuntimeError, match="model runs in train mode while the optimizer is in eval"
    ):
        model(torch.ones(1, 3))
    handle.remove()
    model(torch.ones(1, 3))


def test_update_bn_measures_the_statistics_at_x():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1)
    )
    data = [torch.randn(16, 4) for _ in range(5)]
    opt = ScheduleFreeSGD(model.parameters(), lr=0.05)
    opt.watch(model)
    for batch in data * 3:
        opt.zero_grad()
        ((model(batch)[:, 0] - 3 * batch.sum(1) - 5) ** 2).mean().backward()
        opt.step()
    opt.eval()
    at_x = copy.deepcopy(model)  # parameters at x
    opt.train()
    model_at_y = copy.deepcopy(model)
    update_bn(data, model, opt)
    assert not model.training and not opt.training
    features = torch.cat([at_x[0](b) for b in data]).detach()
    np.testing.assert_allclose(
        model[1].running_mean.numpy(), features.mean(0).numpy(), rtol=1e-5, atol=1e-6
    )
    # BatchNorm averages each batch's (unbiased) variance, with equal weights
    variances = torch.stack([at_x[0](b).var(0, unbiased=True) for b in data]).detach()
    np.testing.assert_allclose(model[1].running_var.numpy(), variances.mean(0).numpy(), rtol=1e-5)
    assert not np.allclose(
        model[1].running_mean.numpy(),  # at y they would differ
        torch.cat([model_at_y[0](b) for b in data]).mean(0).detach().numpy(),
        rtol=1e-3,
    )
    model(data[0])  # the watch hook is back on, and both are in eval mode
    assert model[1].momentum == 0.1  # restored


def test_float32_parameters_stay_float32():
    p = torch.zeros(4, requires_grad=True)
    opt = ScheduleFreeAdamW([p], lr=0.1)
    p.grad = torch.ones(4)
    opt.step()
    assert p.dtype == torch.float32 and opt.state[p]["z"].dtype == torch.float32
    assert torch.all(p < 0)


def test_bad_hyperparameters_name_the_interval():
    with pytest.raises(ValueError, match=r"rho must be in \(0, 1\)"):
        ScheduleFreeSGD([torch.zeros(2, requires_grad=True)], rho=1.0)
    with pytest.raises(ValueError, match=r"lr must be in \(0, inf\)"):
        ScheduleFreeAdamW([{"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0}])


def test_the_core_alias_is_the_numpy_class():
    assert ScheduleFreeSGD.core_type is core.ScheduleFreeSGD
