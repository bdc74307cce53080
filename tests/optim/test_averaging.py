"""EMA, SWA and Lookahead around any optimizer, against optax.ema, torch's AveragedModel and
optax.lookahead in float64; checkpoints; states of other wrappers refused."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.optim import SGD, Adam, AdamW
from steplab.optim.averaging import EMA, SWA, Lookahead
from steplab.optim.modifiers import Prodigy
from steplab.optim.schedule_free import ScheduleFreeSGD

STEPS = 60


def run(opt, stream, steps=STEPS):
    theta = stream.start.copy()
    state = opt.init(theta)
    thetas, averages = [], []
    for t in range(steps):
        opt.step(theta, stream.gradient(theta, t), state)
        thetas.append(theta.copy())
        if not isinstance(opt, SWA) or state.n_averaged:
            averages.append(opt.averaged(state))
    return np.array(thetas), np.array(averages), state


@pytest.fixture
def x64():
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("debias", [True, False])
def test_ema_equals_optax_ema_of_the_iterates(stream, x64, debias):
    import optax

    thetas, averages, _ = run(EMA(base=Adam(lr=0.05), decay=0.9, debias=debias), stream)
    plain, _, _ = run(EMA(base=Adam(lr=0.05), decay=0.5), stream)
    ema = optax.ema(0.9, debias=debias)
    state = ema.init(x64.numpy.zeros(6))
    expected = []
    for theta in thetas:
        value, state = ema.update(x64.numpy.asarray(theta), state)
        expected.append(np.asarray(value))
    np.testing.assert_allclose(averages, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(thetas, plain)  # EMA leaves the trajectory alone


def test_swa_equals_torch_averaged_model(stream):
    torch = pytest.importorskip("torch")
    thetas, averages, state = run(SWA(base=SGD(lr=0.01), start=10, every=3), stream)
    model = torch.nn.Linear(6, 1, bias=False).double()
    averaged = torch.optim.swa_utils.AveragedModel(model)
    expected = []
    for t, theta in enumerate(thetas, start=1):
        if t >= 10 and (t - 10) % 3 == 0:
            with torch.no_grad():
                model.weight.copy_(torch.tensor(theta)[None])
            averaged.update_parameters(model)
        if t >= 10:  # the average after each step, once there is one
            expected.append(averaged.module.weight.detach().numpy()[0].copy())
    assert state.n_averaged == int(averaged.n_averaged) == 17
    np.testing.assert_allclose(averages, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("k", [1, 5])
def test_lookahead_equals_optax_lookahead(stream, x64, k):
    import optax

    thetas, slows, _ = run(Lookahead(base=Adam(lr=0.05, eps=1e-8, eps_root=0.0),
                                     sync_period=k, slow_step_size=0.3), stream)  # fmt: skip
    tx = optax.lookahead(optax.adam(0.05), sync_period=k, slow_step_size=0.3)
    params = optax.LookaheadParams.init_synced(x64.numpy.asarray(stream.start))
    state = tx.init(params)
    fast, slow = [], []
    for t in range(STEPS):
        grads = x64.numpy.asarray(stream.gradient(np.asarray(params.fast), t))
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        fast.append(np.asarray(params.fast))
        slow.append(np.asarray(params.slow))
    np.testing.assert_allclose(thetas, fast, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(slows, slow, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "wrapper",
    [
        EMA(base=AdamW(lr=0.05), decay=0.9),
        SWA(base=Adam(lr=0.05), start=3, every=2),
        Lookahead(base=SGD(lr=0.01), sync_period=4),
        EMA(base=ScheduleFreeSGD(lr=0.05)),
        Lookahead(base=Prodigy()),
    ],
)
def test_checkpoint_round_trip_is_bit_for_bit(stream, tmp_path, wrapper):
    straight, _, end = run(wrapper, stream, steps=20)
    theta = stream.start.copy()
    state = wrapper.init(theta)
    for t in range(10):
        wrapper.step(theta, stream.gradient(theta, t), state)
    state.save(tmp_path / "w.npz", wrapper)
    state = type(state).load(tmp_path / "w.npz", wrapper)
    for t in range(10, 20):
        wrapper.step(theta, stream.gradient(theta, t), state)
    assert theta.tobytes() == straight[-1].tobytes()
    assert getattr(state, wrapper.FIELD).tobytes() == getattr(end, wrapper.FIELD).tobytes()


def test_a_state_of_another_wrapper_is_refused_before_anything_changes(stream):
    ema, lookahead = EMA(base=Adam()), Lookahead(base=Adam())
    theta = stream.start.copy()
    for state in (Adam().init(theta), lookahead.init(theta)):
        before = {k: np.copy(v) for k, v in vars(state).items()}
        with pytest.raises(ValueError, match="not to adam\\+ema"):
            ema.step(theta, stream.start, state)
        np.testing.assert_array_equal(theta, stream.start)
        for k, v in vars(state).items():
            np.testing.assert_array_equal(v, before[k])


def test_bad_settings_name_the_interval():
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        EMA(base=Adam(), decay=1.0)
    with pytest.raises(ValueError, match=r"slow_step_size must be in \[0, 1\]"):
        Lookahead(base=Adam(), slow_step_size=1.5)
    with pytest.raises(TypeError, match="wraps an optimizer"):
        SWA(base="adam")


def test_a_loaded_state_with_a_damaged_wrapper_field_is_refused(stream, tmp_path):
    """State.load checks the wrapper's own fields (its array, its counters, its name) and
    its base's moments alike: a NaN average, a negative count or another wrapper's file
    is a ValueError naming the file."""
    ema = EMA(base=Adam(lr=0.05), decay=0.9)
    theta = stream.start.copy()
    state = ema.init(theta)
    for t in range(3):
        ema.step(theta, stream.gradient(theta, t), state)
    for damage, message in (
        (lambda s: s.ema.__setitem__(0, np.nan), "ema must be an array"),
        (lambda s: setattr(s, "steps_seen", -1), "steps_seen must be an integer"),
        (lambda s: s.r.__setitem__(0, -1.0), "r holds negative values"),
    ):
        broken = type(state)(
            **{k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in vars(state).items()}
        )
        damage(broken)
        broken.save(tmp_path / "w.npz", ema)
        with pytest.raises(ValueError, match=f"w.npz is not a valid optimizer state.*{message}"):
            type(state).load(tmp_path / "w.npz", ema)
    state.save(tmp_path / "w.npz", ema)
    with pytest.raises(ValueError, match="not of 'adam\\+lookahead'"):
        type(state).load(tmp_path / "w.npz", Lookahead(base=Adam(lr=0.05)))
