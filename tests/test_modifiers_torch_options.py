"""steplab.torch.MARS and Prodigy (exported from steplab.torch) take the options every
steplab torch optimizer takes: ``maximize`` equals the NumPy core on −ĝ (float64, 1e-12),
``nonfinite`` raises or skips with parameters and state untouched (the next steps equal
the core's path without the skipped step), and bad values are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import steplab.torch as st  # noqa: E402
from steplab.optim.modifiers import MARS, Prodigy  # noqa: E402

START = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 0.25, 0.7])
SPLIT = 4
CASES = [(st.MARS, MARS, {"lr": 0.01, "weight_decay": 0.1}),
         (st.Prodigy, Prodigy, {"weight_decay": 0.1})]  # fmt: skip
IDS = ["mars", "prodigy"]


def gradient(theta, t):
    return np.array([0.01, 0.1, 1, 3, 10, 100, 0.5]) * theta + np.sin(3 * t + theta)


def numpy_path(opt, gradients):
    theta = START.copy()
    state = opt.init(theta)
    path = []
    for t, g in enumerate(gradients):
        if g is not None:
            opt.step(theta, g(theta, t), state)
        path.append(theta.copy())
    return np.array(path)


def tensors():
    return [torch.tensor(START[:SPLIT].copy(), requires_grad=True),
            torch.tensor(START[SPLIT:].copy(), requires_grad=True)]  # fmt: skip


def torch_path(opt, params, gradients):
    path = []
    for t, g in enumerate(gradients):
        theta = np.concatenate([p.detach().numpy().ravel() for p in params])
        full = g(theta, t)
        params[0].grad = torch.tensor(full[:SPLIT])
        params[1].grad = torch.tensor(full[SPLIT:])
        opt.step()
        path.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return np.array(path)


def test_exported_from_steplab_torch():
    from steplab.torch import modifiers

    assert st.MARS is modifiers.MARS and st.Prodigy is modifiers.Prodigy
    assert {"MARS", "Prodigy"} <= set(st.__all__)


@pytest.mark.parametrize(("kind", "core", "values"), CASES, ids=IDS)
def test_maximize_is_the_core_on_the_negated_gradient(kind, core, values):
    # maximizing −f (handed −∇f) is the core's descent on f
    params = tensors()
    negated = [lambda th, t: -gradient(th, t)] * 30
    ours = torch_path(kind(params, maximize=True, **values), params, negated)
    descent = numpy_path(core(**values), [gradient] * 30)
    np.testing.assert_allclose(ours, descent, rtol=1e-11, atol=1e-15)
    params = tensors()
    assert not np.allclose(torch_path(kind(params, **values), params, negated), descent)


@pytest.mark.parametrize(("kind", "core", "values"), CASES, ids=IDS)
def test_maximize_per_group_negates_that_group_alone(kind, core, values):
    params = tensors()
    groups = [{"params": [params[0]], "maximize": True}, {"params": [params[1]]}]

    def mixed(theta, t):
        g = gradient(theta, t)
        return np.concatenate([-g[:SPLIT], g[SPLIT:]])

    ours = torch_path(kind(groups, **values), params, [gradient] * 20)
    np.testing.assert_allclose(ours, numpy_path(core(**values), [mixed] * 20),
                               rtol=1e-11, atol=1e-15)  # fmt: skip


def _with_nan(theta, t):
    g = gradient(theta, t)
    g[5] = np.nan
    return g


@pytest.mark.parametrize(("kind", "core", "values"), CASES, ids=IDS)
def test_nonfinite_skip_skips_the_whole_step_and_counts_it(kind, core, values):
    params = tensors()
    opt = kind(params, nonfinite="skip", **values)
    steps = [gradient] * 5 + [_with_nan] + [gradient] * 5
    ours = torch_path(opt, params, steps)
    np.testing.assert_allclose(ours, numpy_path(core(**values), [*steps[:5], None, *steps[6:]]),
                               rtol=1e-11, atol=1e-15)  # fmt: skip
    assert [opt.state[p]["skipped"] for p in params] == [1, 1]
    assert [opt.state[p]["t"] for p in params] == [10, 10]


@pytest.mark.parametrize(("kind", "core", "values"), CASES, ids=IDS)
def test_nonfinite_raise_changes_nothing(kind, core, values):
    params = tensors()
    opt = kind(params, nonfinite="raise", **values)
    torch_path(opt, params, [gradient] * 3)
    before = [p.detach().clone() for p in params]
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[params[1]].items()}
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        torch_path(opt, params, [_with_nan])
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before, strict=True))
    after = opt.state[params[1]]
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) if torch.is_tensor(v) else after[k] == v
               for k, v in state.items())  # fmt: skip


@pytest.mark.parametrize(("kind", "core", "values"), CASES, ids=IDS)
def test_nonfinite_propagate_is_the_default(kind, core, values):
    params = tensors()
    ours = torch_path(kind(params, **values), params, [gradient, _with_nan])
    assert np.isnan(ours[-1]).any()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("maximize", "yes", "maximize must be True or False, got 'yes'"),
     ("maximize", 1, "maximize must be True or False"),
     ("nonfinite", "explode", "nonfinite must be one of raise, skip, propagate")],
)  # fmt: skip
def test_bad_options_are_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        st.MARS(tensors(), **{option: value})
    params = tensors()
    opt = st.Prodigy(params)
    opt.param_groups[0][option] = value  # edited between steps: refused before it changes
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=f"param group 0: {message}"):
        opt.step()
    assert torch.equal(params[0].detach(), torch.tensor(START[:SPLIT]))
    with pytest.raises(ValueError, match="takes no fused; it takes lr, .*maximize, nonfinite"):
        st.MARS(tensors(), fused=True)
