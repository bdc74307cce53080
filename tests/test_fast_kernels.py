"""The fused numba step kernels give NumPy's numbers bit for bit (steplab.fast).

Both paths run the optimizer's one ``rule`` in float64: the reference is the same
optimizer with ``impl="numpy"`` on the same gradients; one case is also checked against
torch.optim.Adam(fused=True) directly.
"""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab import fast

pytest.importorskip("numba")  # the `test` extra installs it; CI always has it

N = 5000  # above the dispatch threshold
assert N >= fast.MIN_SIZE

CASES = [
    ("sgd", {}),
    ("sgd", {"weight_decay": 0.1}),
    ("momentum", {"weight_decay": 0.01}),
    ("nesterov", {}),
    ("adagrad", {}),
    ("adagrad", {"eps_root": 1e-3, "r0": 0.1}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("rmsprop", {"momentum": 0.5, "weight_decay": 0.01}),
    ("adadelta", {}),
    ("adam", {}),
    ("adam", {"amsgrad": True}),
    ("adam", {"bias_correction": False, "eps_hat": True, "eps": 1e-3}),
    ("adam", {"eps_hat": True, "eps": 1e-3, "weight_decay": 0.1}),
    ("adam", {"lr": sl.schedules.cosine_decay_schedule(0.01, 5)}),
    ("adamw", {}),
    ("adamax", {}),
    ("adamax", {"eps": 0.1}),
    ("nadam", {}),
    ("radam", {}),
    ("radam", {"eps_hat": False}),
    ("lion", {"weight_decay": 0.1}),
]
# ... and every other registered optimizer (a new module in steplab/optim) with its defaults
CASES += [(name, {}) for name in sl.OPTIMIZERS if name not in {n for n, _ in CASES}]
STEPS = 8  # RAdam switches to its rectified step at t = 6: both branches run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_fused_step_equals_numpy_bit_for_bit(name, options, dtype):
    fused, numpy = sl.make(name, impl="fused", **options), sl.make(name, impl="numpy", **options)
    rng = np.random.default_rng(7)
    theta = rng.standard_normal(N).astype(dtype)
    reference = theta.copy()
    state, reference_state = fused.init(theta), numpy.init(reference)
    for _ in range(STEPS):
        grad = rng.standard_normal(N).astype(dtype)
        fused.step(theta, grad, state)
        numpy.step(reference, grad, reference_state)
        assert (state.impl, reference_state.impl) == ("fused", "numpy")
    np.testing.assert_array_equal(theta, reference)
    assert theta.dtype == dtype
    assert state.t == reference_state.t == STEPS
    for key, moment in reference_state.arrays().items():
        np.testing.assert_array_equal(state.arrays()[key], moment)
    assert getattr(state, "mu_product", None) == getattr(reference_state, "mu_product", None)
    np.testing.assert_array_equal(fused.step_size(state), numpy.step_size(reference_state))


def test_auto_takes_the_kernel_for_large_arrays_only():
    opt = sl.Adam()
    for size, expected in ((2, "numpy"), (fast.MIN_SIZE - 1, "numpy"), (N, "fused")):
        theta = np.ones(size)
        state = opt.init(theta)
        opt.step(theta, np.ones(size), state)
        assert state.impl == expected, size


def test_fused_adam_matches_torch_fused_adam():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(N).astype(np.float32)
    opt = sl.Adam.like("torch", lr=1e-2, impl="fused")
    state = opt.init(theta)
    param = torch.nn.Parameter(torch.tensor(theta))
    torch_opt = torch.optim.Adam([param], lr=1e-2, fused=True)
    for _ in range(5):
        grad = rng.standard_normal(N).astype(np.float32)
        param.grad = torch.tensor(grad)
        torch_opt.step()
        opt.step(theta, grad, state)
    np.testing.assert_allclose(theta, param.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("why", "make_case"),
    [
        ("per configuration", lambda: (np.full((2, 1), 0.1), np.ones((2, N)))),
        ("C-contiguous", lambda: (0.1, np.ones((N, 2))[:, 0])),
        ("float16", lambda: (0.1, np.ones(N, dtype=np.float16))),
    ],
)
def test_uncovered_cases_take_numpy_or_say_why(why, make_case):
    lr, theta = make_case()
    opt = sl.Adam(lr=lr)
    state = opt.init(theta)
    opt.step(theta, np.ones_like(theta), state)
    assert state.t == 1 and state.impl == "numpy"
    strict = sl.Adam(lr=lr, impl="fused")
    with pytest.raises(ValueError, match=why):
        strict.step(theta, np.ones_like(theta), state)
    assert state.t == 1  # nothing changed


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
@pytest.mark.parametrize("policy", ["raise", "skip", "propagate"])
def test_nonfinite_gradients_follow_the_policy_on_the_fast_path(policy, bad):
    """The kernel checks ĝ in the same call as the step: nothing is written on NaN/inf."""
    opt = sl.Adam(nonfinite=policy, impl="fused")
    theta = np.ones(N, dtype=np.float32)
    state = opt.init(theta)
    grad = np.ones(N, dtype=np.float32)
    grad[123] = bad
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="NaN or inf"):
            opt.step(theta, grad, state)
    else:
        opt.step(theta, grad, state)
    if policy == "propagate":  # applied anyway: NaN in its own coordinate only
        assert not np.isfinite(theta[123]) and np.isfinite(np.delete(theta, 123)).all()
        assert state.t == 1
    else:  # theta and the state untouched
        assert np.all(theta == 1.0) and state.t == 0 and not state.s.any() and not state.r.any()
        assert getattr(state, "skipped", 0) == (policy == "skip")


def test_the_finiteness_check_sees_every_element_on_every_thread():
    grad = np.zeros(1 << 18)
    assert fast.all_finite(grad)
    for where in (0, grad.size // 2 + 7, grad.size - 1):
        grad[where] = -np.inf
        assert not fast.all_finite(grad)
        grad[where] = 0.0


def test_two_threads_give_the_same_numbers():
    opt = sl.RMSProp(centered=True, momentum=0.9)
    results = []
    size = 4 * fast.dispatch.PER_THREAD  # large enough to be shared between threads
    for count in (1, 2):
        fast.set_threads(count)
        theta = np.linspace(-1, 1, size)
        state = opt.init(theta)
        for t in range(3):
            opt.step(theta, np.cos(theta * (t + 1)), state)
        results.append(theta)
    fast.set_threads(None)
    np.testing.assert_array_equal(results[0], results[1])


def test_thread_settings_are_validated(monkeypatch):
    import numba

    with pytest.raises(ValueError, match="positive integer"):
        fast.set_threads(0)
    monkeypatch.setenv("STEPLAB_THREADS", "many")
    with pytest.raises(ValueError, match="STEPLAB_THREADS"):
        fast.threads()
    monkeypatch.setenv("STEPLAB_THREADS", "1")
    assert fast.threads() == 1
    monkeypatch.delenv("STEPLAB_THREADS")
    assert fast.threads() == numba.config.NUMBA_NUM_THREADS  # default: every core


def test_impl_is_validated():
    with pytest.raises(ValueError, match="impl must be one of auto, numpy, fused"):
        sl.Adam(impl="gpu")
