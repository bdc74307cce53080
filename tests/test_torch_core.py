"""steplab.torch equals the NumPy core: every optimizer, every preset, float64, 120 steps.

Both sides start from the same θ and each computes its own gradient from its own θ
(a noisy quadratic), so any difference in an update would grow, not hide.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import steplab as sl  # noqa: E402
import steplab.torch as st  # noqa: E402

STEPS = 120
SHAPES = [(3, 4), (5,)]

CASES = [
    (name, preset, {})
    for name, cls in st.OPTIMIZERS.items()
    for preset in ["seed", *cls.core.PRESETS]
] + [
    # options beyond the presets
    ("adam", "seed", {"amsgrad": True}),
    ("adam", "seed", {"bias_correction": False}),
    ("adam", "seed", {"weight_decay": 0.1}),
    ("adamw", "torch", {"amsgrad": True, "weight_decay": 0.2}),
    ("rmsprop", "torch", {"centered": True}),
    ("rmsprop", "seed", {"momentum": 0.5, "r0": 0.1}),
    ("rmsprop", "torch", {"centered": True, "momentum": 0.9, "weight_decay": 0.01}),
    ("adagrad", "seed", {"eps_root": 1e-3, "r0": 0.5, "weight_decay": 0.1}),
    ("nesterov", "seed", {"weight_decay": 0.3}),
    ("lion", "seed", {"weight_decay": 0.5, "lr": 0.01}),
    ("radam", "optax", {"rho2": 0.9}),  # ρₜ > 5 after a few steps: both branches
    ("radam", "torch", {"rho2": 0.9}),
    ("adopt", "seed", {"clipping": False, "weight_decay": 0.1}),
    ("ademamix", "seed", {"warmup_steps": 4.0, "weight_decay": 0.1}),
    ("schedule_free_sgd", "seed", {"weight_decay": 0.1, "warmup_steps": 3.0, "lr": 0.1}),
    ("schedule_free_adamw", "seed", {"weight_decay": 0.1, "poly_power": 1.0}),
]


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    thetas = [rng.normal(size=shape) for shape in SHAPES]
    targets = [rng.normal(size=shape) for shape in SHAPES]
    curvature = [rng.uniform(0.1, 3.0, size=shape) for shape in SHAPES]
    noise = [[0.3 * rng.normal(size=shape) for shape in SHAPES] for _ in range(STEPS)]
    return thetas, targets, curvature, noise


def _gradient(theta, target, curvature, noise):
    return curvature * (theta - target) + noise  # works for arrays and tensors alike


def _run_numpy(opt, problem, sign=1.0):
    thetas, targets, curvature, noise = problem
    thetas = [t.copy() for t in thetas]
    states = [opt.init(t) for t in thetas]
    for k in range(STEPS):
        for i, theta in enumerate(thetas):
            grad = sign * _gradient(theta, targets[i], curvature[i], noise[k][i])
            opt.step(theta, grad, states[i])
    return thetas, states


def _run_torch(opt_factory, problem, sign=1.0):
    thetas, targets, curvature, noise = problem
    params = [torch.nn.Parameter(torch.tensor(t)) for t in thetas]
    opt = opt_factory(params)
    for k in range(STEPS):
        opt.zero_grad()
        for i, p in enumerate(params):
            target, c, n = (torch.tensor(a[i]) for a in (targets, curvature, noise[k]))
            p.grad = sign * _gradient(p.detach(), target, c, n)
        opt.step()
    return params, opt


def _assert_same(numpy_thetas, numpy_states, params, opt):
    for theta, state, p in zip(numpy_thetas, numpy_states, params, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-10, atol=1e-12)
        torch_state = opt.state[p]
        assert torch_state["t"] == state.t
        for key, array in state.arrays().items():
            value = torch_state[key]
            value = value.numpy() if torch.is_tensor(value) else value
            np.testing.assert_allclose(value, array, rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize(("name", "preset", "overrides"), CASES)
def test_equals_numpy_core(name, preset, overrides):
    problem = _problem()
    core = sl.make(name, preset=preset, **overrides)
    numpy_thetas, numpy_states = _run_numpy(core, problem)
    params, opt = _run_torch(lambda ps: st.make(name, ps, preset=preset, **overrides), problem)
    # the run moved: a no-op optimizer would not pass
    assert not np.allclose(numpy_thetas[0], problem[0][0], atol=1e-4)
    _assert_same(numpy_thetas, numpy_states, params, opt)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "lion"])
def test_maximize_is_descent_on_the_negated_gradient(name):
    problem = _problem(1)
    numpy_thetas, numpy_states = _run_numpy(sl.make(name), problem, sign=1.0)
    params, opt = _run_torch(lambda ps: st.make(name, ps, maximize=True), problem, sign=-1.0)
    _assert_same(numpy_thetas, numpy_states, params, opt)


def test_every_core_optimizer_has_a_torch_class_with_its_names_and_defaults():
    assert list(st.OPTIMIZERS) == list(sl.OPTIMIZERS)
    for name, cls in st.OPTIMIZERS.items():
        assert cls.core is sl.OPTIMIZERS[name]
        assert cls.__name__ == sl.OPTIMIZERS[name].__name__
        opt = cls([torch.nn.Parameter(torch.zeros(2))])
        core = sl.OPTIMIZERS[name]()
        for hp in cls.hyperparameters():
            assert opt.defaults[hp] == getattr(core, hp), (name, hp)


def test_param_groups_with_different_hyperparameters_equal_separate_core_optimizers():
    problem = _problem(2)
    core_a, core_b = sl.Adam(lr=0.01), sl.Adam(lr=0.05, rho1=0.5, weight_decay=0.1)
    thetas, targets, curvature, noise = problem
    ref = [t.copy() for t in thetas]
    states = [core_a.init(ref[0]), core_b.init(ref[1])]
    params = [torch.nn.Parameter(torch.tensor(t)) for t in thetas]
    opt = st.Adam(
        [
            {"params": [params[0]]},
            {"params": [params[1]], "lr": 0.05, "rho1": 0.5, "weight_decay": 0.1},
        ],
        lr=0.01,
    )
    for k in range(STEPS):
        for i, core in enumerate((core_a, core_b)):
            core.step(ref[i], _gradient(ref[i], targets[i], curvature[i], noise[k][i]), states[i])
            p = params[i]
            p.grad = _gradient(
                p.detach(), *(torch.tensor(a[i]) for a in (targets, curvature, noise[k]))
            )
        opt.step()
    for theta, p in zip(ref, params, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_nonfinite_check_passes_finite_gradients_whose_sum_overflows(policy):
    """The check sums each gradient (one read) and looks element by element only when the
    sum is not finite: finite values whose sum overflows must still pass; a NaN, +inf or
    -inf anywhere must not."""
    big = torch.full((4, 3), 3e38, dtype=torch.float32)
    assert not torch.isfinite(big.sum())  # the sum overflows
    p = torch.nn.Parameter(torch.zeros(4, 3))
    p.grad = big
    opt = st.SGD([p], lr=1e-40, nonfinite=policy)
    opt.step()
    assert opt.state[p]["t"] == 1 and "skipped" not in opt.state[p]
    for bad in (float("nan"), float("inf"), -float("inf")):
        q = torch.nn.Parameter(torch.zeros(4, 3))
        q.grad = torch.ones(4, 3)
        q.grad[2, 1] = bad
        opt = st.SGD([q], lr=0.1, nonfinite=policy)
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="NaN or inf"):
                opt.step()
        else:
            opt.step()
            assert opt.state[q]["skipped"] == 1
        assert torch.equal(q, torch.zeros(4, 3))
