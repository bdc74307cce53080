"""The NumPy core of the per-tensor optimizers: K configurations, layouts and routing, the
algorithms' own properties, and bad input (one clear error, nothing changed)."""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab.optim.matrix import Adafactor, Muon, ParameterLayout, Routed, route

OPTIMIZERS = [Muon, Adafactor]


@pytest.fixture(scope="module")
def problem():
    return sl.problems.mlp("digits", hidden=(16, 12))


def _train(opt, problem, theta, steps=15):
    state = opt.init(theta)
    for _ in range(steps):
        _, g = problem.value_and_grad(theta)
        opt.step(theta, g, state)
    return theta, state


# -- K configurations ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.name)
def test_k_configurations_are_k_single_runs_bit_for_bit(cls, problem):
    lrs = [0.003, 0.01, 0.03]
    singles = []
    for lr in lrs:
        opt = Routed(cls(lr=lr), problem.layout(), other=sl.AdamW(lr=lr))
        singles.append(_train(opt, problem, problem.initial_point(0).copy())[0])
    batch = np.repeat(problem.initial_point(0)[None], 3, axis=0)
    _train(Routed(cls(lr=lrs), problem.layout(), other=sl.AdamW(lr=lrs)), problem, batch)
    for k in range(3):
        np.testing.assert_array_equal(batch[k], singles[k])
    assert not np.array_equal(singles[0], singles[2])  # the configurations differ


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.name)
def test_one_tensor_with_hyperparameter_arrays_is_k_runs(cls):
    rng = np.random.default_rng(0)
    W0, grads = rng.standard_normal((7, 4)), rng.standard_normal((10, 7, 4))
    lrs = [0.01, 0.05]
    batch = np.repeat(W0[None], 2, axis=0)
    opt = cls(lr=lrs)
    state = opt.init(batch)
    for G in grads:
        opt.step(batch, np.repeat(G[None], 2, axis=0), state)
    for k, lr in enumerate(lrs):
        W = W0.copy()
        single = cls(lr=lr)
        s = single.init(W)
        for G in grads:
            single.step(W, G, s)
        np.testing.assert_array_equal(batch[k], W)


def test_float32_steps_stay_float32():
    W = np.ones((4, 3), dtype=np.float32)
    for cls in OPTIMIZERS:
        state = cls().init(W)
        cls().step(W, np.full_like(W, 0.5), state)
        assert W.dtype == np.float32
        assert all(a.dtype == np.float32 for a in state.arrays().values())


# -- layouts and routing -----------------------------------------------------------------


def test_mlp_layout_matches_the_problem(problem):
    layout = problem.layout()
    assert layout.dim == problem.dim
    theta = np.arange(problem.dim, dtype=float)[None]
    views = layout.views(theta)
    for i, (W, b) in enumerate(problem.unpack(theta), start=1):
        np.testing.assert_array_equal(views[f"W{i}"], W)
        np.testing.assert_array_equal(views[f"b{i}"], b)
    assert [t.role for t in layout.tensors] == [
        "hidden",
        "bias",
        "hidden",
        "bias",
        "output",
        "bias",
    ]


def test_default_route_sends_hidden_matrices_to_the_matrix_optimizer(problem):
    routes = route(problem.layout())
    assert routes == {"W1": "matrix", "b1": "other", "W2": "matrix", "b2": "other",
                      "W3": "other", "b3": "other"}  # fmt: skip
    assert route(problem.layout(), labels={"W3": "matrix"})["W3"] == "matrix"
    everything = route(problem.layout(), predicate=lambda t: True)
    assert set(everything.values()) == {"matrix"}
    with pytest.raises(ValueError, match="W9"):
        route(problem.layout(), labels={"W9": "matrix"})
    with pytest.raises(ValueError, match="'matrix' or 'other'"):
        route(problem.layout(), labels={"W1": "muon"})


def test_routed_steps_the_matrices_with_the_rule_and_the_rest_with_adamw(problem):
    theta = problem.initial_point(0).copy()
    _, g = problem.value_and_grad(theta)
    layout = problem.layout()
    expected = layout.views(theta[None].copy())
    grads = layout.views(g[None])
    muon, adamw = Muon(), sl.AdamW()
    for name in ("W1", "W2"):
        W = expected[name][0].copy()
        muon.step(W, grads[name][0], muon.init(W))
        expected[name][0][...] = W
    opt = Routed(muon, layout)
    opt.step(theta, g, opt.init(theta))
    got = layout.views(theta[None])
    for name in ("W1", "W2"):
        np.testing.assert_array_equal(got[name], expected[name])
    b = expected["b1"][0].copy()
    adamw.step(b, grads["b1"][0].copy(), adamw.init(b))
    np.testing.assert_array_equal(got["b1"][0], b)


# -- the algorithms' own properties --------------------------------------------------------


def test_newton_schulz_brings_every_singular_value_near_one():
    rng = np.random.default_rng(3)
    M = rng.standard_normal((40, 25)) @ np.diag(np.logspace(-1, 1, 25))  # condition ~1e2
    before = np.linalg.svd(M, compute_uv=False)
    after = np.linalg.svd(Muon().orthogonalize(M), compute_uv=False)
    assert before.max() / before.min() > 50
    assert after.min() > 0.5 and after.max() < 1.5  # Keller Jordan: S' ~ U(0.5, 1.5)
    U, _, Vt = np.linalg.svd(M, full_matrices=False)  # and the directions are M's
    assert np.allclose(Muon().orthogonalize(M), U @ np.diag(after) @ Vt, atol=0.2)


def test_adafactor_factored_moment_is_exact_for_rank_one_squares():
    """V̂ = R·C/mean(R) reproduces G² exactly when G² is an outer product u·vᵀ (the paper's
    motivation), so one step equals Adam's-with-full-V at t = 1: θ − αₜ·G/|G| clipped."""
    u, v = np.array([1.0, 2.0, 3.0]), np.array([0.5, 4.0])
    G = np.sqrt(np.outer(u, v))
    opt = Adafactor(eps_root=0.0)
    state = opt.init(np.zeros((3, 2)))
    W = np.ones((3, 2))
    opt.step(W, G, state)
    V_hat = state.R @ state.C / state.R.mean()
    np.testing.assert_allclose(V_hat, G**2, rtol=1e-14)
    np.testing.assert_allclose(W, 1 - 1e-2 * np.sign(G), rtol=1e-14)  # αₜ = RMS(1)·min(.01, 1)


# -- bad input -----------------------------------------------------------------------------


def test_muon_refuses_a_vector_and_names_it(problem):
    with pytest.raises(ValueError, match=r"theta has shape \(5,\).*route"):
        Muon().init(np.zeros(5))
    with pytest.raises(ValueError, match="parameter 'b1' has shape"):
        Routed(Muon(), problem.layout(), predicate=lambda t: True)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"rho": 1.0}, r"rho must be in \[0, 1\)"),
        ({"lr": -1}, "lr"),
        ({"scale": "fan"}, "scale must be one of"),
        ({"ns_steps": -1}, "whole number"),
        ({"nonfinite": "ignore"}, "nonfinite must be one of"),
    ],
)
def test_bad_hyperparameters_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        Muon(**bad)


def test_state_from_other_options_or_another_optimizer_is_refused():
    W = np.ones((6, 4))
    G = np.full((6, 4), 0.1)
    factored = Adafactor().init(W)
    with pytest.raises(ValueError, match="other options"):
        Adafactor(factor_min_size=128).step(W, G, factored)
    with pytest.raises(ValueError, match="made by adafactor"):
        Muon().step(W, G, factored)
    np.testing.assert_array_equal(W, 1.0)  # nothing changed
    assert factored.t == 0


def test_bad_arrays_get_the_element_wise_optimizers_messages():
    """The matrix step uses optim.base's guard rails (check_step_arrays), narrowed to
    float32/float64: a float16 theta, a list, a read-only theta, a grad of another shape or
    dtype are refused with the same words as Adam's, and nothing changes."""
    W = np.ones((6, 4))
    state = Muon().init(W)
    with pytest.raises(TypeError, match=r"floating dtype \(float32, float64\), got float16"):
        Muon().init(W.astype(np.float16))
    with pytest.raises(TypeError, match="theta must be a NumPy array"):
        Muon().init(W.tolist())
    with pytest.raises(ValueError, match=r"grad has shape \(4, 6\) but theta has shape"):
        Muon().step(W, np.ones((4, 6)), state)
    with pytest.raises(TypeError, match="grad has dtype float32 but theta has dtype float64"):
        Muon().step(W, np.ones((6, 4), np.float32), state)
    frozen = W.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="theta is read-only"):
        Muon().step(frozen, np.ones((6, 4)), state)
    np.testing.assert_array_equal(W, 1.0)
    assert state.t == 0


def _snapshot(theta, state):
    return theta.copy(), {k: v.copy() for k, v in state.arrays().items()}, state.t


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.name)
def test_nonfinite_gradients_follow_the_policy(cls):
    rng = np.random.default_rng(1)
    W, G = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    bad = G.copy()
    bad[2, 1] = np.nan
    for policy in ("raise", "skip", "propagate"):
        opt = cls(nonfinite=policy)
        theta = W.copy()
        state = opt.init(theta)
        opt.step(theta, G, state)
        before, arrays, t = _snapshot(theta, state)
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="unchanged"):
                opt.step(theta, bad, state)
        else:
            opt.step(theta, bad, state)
        if policy == "propagate":
            assert np.isnan(theta).any() and state.t == t + 1
            continue
        np.testing.assert_array_equal(theta, before)
        for k, v in arrays.items():
            np.testing.assert_array_equal(getattr(state, k), v)
        assert state.t == t
        assert getattr(state, "skipped", 0) == (1 if policy == "skip" else 0)


def test_routed_nonfinite_raise_changes_nothing(problem):
    opt = Routed(Muon(), problem.layout())
    theta = problem.initial_point(0).copy()
    state = opt.init(theta)
    _, g = problem.value_and_grad(theta)
    opt.step(theta, g, state)
    before = theta.copy()
    B = state.tensors["W1"]["B"].copy()
    s = state.other.s.copy()
    g[-1] = np.inf  # in a bias: the element-wise part
    with pytest.raises(FloatingPointError):
        opt.step(theta, g, state)
    np.testing.assert_array_equal(theta, before)
    np.testing.assert_array_equal(state.tensors["W1"]["B"], B)
    np.testing.assert_array_equal(state.other.s, s)
    skip = Routed(Muon(nonfinite="skip"), problem.layout())
    state = skip.init(theta)
    skip.step(theta, g, state)
    np.testing.assert_array_equal(theta, before)
    assert state.skipped == 1


def test_theta_of_the_wrong_size_is_refused(problem):
    opt = Routed(Muon(), problem.layout())
    with pytest.raises(ValueError, match=f"\\({problem.dim},\\)"):
        opt.init(np.zeros(problem.dim + 1))


def test_layout_refuses_unknown_roles_and_duplicate_names():
    with pytest.raises(ValueError, match="role must be one of"):
        ParameterLayout.of([("W", (2, 2), "weights")])
    with pytest.raises(ValueError, match="unique"):
        ParameterLayout.of([("W", (2, 2)), ("W", (2,))])


def test_a_run_with_lr_arrays_on_a_routed_matrix_optimizer_equals_single_runs():
    """sl.minimize("mlp", Muon(lr=[…])): the run routes Muon (Routed) and sees its lr array as
    K configurations: K runs, each recorded with its lr, each bit for bit its single run."""
    runs = sl.minimize("mlp", Muon(lr=np.array([0.01, 0.02])), steps=5, seed=0)
    assert [r.optimizer["lr"] for r in runs] == [0.01, 0.02]
    for run, lr in zip(runs, (0.01, 0.02), strict=True):
        single = sl.minimize("mlp", Muon(lr=lr), steps=5, seed=0)
        assert np.array_equal(run.x, single.x) and run.final_loss == single.final_loss
    assert runs[0].final_loss != runs[1].final_loss
