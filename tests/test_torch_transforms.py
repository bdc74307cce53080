"""steplab.torch.transforms: each chain of the core's pieces, run by the torch optimizer
Chain, equals the NumPy core's chain (float64, 1e-12) and optax's (1e-10); state_dict round
trips are bit for bit; a state from another chain is refused before anything changes."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")
jax = pytest.importorskip("jax")

import steplab.torch as st  # noqa: E402
from steplab.optim import Adam  # noqa: E402
from steplab.optim import transforms as core  # noqa: E402
from steplab.torch import transforms as T  # noqa: E402

jnp = jax.numpy
START = {"w": np.array([[1.0, -2.0, 0.5], [3.0, -1.5, 0.25]]), "b": np.array([0.3, -0.7])}
CURVATURE = {"w": np.array([[0.01, 0.1, 1.0], [3.0, 10.0, 100.0]]), "b": np.array([2.0, 0.5])}
MASK = {"w": True, "b": False}


def gradient(params, t):
    rng = np.random.default_rng(1000 + t)
    return {k: CURVATURE[k] * params[k] + 0.5 * rng.standard_normal(params[k].shape) for k in START}


def flat(params):
    return np.concatenate([np.asarray(params["w"]).ravel(), np.asarray(params["b"])])


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def numpy_path(tx, steps):
    params = {k: v.copy() for k, v in START.items()}
    state = tx.init(params)
    path = []
    for t in range(steps):
        updates, state = tx.update(gradient(params, t), state, params)
        params = core.apply_updates(params, updates)
        path.append(flat(params))
    return np.array(path)


def optax_path(tx, steps):
    params = {k: jnp.asarray(v) for k, v in START.items()}
    state = tx.init(params)
    path = []
    for t in range(steps):
        grads = gradient({k: np.asarray(v) for k, v in params.items()}, t)
        updates, state = tx.update({k: jnp.asarray(v) for k, v in grads.items()}, state, params)
        params = optax.apply_updates(params, updates)
        path.append(flat(params))
    return np.array(path)


def torch_chain(pieces):
    params = {k: torch.tensor(v, requires_grad=True) for k, v in START.items()}
    return T.Chain(params, *pieces())


def torch_path(opt, steps, start=0):
    path = []
    for t in range(start, start + steps):
        grads = gradient({k: p.detach().numpy() for k, p in opt.params.items()}, t)
        for k, p in opt.params.items():
            p.grad = torch.tensor(grads[k])
        opt.step()
        path.append(flat({k: p.detach().numpy() for k, p in opt.params.items()}))
    return np.array(path)


ADAM = functools.partial(st.Adam.like, "optax")  # the core's Adam.like("optax") on torch


def numpy_adam(lr):
    return core.from_optimizer(Adam.like("optax", lr=lr))


# name: (torch pieces, NumPy core chain, optax chain)
CASES = {
    "clip_by_global_norm + adam": (
        lambda: [T.clip_by_global_norm(1.0), T.from_optimizer(ADAM, lr=0.05)],
        lambda: core.chain(core.clip_by_global_norm(1.0), numpy_adam(0.05)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)),
    ),
    "clip + sgd": (
        lambda: [T.clip(0.5), T.scale_by_learning_rate(0.01)],
        lambda: core.chain(core.clip(0.5), core.scale_by_learning_rate(0.01)),
        lambda: optax.chain(optax.clip(0.5), optax.sgd(0.01)),
    ),
    "L2 + torch.optim.Adam": (
        lambda: [T.add_decayed_weights(0.1), T.from_optimizer(torch.optim.Adam, lr=0.05)],
        lambda: core.chain(core.add_decayed_weights(0.1), numpy_adam(0.05)),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.05)),
    ),
    "decoupled decay = adamw": (
        lambda: [T.from_optimizer(ADAM, lr=0.05), T.decay_weights(0.05, 0.1)],
        lambda: core.chain(numpy_adam(0.05), core.decay_weights(0.05, 0.1)),
        lambda: optax.adamw(0.05, weight_decay=0.1),
    ),
    "decay masked to w": (
        lambda: [T.masked(T.add_decayed_weights(0.1), MASK), T.from_optimizer(ADAM, lr=0.05)],
        lambda: core.chain(core.masked(core.add_decayed_weights(0.1), MASK), numpy_adam(0.05)),
        lambda: optax.chain(optax.masked(optax.add_decayed_weights(0.1), MASK), optax.adam(0.05)),
    ),
    "adam on w only, by a mask function": (
        lambda: [
            T.masked(T.from_optimizer(ADAM, lr=0.05), lambda p: {k: k == "w" for k in p}),
            T.scale(0.5),
        ],
        lambda: core.chain(
            core.masked(numpy_adam(0.05), lambda p: {k: k == "w" for k in p}), core.scale(0.5)
        ),
        lambda: optax.chain(
            optax.masked(optax.adam(0.05), {"w": True, "b": False}), optax.scale(0.5)
        ),
    ),
    "accumulate 3, clip, adam": (
        lambda: [
            T.MultiSteps(T.chain(T.clip_by_global_norm(1.0), T.from_optimizer(ADAM, lr=0.05)), 3)
        ],
        lambda: core.MultiSteps(core.chain(core.clip_by_global_norm(1.0), numpy_adam(0.05)), 3),
        None,  # optax's differs by ~6e-10 on a dict of two arrays (see test_transforms.py)
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_the_numpy_core_and_optax(name):
    pieces, numpy_chain, optax_chain = CASES[name]
    ours = torch_path(torch_chain(pieces), 40)
    np.testing.assert_allclose(ours, numpy_path(numpy_chain(), 40), rtol=1e-12, atol=1e-15)
    if optax_chain is not None:
        np.testing.assert_allclose(ours, optax_path(optax_chain(), 40), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip_is_bit_for_bit(name):
    pieces = CASES[name][0]
    straight = torch_path(torch_chain(pieces), 20)
    first = torch_chain(pieces)
    torch_path(first, 10)
    saved = copy.deepcopy(first.state_dict())
    resumed = T.Chain(
        {
            k: torch.tensor(p.detach().numpy().copy(), requires_grad=True)
            for k, p in first.params.items()
        },
        *pieces(),
    )
    resumed.load_state_dict(saved)
    assert torch_path(resumed, 10, start=10)[-1].tobytes() == straight[-1].tobytes()


def snapshot(opt):
    return copy.deepcopy(opt.state_dict())


def same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (lambda: [T.clip(1.0), T.from_optimizer(ADAM, lr=0.05)], "belongs to chain\\(clip, "),
        (
            lambda: [T.clip_by_global_norm(1.0), T.from_optimizer(torch.optim.SGD, lr=0.1)],
            "from_optimizer\\(SGD\\)",
        ),
    ],
)
def test_a_state_from_another_chain_is_refused_before_anything_changes(other, message):
    opt = torch_chain(CASES["clip_by_global_norm + adam"][0])
    torch_path(opt, 3)
    before = snapshot(opt)
    foreign = torch_chain(other)
    torch_path(foreign, 2)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(foreign.state_dict())
    assert same(snapshot(opt), before)


def test_a_state_of_other_shapes_is_refused_before_anything_changes():
    pieces = CASES["accumulate 3, clip, adam"][0]
    opt = torch_chain(pieces)
    torch_path(opt, 4)
    saved = snapshot(opt)
    saved["state"][0][1]["w"] = torch.zeros(3, 2, dtype=torch.float64)  # the accumulated mean
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"state\[0\]\[1\]\.w: a tensor of shape \(2, 3\)"):
        opt.load_state_dict(saved)
    assert same(snapshot(opt), before)


def test_a_missing_gradient_is_named():
    opt = torch_chain(CASES["clip + sgd"][0])
    opt.params["w"].grad = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="parameters b have no gradient"):
        opt.step()


def test_bad_settings_name_the_interval_as_the_core_does():
    with pytest.raises(ValueError, match=r"max_norm must be in \(0, inf\)"):
        T.clip_by_global_norm(0.0)
    with pytest.raises(ValueError, match=r"every_k must be an integer in \[1, inf\)"):
        T.MultiSteps(T.clip(1.0), 0)
    with pytest.raises(TypeError, match="must come from steplab.torch.transforms"):
        T.chain(core.clip(1.0))


def test_works_as_a_torch_optimizer_on_a_module():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = T.Chain(
        model.named_parameters(),
        T.clip_by_global_norm(1.0),
        T.from_optimizer(torch.optim.SGD, lr=0.1),
    )
    x, y = torch.randn(32, 3), torch.randn(32, 1)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(30):
        last = opt.step(closure).item()
    assert last < 0.9 * first
    assert opt.param_groups[0]["lr"] == 0.1


def test_an_lr_scheduler_goes_on_the_inner_optimizer():
    opt = torch_chain(
        lambda: [T.clip_by_global_norm(1.0), T.from_optimizer(torch.optim.SGD, lr=0.1)]
    )
    scheduler = torch.optim.lr_scheduler.StepLR(opt.optimizers[0], step_size=1, gamma=0.5)
    before = {k: p.detach().clone() for k, p in opt.params.items()}
    for p in opt.params.values():
        p.grad = torch.full_like(p, 0.01)  # norm < 1: not clipped
    opt.step()
    scheduler.step()
    assert opt.param_groups[0]["lr"] == 0.05
    for k, p in opt.params.items():
        torch.testing.assert_close(p.detach(), before[k] - 0.1 * 0.01, rtol=1e-15, atol=0)
