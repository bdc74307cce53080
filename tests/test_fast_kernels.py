"""The fused numba step kernels give the readable ``_update``'s numbers (steplab.fast).

The reference is the readable NumPy path of the same optimizer, run on the same
gradients; one case is also checked against torch.optim.Adam(fused=True) directly.
"""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab import fast
from steplab.optim import base

pytest.importorskip("numba")  # the `test` extra installs it; CI always has it

N = 5000  # above the dispatch threshold
assert N >= base._FUSED_MIN_SIZE

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
    ("adamw", {}),
    ("adamax", {}),
    ("adamax", {"eps": 0.1}),
    ("nadam", {}),
    ("radam", {}),
    ("radam", {"eps_hat": False}),
    ("lion", {"weight_decay": 0.1}),
]
STEPS = 8  # RAdam switches to its rectified step at t = 6: both branches run


def _readable_step(opt, theta, grad, state, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(base, "_FUSED_MIN_SIZE", 10**18)  # never dispatch
        opt.step(theta, grad, state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_fused_step_matches_the_readable_reference(name, options, dtype, monkeypatch):
    opt = sl.make(name, **options)
    rng = np.random.default_rng(7)
    theta = rng.standard_normal(N).astype(dtype)
    reference = theta.copy()
    state, reference_state = opt.init(theta), opt.init(reference)
    for _ in range(STEPS):
        grad = rng.standard_normal(N).astype(dtype)
        assert fast.fused_step(opt, theta, grad, state)  # the fast path really ran
        _readable_step(opt, reference, grad, reference_state, monkeypatch)
    # Tight: a few ulps (the kernels divide where _update divides, except that Adam
    # multiplies by 1/(1 − ρᵗ)); atol covers coordinates that cancel to near 0, where a
    # one-ulp difference of a step of size ~lr = 1e-3 is a large relative one.
    rtol, atol = (1e-6, 1e-9) if dtype == np.float32 else (1e-14, 1e-18)
    np.testing.assert_allclose(theta, reference, rtol=rtol, atol=atol)
    assert theta.dtype == dtype
    assert state.t == reference_state.t == STEPS
    for key, moment in reference_state.arrays().items():
        np.testing.assert_allclose(state.arrays()[key], moment, rtol=rtol, atol=atol)
    assert getattr(state, "mu_product", None) == getattr(reference_state, "mu_product", None)


def test_step_dispatches_large_arrays_and_keeps_small_ones_readable(monkeypatch):
    calls = []
    original = fast.fused_step

    def spy(*args):
        calls.append(args[1].size)
        return original(*args)

    monkeypatch.setattr(fast, "fused_step", spy)
    opt = sl.Adam()
    for size in (2, N):
        theta = np.ones(size)
        opt.step(theta, np.ones(size), opt.init(theta))
    assert calls == [N]


def test_fused_adam_matches_torch_fused_adam():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(N).astype(np.float32)
    opt = sl.Adam.like("torch", lr=1e-2)
    state = opt.init(theta)
    param = torch.nn.Parameter(torch.tensor(theta))
    torch_opt = torch.optim.Adam([param], lr=1e-2, fused=True)
    for _ in range(5):
        grad = rng.standard_normal(N).astype(np.float32)
        param.grad = torch.tensor(grad)
        torch_opt.step()
        assert fast.fused_step(opt, theta, grad, state)
    np.testing.assert_allclose(theta, param.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("why", "make_case"),
    [
        ("per-configuration lr", lambda: (sl.Adam(lr=np.full((2, 1), 0.1)), np.ones((2, N)))),
        ("strided theta", lambda: (sl.Adam(), np.ones((N, 2))[:, 0])),
        ("float16", lambda: (sl.Adam(), np.ones(N, dtype=np.float16))),
    ],
)
def test_uncovered_cases_take_the_readable_path(why, make_case):
    opt, theta = make_case()
    state = opt.init(theta)
    assert not fast.fused_step(opt, theta, np.ones_like(theta), state)
    assert state.t == 0  # untouched: the readable path does the step
    opt.step(theta, np.ones_like(theta), state)
    assert state.t == 1


def test_a_subclass_is_never_fused():
    class MyAdam(sl.Adam):
        def _update(self, theta, g, state, hp):
            state.t += 1

    opt = MyAdam()
    theta = np.ones(N)
    state = opt.init(theta)
    opt.step(theta, np.ones(N), state)
    assert np.all(theta == 1.0)


@pytest.mark.parametrize("policy", ["raise", "skip", "propagate"])
def test_nonfinite_gradients_follow_the_policy_on_the_fast_path(policy):
    opt = sl.Adam(nonfinite=policy)
    theta = np.ones(N, dtype=np.float32)
    state = opt.init(theta)
    grad = np.ones(N, dtype=np.float32)
    grad[123] = np.nan
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="NaN or inf"):
            opt.step(theta, grad, state)
    else:
        opt.step(theta, grad, state)
    if policy == "propagate":  # applied anyway: NaN in its own coordinate only
        assert np.isnan(theta[123]) and np.isfinite(np.delete(theta, 123)).all()
        assert state.t == 1
    else:  # theta and the state untouched
        assert np.all(theta == 1.0) and state.t == 0 and not state.s.any()
        assert getattr(state, "skipped", 0) == (policy == "skip")


def test_two_threads_give_the_same_numbers():
    opt = sl.RMSProp(centered=True, momentum=0.9)
    results = []
    for count in (1, 2):
        fast.set_threads(count)
        theta = np.linspace(-1, 1, N)
        state = opt.init(theta)
        for t in range(3):
            opt.step(theta, np.cos(theta * (t + 1)), state)
        results.append(theta)
    fast.set_threads(None)
    np.testing.assert_array_equal(results[0], results[1])


def test_thread_settings_are_validated(monkeypatch):
    with pytest.raises(ValueError, match="positive integer"):
        fast.set_threads(0)
    monkeypatch.setenv("STEPLAB_THREADS", "many")
    with pytest.raises(ValueError, match="STEPLAB_THREADS"):
        fast.threads()
    monkeypatch.setenv("STEPLAB_THREADS", "1")
    assert fast.threads() == 1
