"""Exactness by construction: one rule, every path, the same bits.

NumPy's whole-array step, numba's fused kernel and the sweep kernel all run the
optimizer's single ``rule`` in the same arithmetic (float32 for float32 arrays, float64
for float64); so K configurations in one call equal K single runs, whichever path each
side takes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import pytest

import steplab as sl
from steplab import fast
from steplab.optim.base import Optimizer, hyper

numba = pytest.importorskip("numba")  # the `test` extra installs it; CI always has it

# Every optimizer with every option that changes its arithmetic.
CASES = [
    ("sgd", {}),
    ("sgd", {"weight_decay": 0.1}),
    ("momentum", {}),
    ("nesterov", {"weight_decay": 0.01}),
    ("adagrad", {"eps_root": 1e-3, "r0": 0.1}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("adadelta", {}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("adam", {"bias_correction": False, "eps_hat": True, "eps": 1e-3}),
    ("adam", {"lr": sl.schedules.inverse_sqrt_schedule(0.01)}),
    ("adamw", {}),
    ("adamax", {"eps": 0.1}),
    ("nadam", {}),
    ("nadam", {"lr": sl.schedules.cosine_decay_schedule(0.01, 20)}),  # schedule + running Πμ
    ("radam", {}),
    ("radam", {"eps_hat": False}),
    ("lion", {"weight_decay": 0.1}),
    ("adopt", {}),
    ("adopt", {"clipping": False}),
    ("ademamix", {}),
    ("ademamix", {"warmup_steps": 5.0, "weight_decay": 0.1}),
    ("schedule_free_sgd", {}),
    ("schedule_free_sgd", {"weight_decay": 0.1, "warmup_steps": 3.0}),  # the generic L2
    ("schedule_free_adamw", {}),
    ("schedule_free_adamw", {"weight_decay": 0.1, "poly_power": 1.0}),  # λ·y in its rule
]
# ... and every other registered optimizer (a new module in steplab/optim) with its defaults
CASES += [(name, {}) for name in sl.OPTIMIZERS if name not in {n for n, _ in CASES}]
IDS = [f"{n}-{'-'.join(o)}" for n, o in CASES]


def _gradient(theta: np.ndarray, t: int) -> np.ndarray:
    """Row-wise: a curved bowl plus noise that depends on the row's own values only."""
    return (np.cos(3 * theta + t) + 0.5 * theta).astype(theta.dtype)


def _numeric(cls) -> list[str]:
    return [n for n, f in cls.hyperparameters().items() if f.metadata["interval"] != "bool"]


def _configurations(name: str, options: dict, K: int) -> dict[str, np.ndarray]:
    """K values of the first numeric hyperparameters that the options leave alone."""
    cls = sl.OPTIMIZERS[name]
    base = cls(**options)
    free = [n for n in _numeric(cls) if n not in options and n != "weight_decay"][:2]
    values = {}
    for j, n in enumerate(free):
        spread = np.linspace(0.5, 1.0, K) if j == 0 else np.linspace(0.9, 1.0, K)
        values[n] = getattr(base, n) * spread
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("d", [7, fast.MIN_SIZE + 5], ids=["below", "above"])
def test_k_configurations_equal_k_single_runs(name, options, dtype, d):
    """Batched (per-configuration arrays: NumPy) == single runs (above the threshold: the
    fused kernel; below: NumPy), bit for bit, on both sides of the size threshold."""
    K, steps = 3, 7
    values = _configurations(name, options, K)
    rng = np.random.default_rng(1)
    start = rng.standard_normal((K, d)).astype(dtype)
    batched = sl.make(name, **options, **values)
    thetas = start.copy()
    state = batched.init(thetas)
    for t in range(steps):
        batched.step(thetas, _gradient(thetas, t), state)
    for k in range(K):
        single = sl.make(name, **options, **{n: v[k] for n, v in values.items()})
        theta = start[k].copy()
        single_state = single.init(theta)
        for t in range(steps):
            single.step(theta, _gradient(theta, t), single_state)
        assert single_state.impl == ("fused" if d >= fast.MIN_SIZE else "numpy")
        np.testing.assert_array_equal(thetas[k], theta)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_square_k_equals_d(name, options):
    """(K, d) with K = d: a hyperparameter applied along the wrong axis would still run."""
    K = d = 65  # 4225 elements: the fused kernel for scalar hyperparameters
    values = _configurations(name, options, K)
    start = np.random.default_rng(2).standard_normal((K, d))
    batched = sl.make(name, **options, **values)
    thetas = start.copy()
    state = batched.init(thetas)
    for t in range(4):
        batched.step(thetas, _gradient(thetas, t), state)
    for k in (0, K // 2, K - 1):
        single = sl.make(name, **options, **{n: v[k] for n, v in values.items()})
        theta = start[k].copy()
        single_state = single.init(theta)
        for t in range(4):
            single.step(theta, _gradient(theta, t), single_state)
        np.testing.assert_array_equal(thetas[k], theta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["adam", "nadam", "radam", "rmsprop"])
def test_large_arrays_fused_equals_numpy(name, dtype):
    n = 150_000  # shared between threads
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(n).astype(dtype)
    reference = theta.copy()
    fused, numpy = sl.make(name, impl="fused"), sl.make(name, impl="numpy")
    state, reference_state = fused.init(theta), numpy.init(reference)
    for t in range(7):
        fused.step(theta, _gradient(theta, t), state)
        numpy.step(reference, _gradient(reference, t), reference_state)
    np.testing.assert_array_equal(theta, reference)


def test_the_reproducer_from_the_issue():
    """41 seeds in one call (4100 elements: fused) == seed 0 alone (100: NumPy). The issue
    ran 50 seeds for 200 steps; 20 steps already differed by an ulp before (the problem's
    data-set loss makes each step slow)."""
    p = sl.problems.get("quadratic_deep")
    many = sl.minimize(p, sl.Adam(lr=0.01), steps=20, seed=list(range(41)))
    one = sl.minimize(p, sl.Adam(lr=0.01), steps=20, seed=0)
    assert many[0].config["impl"] == "fused" and one.config["impl"] == "numpy"
    np.testing.assert_array_equal(many[0].x, one.x)
    assert many[0].final_loss == one.final_loss


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_sweep_kernel_equals_single_runs(name, options):
    """fast.sweep on Rosenbrock: each configuration is optimizer.step on its own, with
    every numeric hyperparameter different per configuration (K = 2 × steps, so that a
    per-configuration value taken for a per-step one cannot pass by its shape)."""
    K, steps = 24, 12
    cls = sl.OPTIMIZERS[name]
    free = [n for n in _numeric(cls) if n not in options and n != "weight_decay"]
    base = cls(**options)
    values = {n: (getattr(base, n) or 1e-3) * np.linspace(0.5, 1.0, K) for n in free}
    X0 = np.random.default_rng(4).uniform(-1.5, 1.5, (K, 2))
    x, losses = fast.sweep("rosenbrock", sl.make(name, **options, **values), X0, steps)
    problem = sl.problems.get("rosenbrock")
    for k in range(K):
        # a sweep's rows propagate NaN/inf on their own (SGD diverges on some of these)
        hyper = {n: v[k] for n, v in values.items()}
        single = sl.make(name, **options, **hyper, nonfinite="propagate")
        theta = X0[k].copy()
        state = single.init(theta)
        with np.errstate(all="ignore"):
            for _ in range(steps):
                single.step(theta, problem.g(theta[None])[0], state)
            np.testing.assert_array_equal(x[k], theta)
            np.testing.assert_array_equal(losses[k], problem.f(theta[None])[0])


@pytest.mark.parametrize(
    ("made", "used", "moments"),
    [
        (sl.Adam(), sl.Adam(amsgrad=True), "r, s.*keeps r, r_max, s"),
        (sl.Adam(amsgrad=True), sl.Adam(), "r, r_max, s.*keeps r, s"),
        (sl.RMSProp(), sl.RMSProp(centered=True), "holds the moments r,.*keeps m, r"),
        (sl.RMSProp(momentum=0.9), sl.RMSProp(), "holds the moments b, r,.*keeps r"),
    ],
)
def test_a_state_from_other_options_is_refused_before_anything_changes(made, used, moments):
    for impl in ("numpy", "fused"):
        theta = np.ones(5000)
        state = made.init(theta)
        made.step(theta, np.ones(5000), state)
        before = theta.copy(), {k: v.copy() for k, v in state.arrays().items()}, state.t
        with pytest.raises(ValueError, match=moments):
            used.replace(impl=impl).step(theta, np.ones(5000), state)
        np.testing.assert_array_equal(theta, before[0])
        for key, value in before[1].items():
            np.testing.assert_array_equal(getattr(state, key), value)
        assert state.t == before[2]


# -- a new optimizer is one rule plus its metadata -------------------------------------


class SignumState(NamedTuple):
    t: int
    m: Any  # momentum


def signum_step_scalars(ops, hp, t, state):
    return {"warmup": 1 - ops.pow(hp.rho, t)}  # a per-step scalar, as 1 − ρᵗ in Adam


def signum_rule(ops, hp, theta, g, m):
    m = hp.rho * m + (1 - hp.rho) * g  # momentum
    theta = theta - hp.lr * hp.warmup * ops.sign(m)  # a step of ±α(1 − ρᵗ)
    return theta, m


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Signum(Optimizer):
    """Signum (Bernstein et al., 2018) with a warm-up: θ ← θ − α(1 − ρᵗ)·sign(m)."""

    name = "signum"
    state_type = SignumState
    rule = staticmethod(signum_rule)
    step_scalars = staticmethod(signum_step_scalars)

    lr: float = hyper(0.01, "(0, inf)", "step size α")
    rho: float = hyper(0.9, "[0, 1)", "momentum ρ")


def test_a_toy_optimizer_gets_every_path_from_its_rule():
    rng = np.random.default_rng(5)
    theta = rng.standard_normal(6000).astype(np.float32)
    by_hand, m = theta.astype(np.float64), np.zeros(6000)
    paths = {impl: (theta.copy(), Signum(impl=impl)) for impl in ("numpy", "fused")}
    states = {impl: opt.init(x) for impl, (x, opt) in paths.items()}
    pure_theta, pure_state = theta.copy(), Signum().init_state(theta)
    for t in range(1, 6):
        g = np.cos(by_hand).astype(np.float32)  # the same gradient for every path
        m = 0.9 * m + 0.1 * g.astype(np.float64)
        by_hand = by_hand - 0.01 * (1 - 0.9**t) * np.sign(m)
        for impl, (x, opt) in paths.items():
            opt.step(x, g, states[impl])
        pure_theta, pure_state = Signum().update(pure_theta, g, pure_state)
    assert states["fused"].impl == "fused" and states["numpy"].impl == "numpy"
    np.testing.assert_array_equal(paths["fused"][0], paths["numpy"][0])
    np.testing.assert_array_equal(pure_theta, paths["numpy"][0])
    assert isinstance(pure_state, SignumState) and pure_state.t == 5
    # by hand in float64 throughout (steplab rounds θ to float32 after each step)
    np.testing.assert_allclose(paths["numpy"][0], by_hand, rtol=1e-6, atol=1e-6)
    # and the sweep kernel, with one ρ per configuration
    X0 = rng.uniform(-1, 1, (4, 2))
    rhos = np.array([0.5, 0.8, 0.9, 0.99])
    x, _ = fast.sweep("himmelblau", Signum(rho=rhos), X0, 20)
    problem = sl.problems.get("himmelblau")
    for k in range(4):
        single, point = Signum(rho=rhos[k]), X0[k].copy()
        state = single.init(point)
        for _ in range(20):
            single.step(point, problem.g(point[None])[0], state)
        np.testing.assert_array_equal(x[k], point)


@pytest.mark.parametrize("impl", ["numpy", "fused"])
def test_float32_arrays_step_in_float32_arithmetic(impl):
    """The seed's Adam written out by hand with float32 numbers (per-step scalars in
    float64, then rounded) is what a float32 step gives, on both paths; and it is not what
    float64 arithmetic rounded once per step would give."""
    f = np.float32
    rng = np.random.default_rng(11)
    theta = rng.standard_normal(8192).astype(np.float32)
    grads = [rng.standard_normal(8192).astype(np.float32) for _ in range(5)]
    x, s, r = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
    x64, s64, r64 = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        s = f(0.9) * s + (f(1) - f(0.9)) * g
        r = f(0.999) * r + (f(1) - f(0.999)) * g * g
        c1, c2 = f(1 / (1 - 0.9**t)), f(1 / (1 - 0.999**t))
        x = x + -f(1e-3) * (s * c1) / np.sqrt(r * c2 + f(1e-8))
        assert x.dtype == s.dtype == r.dtype == np.float32
        g64 = g.astype(np.float64)  # the same step in float64, rounded once when stored
        s64 = (0.9 * s64 + 0.1 * g64).astype(np.float32)
        r64 = (0.999 * r64 + 0.001 * g64 * g64).astype(np.float32)
        step = -1e-3 * (s64 / (1 - 0.9**t)) / np.sqrt(r64 / (1 - 0.999**t) + 1e-8)
        x64 = (x64 + step).astype(np.float32)
    opt, point = sl.Adam(impl=impl), theta.copy()
    state = opt.init(point)
    for g in grads:
        opt.step(point, g, state)
    assert state.impl == impl
    np.testing.assert_array_equal(point, x)
    np.testing.assert_array_equal(state.s, s)
    np.testing.assert_array_equal(state.r, r)
    assert not np.array_equal(point, x64)  # float64 arithmetic would differ in the last bit


# -- scalar state: a running product is tabulated at once, anything else step by step ---


class WarmSGDState(NamedTuple):
    t: int
    warmth: Any  # an average of ones, 1 − ρᵗ, carried as scalar state


def warm_sgd_step_scalars(ops, hp, t, state):
    return {"warmth": hp.rho * state.warmth + (1 - hp.rho)}  # not a running product


def warm_sgd_rule(ops, hp, theta, g):
    return (theta - hp.lr * hp.warmth * g,)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class WarmSGD(Optimizer):
    """SGD whose step warms up as 1 − ρᵗ, computed as a running average (scalar state)."""

    name = "warm_sgd"
    state_type = WarmSGDState
    rule = staticmethod(warm_sgd_rule)
    step_scalars = staticmethod(warm_sgd_step_scalars)
    SCALAR_STATE = {"warmth": 0.0}

    lr: float = hyper(0.01, "(0, inf)", "step size α")
    rho: float = hyper(0.9, "[0, 1)", "warm-up rate ρ")


@pytest.mark.parametrize(
    "opt",
    [
        sl.Nadam(rho1=np.array([0.5, 0.9, 0.95]), lr=sl.schedules.cosine_decay_schedule(0.01, 30)),
        sl.Nadam(momentum_decay=np.array([0.004, 1.0, 0.1])),
        WarmSGD(rho=np.array([0.5, 0.9, 0.99])),
    ],
    ids=["nadam-per-configuration", "nadam-momentum-decay", "running-average"],
)
def test_sweep_tables_of_scalar_state_equal_the_steps(opt):
    """Nadam's Πμ comes from one cumulative product, WarmSGD's average (not a product)
    step by step; either way the table is what the steps compute one at a time."""
    from steplab.fast import sweeps

    values = {
        k: (np.asarray(v, dtype=np.float64).reshape(-1) if isinstance(v, np.ndarray) else v)
        for k, v in opt.declared_for((3, 2)).items()
    }  # as a sweep plans them
    scheduled = isinstance(values["lr"], sl.schedules.Schedule)
    tabulated = sweeps._step_columns(opt, values, 30, scheduled)
    hp = dict(values)
    if scheduled:
        hp["lr"] = np.array([opt.lr_at(t) for t in range(1, 31)])[:, None]
    one_by_one = sweeps._step_by_step(opt, hp, 30, scheduled)
    assert (sweeps._running_products(opt, hp, np.arange(1, 31)[:, None]) is None) == (
        type(opt) is WarmSGD
    )
    for key, column in one_by_one.items():
        np.testing.assert_array_equal(np.broadcast_to(tabulated[key], (30, 3)),
                                      np.broadcast_to(column, (30, 3)))  # fmt: skip
    x, _ = fast.sweep("beale", opt, np.tile([1.0, 1.5], (3, 1)), 30)
    problem = sl.problems.get("beale")
    for k in range(3):
        single = opt.replace(**{n: getattr(opt, n)[k] for n in opt.hyperparameters()
                                if isinstance(getattr(opt, n), np.ndarray)})  # fmt: skip
        point = np.array([1.0, 1.5])
        state = single.init(point)
        for _ in range(30):
            single.step(point, problem.g(point[None])[0], state)
        np.testing.assert_array_equal(x[k], point)


def test_a_rule_with_the_wrong_signature_fails_where_the_class_is_defined():
    with pytest.raises(TypeError, match=r"rule must take \(ops, hp, theta, g, \*moments\)"):

        class NoHp(Optimizer):  # the rule forgot hp
            @staticmethod
            def rule(ops, theta, g, m):
                return theta, m

    assert Signum.moment_names() == ("m",) and sl.Adam.moment_names() == ("s", "r", "r_max")
