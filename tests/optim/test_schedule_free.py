"""Schedule-Free SGD and AdamW (NumPy core) against the authors' ``schedulefree`` package
and optax.contrib, step for step in float64, with the gradient fed back through the
iterates (each implementation follows its own path: an error anywhere grows)."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD, eval_params

STEPS = 100
RTOL = 1e-10


def close(ours, reference, rtol=RTOL):
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=1e-14)


def run_numpy(opt, stream, steps=STEPS):
    theta = stream.start.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, stream.gradient(theta, t), state)
        path.append(theta.copy())
    return np.array(path), eval_params(theta, state, opt.momentum())


CASES = [
    # (ours, schedulefree class name, its keyword arguments)
    (ScheduleFreeSGD(lr=0.05), "SGDScheduleFree", dict(lr=0.05)),
    (
        ScheduleFreeSGD(lr=0.05, rho=0.8, weight_decay=0.1, warmup_steps=10),
        "SGDScheduleFree",
        dict(lr=0.05, momentum=0.8, weight_decay=0.1, warmup_steps=10),
    ),
    (
        ScheduleFreeSGD(lr=0.05, poly_power=1.0, weight_lr_power=1.0, warmup_steps=5),
        "SGDScheduleFreeReference",
        dict(lr=0.05, r=1.0, weight_lr_power=1.0, warmup_steps=5),
    ),
    (ScheduleFreeAdamW(lr=0.05), "AdamWScheduleFree", dict(lr=0.05)),
    (
        ScheduleFreeAdamW(
            lr=0.05, rho1=0.95, rho2=0.99, eps=1e-6, weight_decay=0.1, warmup_steps=10
        ),
        "AdamWScheduleFree",
        dict(lr=0.05, betas=(0.95, 0.99), eps=1e-6, weight_decay=0.1, warmup_steps=10),
    ),
    (
        ScheduleFreeAdamW(lr=0.05, weight_decay=0.1, poly_power=2.0, warmup_steps=5),
        "AdamWScheduleFreeReference",
        dict(lr=0.05, weight_decay=0.1, r=2.0, warmup_steps=5),
    ),
]


@pytest.mark.parametrize(("ours", "name", "kwargs"), CASES)
def test_equals_the_schedulefree_package(stream, ours, name, kwargs):
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    p = torch.tensor(stream.start.copy(), requires_grad=True)
    reference = getattr(schedulefree, name)([p], **kwargs)
    reference.train()
    path = []
    for t in range(STEPS):
        p.grad = torch.tensor(stream.gradient(p.detach().numpy().copy(), t))
        reference.step()
        path.append(p.detach().numpy().copy())
    reference.eval()  # parameters at x
    ours_path, ours_x = run_numpy(ours, stream)
    close(ours_path, np.array(path))
    close(ours_x, p.detach().numpy())


def _optax_path(tx, stream, jnp, optax, contrib):
    params = jnp.asarray(stream.start)
    state = tx.init(params)
    path = []
    for t in range(STEPS):
        grads = jnp.asarray(stream.gradient(np.asarray(params), t))
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        path.append(np.asarray(params))
    return np.array(path), np.asarray(contrib.schedule_free_eval_params(state, params))


@pytest.mark.parametrize("warmup", [None])
@pytest.mark.parametrize("decay", [None, 0.1])
def test_equals_optax_contrib(stream, jax_x64, warmup, decay):
    jnp, optax, contrib = jax_x64
    sgd = contrib.schedule_free_sgd(0.05, warmup_steps=warmup, b1=0.8, weight_decay=decay)
    adamw = contrib.schedule_free_adamw(
        0.05, warmup_steps=warmup, b1=0.9, b2=0.99, weight_decay=decay or 0.0
    )
    extra = {"warmup_steps": warmup or 0, "weight_decay": decay or 0.0}
    for ours, tx in [
        (ScheduleFreeSGD(lr=0.05, rho=0.8, **extra), sgd),
        (ScheduleFreeAdamW(lr=0.05, rho2=0.99, **extra), adamw),
    ]:
        path, x = _optax_path(tx, stream, jnp, optax, contrib)
        ours_path, ours_x = run_numpy(ours, stream)
        close(ours_path, path)
        close(ours_x, x)


def test_optax_warms_up_z_one_step_late(stream, jax_x64):
    """Where the references disagree (docs/modern.md): with warm-up, optax's inner
    optimizer counts from 0, so z's first step has γ = 0 and step t uses γ(t−1), while the
    averaging weight uses γ(t). steplab follows the authors' package (γ(t) for both)."""
    jnp, optax, contrib = jax_x64
    tx = contrib.schedule_free_sgd(0.05, warmup_steps=10)
    params = jnp.asarray(stream.start)
    state = tx.init(params)
    _, state = tx.update(jnp.asarray(stream.gradient(stream.start, 0)), state, params)
    np.testing.assert_array_equal(np.asarray(state.z), stream.start)  # z did not move
    opt = ScheduleFreeSGD(lr=0.05, warmup_steps=10)
    theta = stream.start.copy()
    ours = opt.init(theta)
    opt.step(theta, stream.gradient(theta, 0), ours)
    close(ours.z, stream.start - 0.005 * stream.gradient(stream.start, 0))  # γ(1) = 0.05/10


@pytest.fixture
def jax_x64():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    from optax import contrib

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax.numpy, optax, contrib
    jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("cls", [ScheduleFreeSGD, ScheduleFreeAdamW])
def test_save_load_round_trip_is_bit_for_bit(stream, tmp_path, cls):
    opt = cls(lr=0.05, weight_decay=0.01, warmup_steps=4)
    straight = stream.start.copy()
    state = opt.init(straight)
    for t in range(20):
        opt.step(straight, stream.gradient(straight, t), state)
    theta = stream.start.copy()
    state = opt.init(theta)
    for t in range(10):
        opt.step(theta, stream.gradient(theta, t), state)
    state.save(tmp_path / "sf.npz", opt)
    theta = theta.copy()
    state = type(state).load(tmp_path / "sf.npz", opt)
    for t in range(10, 20):
        opt.step(theta, stream.gradient(theta, t), state)
    assert theta.tobytes() == straight.tobytes()
    assert state.weight_sum == opt.init(theta).weight_sum + state.weight_sum  # carried
    assert state.t == 20


def test_eval_and_train_params_are_inverse_and_the_average_is_x(stream):
    """x is the uniform average of z₁…z_t when all weights are equal (no warm-up)."""
    opt = ScheduleFreeSGD(lr=0.05, rho=0.7)
    theta = stream.start.copy()
    state = opt.init(theta)
    zs = []
    for t in range(30):
        opt.step(theta, stream.gradient(theta, t), state)
        zs.append(state.z.copy())
    x = opt.eval_params(theta, state)
    close(x, np.mean(zs, axis=0), rtol=1e-12)
    close(opt.train_params(x, state), theta, rtol=1e-12)
    close(theta, 0.3 * state.z + 0.7 * x, rtol=1e-12)  # y = (1 − β)z + βx


def test_eval_params_refuses_a_state_without_z(stream):
    from steplab.optim import Adam

    with pytest.raises(TypeError, match="Schedule-Free"):
        eval_params(stream.start, Adam().init(stream.start.copy()), 0.9)


@pytest.mark.parametrize(
    ("cls", "name", "value", "interval"),
    [
        (ScheduleFreeSGD, "rho", 0.0, "(0, 1)"),
        (ScheduleFreeSGD, "rho", 1.0, "(0, 1)"),
        (ScheduleFreeAdamW, "rho1", 0.0, "(0, 1)"),
        (ScheduleFreeAdamW, "lr", -1.0, "(0, inf)"),
        (ScheduleFreeAdamW, "warmup_steps", -1, "[0, inf)"),
    ],
)
def test_bad_hyperparameters_name_the_interval(cls, name, value, interval):
    with pytest.raises(ValueError, match=rf"{name} must be in \{interval[0]}"):
        cls(**{name: value})


@pytest.mark.parametrize("cls", [ScheduleFreeSGD, ScheduleFreeAdamW])
def test_fused_step_gives_the_numpy_bits(cls):
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    start = rng.standard_normal(5000)
    paths = []
    for impl in ("numpy", "fused"):
        opt = cls(lr=0.01, weight_decay=0.1, warmup_steps=3, impl=impl)
        theta = start.copy()
        state = opt.init(theta)
        for t in range(5):
            opt.step(theta, np.sin(theta + t), state)
        assert state.impl == impl
        paths.append(theta.tobytes() + state.z.tobytes())
    assert paths[0] == paths[1]
