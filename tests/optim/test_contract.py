"""The contract every optimizer keeps: many configurations in one call, dtype, any shape,
state that survives a checkpoint, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl

ALL = sorted(sl.OPTIMIZERS)


# A second value for each optimizer's first two numeric hyperparameters, to sweep over.
def _numeric(cls):
    return [n for n, f in cls.hyperparameters().items() if f.metadata["interval"] != "bool"]


@pytest.mark.parametrize("name", ALL)
def test_k_configurations_in_one_call_equal_k_single_runs(name, stream):
    cls = sl.OPTIMIZERS[name]
    base = cls()
    # Three configurations: defaults, and two with lr and another hyperparameter changed.
    names = [n for n in _numeric(cls) if n != "weight_decay"][:2]
    values = {n: np.array([getattr(base, n)] * 3, dtype=float) for n in names}
    values[names[0]][1:] *= [0.5, 2.0]
    if len(names) > 1:
        values[names[1]][2] = values[names[1]][2] * 0.9 + (0.01 if values[names[1]][2] == 0 else 0)
    batched = cls(**values)
    thetas = np.tile(stream.start, (3, 1))
    state = batched.init(thetas)
    for t in range(60):
        grads = np.stack([stream.gradient(row, t) for row in thetas])
        batched.step(thetas, grads, state)
    for k in range(3):
        single = cls(**{n: v[k] for n, v in values.items()})
        np.testing.assert_array_equal(thetas[k], stream.run(single, 60)[-1])


@pytest.mark.parametrize("layout", ["(K,)", "(K, 1)"])
def test_per_configuration_lr_shapes(layout):
    lr = np.array([0.1, 0.01])
    lr = lr if layout == "(K,)" else lr[:, None]
    theta = np.ones((2, 3))
    opt = sl.SGD(lr=lr)
    opt.step(theta, np.ones((2, 3)), opt.init(theta))
    np.testing.assert_allclose(theta, [[0.9] * 3, [0.99] * 3])


def test_lr_array_that_does_not_fit_theta_is_rejected():
    with pytest.raises(ValueError, match=r"lr of shape \(3,\).*theta has shape \(2, 5\)"):
        sl.Adam(lr=np.ones(3)).init(np.zeros((2, 5)))


@pytest.mark.parametrize("name", ALL)
def test_float32_in_float32_state_and_out(name, stream):
    opt = sl.make(name)
    theta = stream.start.astype(np.float32)
    state = opt.init(theta)
    for t in range(20):
        opt.step(theta, stream.gradient(theta.astype(float), t).astype(np.float32), state)
    assert theta.dtype == np.float32
    assert all(a.dtype == np.float32 for a in state.arrays().values() if a.shape == theta.shape)
    assert opt.step_size(state).dtype == np.float32
    # float32 follows the float64 run closely (it is the same algorithm, rounded).
    np.testing.assert_allclose(theta, stream.run(opt, 20)[-1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4)])
def test_theta_of_any_shape_equals_the_flat_run(name, shape):
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(shape)
    flat = theta.reshape(-1).copy()
    opt = sl.make(name, lr=0.01)
    state, flat_state = opt.init(theta), opt.init(flat)
    for _ in range(15):
        g = np.sin(3 * theta) + theta
        opt.step(theta, g, state)
        opt.step(flat, g.reshape(-1), flat_state)
    np.testing.assert_array_equal(theta.reshape(-1), flat)


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_10_save_load_10_equals_20_bit_for_bit(name, stream, tmp_path):
    opt = sl.make(name, lr=np.array([0.01, 0.002]))
    straight = np.tile(stream.start, (2, 1))
    resumed = straight.copy()
    state = opt.init(straight)
    for t in range(20):
        opt.step(straight, np.stack([stream.gradient(r, t) for r in straight]), state)
    state = opt.init(resumed)
    for t in range(10):
        opt.step(resumed, np.stack([stream.gradient(r, t) for r in resumed]), state)
    state.save(tmp_path / "state.npz", opt)
    del state
    loaded = sl.State.load(tmp_path / "state.npz", opt)
    assert loaded.t == 10
    for t in range(10, 20):
        opt.step(resumed, np.stack([stream.gradient(r, t) for r in resumed]), loaded)
    np.testing.assert_array_equal(resumed, straight)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, field, value, message",
    [
        ("adam", "lr", 0.0, r"lr must be in \(0, inf\), got 0.0"),
        ("adam", "lr", -1e-3, r"lr must be in \(0, inf\)"),
        ("adam", "lr", float("nan"), r"lr must be in \(0, inf\), got nan"),
        ("adam", "lr", "fast", r"lr must be a number in \(0, inf\), got 'fast'"),
        ("adam", "rho1", 1.0, r"rho1 must be in \[0, 1\), got 1.0"),
        ("adam", "rho2", -0.1, r"rho2 must be in \[0, 1\)"),
        ("adam", "eps", -1e-8, r"eps must be in \[0, inf\)"),
        ("adam", "eps_root", float("inf"), r"eps_root must be in \[0, inf\)"),
        ("adam", "amsgrad", "yes", r"amsgrad must be True or False, got 'yes'"),
        ("adam", "lr", np.array([0.1, -0.1]), r"lr must be in \(0, inf\), got -0.1"),
        ("adam", "lr", np.array([]), r"lr must be a number in \(0, inf\), got an empty array"),
        ("rmsprop", "rho", 1.5, r"rho must be in \[0, 1\)"),
        ("rmsprop", "momentum", 1.0, r"momentum must be in \[0, 1\)"),
        ("adagrad", "r0", -1.0, r"r0 must be in \[0, inf\)"),
        ("adagrad", "eps", -1.0, r"eps must be in \[0, inf\)"),
        ("adadelta", "eps_root", 0.0, r"eps_root must be in \(0, inf\)"),
        ("momentum", "rho", 1.0, r"rho must be in \[0, 1\)"),
        ("adamw", "weight_decay", -0.01, r"weight_decay must be in \[0, inf\)"),
        ("lion", "rho2", 1.0, r"rho2 must be in \[0, 1\)"),
        ("nadam", "momentum_decay", -1.0, r"momentum_decay must be in \[0, inf\)"),
    ],
)
def test_invalid_hyperparameters_name_the_parameter_and_the_range(name, field, value, message):
    with pytest.raises(ValueError, match=message):
        sl.make(name, **{field: value})


def test_every_numeric_hyperparameter_rejects_nan():
    for cls in sl.OPTIMIZERS.values():
        for field in _numeric(cls):
            with pytest.raises(ValueError, match=field):
                cls(**{field: float("nan")})


def test_unknown_names_list_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; choose one of: sgd, momentum"):
        sl.make("adamm")
    with pytest.raises(ValueError, match="adam has no hyperparameter beta1; its hyperparameters"):
        sl.make("adam", beta1=0.9)
    with pytest.raises(ValueError, match="adam has no preset 'jax'; available: seed, torch"):
        sl.Adam.like("jax")
    with pytest.raises(ValueError, match="nonfinite must be one of raise, skip, propagate"):
        sl.Adam(nonfinite="ignore")
    with pytest.raises(TypeError):
        sl.Adam(0.01)  # hyperparameters are keyword-only: no silent mix-ups
    with pytest.raises(ValueError, match="adam has no hyperparameter"):
        sl.Adam().replace(momentum=0.9)


def test_make_is_case_insensitive_and_takes_presets():
    assert (
        sl.make(" Adam ", preset="torch", lr=0.1).config() == sl.Adam.like("torch", lr=0.1).config()
    )


def test_shape_and_dtype_mismatches_name_both():
    opt = sl.Adam()
    theta = np.zeros(3)
    state = opt.init(theta)
    with pytest.raises(ValueError, match=r"grad has shape \(4,\) but theta has shape \(3,\)"):
        opt.step(theta, np.zeros(4), state)
    with pytest.raises(TypeError, match="grad has dtype float32 but theta has dtype float64"):
        opt.step(theta, np.zeros(3, np.float32), state)
    with pytest.raises(ValueError, match=r"state.s has shape \(3,\).*theta has shape \(2,\)"):
        opt.step(np.zeros(2), np.zeros(2), state)
    with pytest.raises(TypeError, match="theta must be a NumPy array"):
        opt.init([1.0, 2.0])
    with pytest.raises(TypeError, match="theta must have a floating dtype"):
        opt.init(np.array([1, 2]))
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="theta is read-only"):
        opt.init(frozen)
    with pytest.raises(ValueError, match="made by rmsprop.init, not by adam.init"):
        opt.step(theta, np.zeros(3), sl.RMSProp().init(theta))
    with pytest.raises(TypeError, match="state must come from adam.init"):
        opt.step(theta, np.zeros(3), {"t": 0})


@pytest.mark.parametrize("shape", [(4, 4), (17,), (30, 10)])  # as floats, then NumPy
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_a_nonfinite_anywhere_is_found_at_every_size_and_dtype(shape, dtype):
    opt = sl.Adam()
    theta = np.ones(shape, dtype=dtype)
    state = opt.init(theta)
    for bad in (np.nan, np.inf, -np.inf):
        grad = np.ones(shape, dtype=dtype)
        grad.flat[-1] = bad
        with pytest.raises(FloatingPointError, match="NaN or inf at step 1"):
            opt.step(theta, grad, state)
    opt.step(theta, np.full(shape, 100, dtype=dtype), state)  # finite: a step
    assert state.t == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_gradient_raise_is_the_default_and_changes_nothing(bad):
    opt = sl.Adam()
    theta = np.array([1.0, 2.0])
    state = opt.init(theta)
    opt.step(theta, np.array([0.5, 0.5]), state)
    before = (theta.copy(), state.s.copy(), state.r.copy(), state.t)
    with pytest.raises(FloatingPointError, match="NaN or inf at step 2"):
        opt.step(theta, np.array([bad, 0.5]), state)
    np.testing.assert_array_equal(theta, before[0])
    np.testing.assert_array_equal(state.s, before[1])
    np.testing.assert_array_equal(state.r, before[2])
    assert state.t == before[3]


def test_nonfinite_skip_leaves_everything_and_counts():
    opt = sl.Adam(nonfinite="skip")
    theta = np.array([1.0, 2.0])
    state = opt.init(theta)
    opt.step(theta, np.array([np.nan, 1.0]), state)
    np.testing.assert_array_equal(theta, [1.0, 2.0])
    assert (state.t, state.skipped) == (0, 1)
    opt.step(theta, np.array([1.0, 1.0]), state)
    assert state.t == 1 and np.all(theta < [1.0, 2.0])


def test_nonfinite_propagate_keeps_rows_independent():
    opt = sl.Adam(lr=np.array([0.1, 0.1]), nonfinite="propagate")
    theta = np.ones((2, 3))
    state = opt.init(theta)
    opt.step(theta, np.array([[np.nan, 1, 1], [1, 1, 1]]), state)
    assert np.isnan(theta[0, 0]) and np.isfinite(theta[0, 1:]).all()
    assert np.isfinite(theta[1]).all()


def test_state_file_errors(tmp_path):
    opt = sl.Adam()
    theta = np.zeros(2)
    path = tmp_path / "adam.npz"
    opt.init(theta).save(path, opt)
    with pytest.raises(ValueError, match="holds the state of 'adam', not of 'rmsprop'"):
        sl.State.load(path, sl.RMSProp())
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="is not a steplab optimizer state file"):
        sl.State.load(garbage)
    with pytest.raises(FileNotFoundError):
        sl.State.load(tmp_path / "missing.npz")
