"""steplab.fast.sweep: many configurations at once, the same numbers as optimizer.step.

The compiled test functions (steplab.problems' own formulas, compiled) are checked bit for
bit against the problems, and sweeps against the readable optimizer run in a loop over a
(K, 2) array.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import steplab as sl
from steplab import fast, problems
from steplab.fast.functions import FUNCTIONS, PARAMETERS

pytest.importorskip("numba")


def _bits(array):
    return np.ascontiguousarray(array, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("scale", [1.0, 1.5])  # the defaults, and other parameters
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_compiled_functions_equal_the_problems_bit_for_bit(name, scale):
    names, defaults = PARAMETERS[name]
    options = {n: scale * d for n, d in zip(names, defaults, strict=True)}
    problem = problems.get(name, **options)
    rng = np.random.default_rng(0)
    # the plot box and beyond: exp, cos and sin see many arguments (NumPy's vectorized
    # exp differs from the C library's in the last bit for ~1 input in 20)
    low, high = problem.bounds[:, 0], problem.bounds[:, 1]
    X = rng.uniform(low - (high - low), high + (high - low), (1000, 2))
    special = [problem.x0, [0.0, -0.0], *problem.minima, *problem.stationary_points]
    X[: len(special)] = special
    value, grad = FUNCTIONS[name]
    p = [*options.values(), 0.0, 0.0, 0.0][:3]
    values = np.array([value(x, y, *p) for x, y in X])
    grads = np.array([grad(x, y, *p) for x, y in X])
    np.testing.assert_array_equal(_bits(values), _bits(problem.f(X)))
    np.testing.assert_array_equal(_bits(grads), _bits(problem.g(X)))


def _readable_sweep(problem, opt, X0, steps):
    """The reference: the readable optimizer stepping all K rows at once."""
    K = len(X0)
    per_config = {
        n: np.reshape(v, (K, 1)) for n in opt.hyperparameters() if np.ndim(v := getattr(opt, n))
    }
    opt = opt.replace(nonfinite="propagate", **per_config)
    X = X0.copy()
    state = opt.init(X)
    losses = [problem.f(X)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runaway configurations overflow, as they should
        for _ in range(steps):
            opt.step(X, problem.g(X), state)
            losses.append(problem.f(X))
    return X, np.array(losses)


K = 70  # more than one block of 64 configurations


def _check(problem_name, opt, steps=40, **options):
    problem = problems.get(problem_name, **options)
    rng = np.random.default_rng(1)
    X0 = np.asarray(problem.x0) + rng.uniform(-0.5, 0.5, (K, 2))
    x, losses = fast.sweep(problem_name, opt, X0, steps, history=True, **options)
    x_ref, losses_ref = _readable_sweep(problem, opt, X0, steps)
    assert x.shape == (K, 2) and losses.shape == (steps + 1, K)
    np.testing.assert_allclose(x, x_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-9, atol=1e-12)
    x_final, final = fast.sweep(problem_name, opt, X0, steps, **options)
    np.testing.assert_array_equal(x_final, x)
    np.testing.assert_allclose(final, losses[-1], rtol=1e-14)


def test_adam_sweep_over_step_sizes_on_rosenbrock():
    _check("rosenbrock", sl.Adam(lr=np.geomspace(1e-3, 1e-1, K)))


def test_sweep_over_decay_rates_and_function_parameters():
    _check("rosenbrock", sl.RAdam(rho2=np.linspace(0.99, 0.999, K)), steps=30, a=0.5, b=20.0)


@pytest.mark.parametrize(
    ("problem_name", "opt"),
    [
        ("beale", sl.RMSProp(centered=True, momentum=0.5, lr=1e-3)),
        ("himmelblau", sl.AdamW.like("torch", lr=0.05)),
        ("valley", sl.Lion(lr=1e-2, weight_decay=0.1)),
    ],
)
def test_options_and_weight_decay(problem_name, opt):
    _check(problem_name, opt)


SEED_AND_FRIENDS = [
    sl.SGD(lr=1e-4),
    sl.Momentum(lr=1e-4),
    sl.Nesterov(lr=1e-4),
    sl.AdaGrad(r0=0.1, lr=0.05),
    sl.RMSProp(),
    sl.AdaDelta(),
    sl.Adam(amsgrad=True, eps_hat=True, eps=1e-3, weight_decay=0.01),
    sl.Adamax(),
    sl.Nadam(),
    sl.RAdam(eps_hat=False),
]


@pytest.mark.slow  # compiles one kernel per optimizer (~1 s each)
@pytest.mark.parametrize("opt", SEED_AND_FRIENDS, ids=lambda o: o.name)
def test_every_optimizer_sweeps(opt):
    _check("rosenbrock", opt)


@pytest.mark.slow  # compiles one kernel per function (~1 s each)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_function_sweeps_bit_for_bit(name):
    # the formulas inlined into the kernel: the same bits as the readable loop
    problem = problems.get(name)
    X0 = np.asarray(problem.x0) + np.random.default_rng(1).uniform(-0.5, 0.5, (K, 2))
    opt = sl.Adam(lr=np.geomspace(1e-3, 1e-1, K))
    x, losses = fast.sweep(name, opt, X0, 30, history=True)
    x_ref, losses_ref = _readable_sweep(problem, opt, X0, 30)
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(losses, losses_ref)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fast.sweep("banana", sl.Adam(), np.zeros((3, 2)), 5), "unknown 2-D test function"),
        (lambda: fast.sweep("rosenbrock", sl.Adam(), np.zeros((3, 3)), 5), r"shape \(K, 2\)"),
        (lambda: fast.sweep("rosenbrock", sl.Adam(), np.zeros((3, 2)), -1), "steps"),
        (lambda: fast.sweep("rosenbrock", sl.Adam(), np.zeros((3, 2)), 5, c=1), "no parameter c"),
        (
            lambda: fast.sweep("rosenbrock", sl.Adam(lr=np.ones(4) / 10), np.zeros((3, 2)), 5),
            "one value per configuration",
        ),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_zero_steps_returns_the_start():
    X0 = np.array([[-1.2, 1.0], [0.0, 0.0]])
    x, loss = fast.sweep("rosenbrock", sl.Adam(), X0, 0)
    np.testing.assert_array_equal(x, X0)
    np.testing.assert_allclose(loss, [24.2, 1.0])  # b(y−x²)² + (1−x)² by hand
