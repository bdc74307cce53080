"""The multi-tensor step runs each rule as a traced program of in-place ``_foreach`` ops
(``steplab/torch/_traced.py``): it must give exactly the bits of the rule run directly on
TensorLists (every intermediate allocated), for every registered element-wise optimizer and
preset, with packed small tensors, a large tensor split in batches, a non-contiguous
gradient, a parameter without gradient and ``maximize``.
"""

from __future__ import annotations

import collections

import pytest

torch = pytest.importorskip("torch")

import steplab.torch as st  # noqa: E402
from steplab.torch import _traced, base  # noqa: E402

SHAPES = [(7, 5), (3,), (64, 64), (1,), (base.PACK_BELOW + 3,), (4, 6), (9,)]
CASES = [
    (name, preset)
    for name, cls in st.OPTIMIZERS.items()
    if cls.core.KIND == "elementwise"
    for preset in ["seed", *cls.core.PRESETS]
]


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch):
    monkeypatch.setattr(base, "CPU_BATCH", 1000)  # the large tensor runs in 17 batches


def _run(name, preset, steps=8, **options):
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
    opt = st.make(name, params, preset=preset, **options)
    for step in range(steps):
        gen = torch.Generator().manual_seed(100 + step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        params[5].grad = torch.randn(6, 4, generator=gen).t()  # non-contiguous
        params[3].grad = None
        opt.step()
    return params, opt


@pytest.mark.parametrize(("name", "preset"), CASES)
def test_traced_program_gives_the_bits_of_the_rule_run_directly(name, preset, monkeypatch):
    maximize = name in ("adam", "rmsprop", "sgd")
    traced, opt = _run(name, preset, maximize=maximize)
    programs = opt.__dict__["_programs"].by_key
    assert programs and all(v for v in programs.values())  # the rule was traced, and ran
    monkeypatch.setattr(_traced.Programs, "get", lambda self, *a: None)  # run it directly
    direct, opt_direct = _run(name, preset, maximize=maximize)
    for p, q in zip(traced, direct, strict=True):
        assert torch.equal(p, q)
        for key, value in opt.state[p].items():
            if torch.is_tensor(value):
                assert torch.equal(value, opt_direct.state[q][key]), key


def _program(name, preset="torch", **options):
    _, opt = _run(name, preset, steps=1, **options)
    (programs,) = opt.__dict__["_programs"].by_key.values()
    return programs[-1]


def test_adam_runs_in_place_with_two_scratch_buffers_and_theta_not_copied():
    program = _program("adam")
    assert program.n_scratch == 2  # ŝ·α and the denominator; s, r and θ updated in place
    assert program.theta_last  # θ is read once, by θ + Δθ: not packed
    assert not _program("adamw").theta_last  # decoupled decay reads θ first


def test_a_branch_on_a_step_value_is_a_guard_with_one_program_per_outcome():
    _, opt = _run("radam", "seed", steps=8)  # ρₜ > 5 switches from false to true at t = 6
    (programs,) = opt.__dict__["_programs"].by_key.values()
    assert [p.guards[0][1] for p in programs] == [False, True]


def test_a_rule_that_reads_a_step_value_as_a_float_is_not_traced():
    class Rule:
        def apply_rule(self, ops, hp, theta, g, state):
            return theta - float(hp.lr) * g, {}

    with pytest.raises(_traced.TraceError, match="float"):
        _traced.trace(Rule(), _StepValues(0.1), ())


_StepValues = collections.namedtuple("_StepValues", ["lr"])


class _OrderRule:
    """A subtraction whose second operand dies there (it must not run reversed in place)."""

    def apply_rule(self, ops, hp, theta, g, state):
        new_m = theta - g * g
        new_theta = state.m * hp.lr + theta
        return new_theta, {"m": new_m}


class _SwapRule:
    """θ and m each end in the other's storage (a cycle of copies at the end)."""

    def apply_rule(self, ops, hp, theta, g, state):
        new_theta = state.m * hp.lr
        new_m = theta - g * g
        return new_theta, {"m": new_m}


@pytest.mark.parametrize("rule", [_OrderRule(), _SwapRule()])
@pytest.mark.parametrize("n", [1, 6])  # out-of-place: tensor by tensor, or copy and in place
def test_program_keeps_operand_order_and_places_crossed_results(rule, n):
    gen = torch.Generator().manual_seed(0)
    theta, g, m = ([torch.randn(5, generator=gen) for _ in range(n)] for _ in range(3))
    want_theta, want_m = rule.apply_rule(None, _StepValues(0.1), theta[0], g[0], _M(m[0]))
    want_theta, want_m = [want_theta], [want_m["m"]]
    for k in range(1, n):
        t_k, m_k = rule.apply_rule(None, _StepValues(0.1), theta[k], g[k], _M(m[k]))
        want_theta.append(t_k)
        want_m.append(m_k["m"])
    program = _traced.trace(rule, _StepValues(0.1), ("m",))
    program.run(program.scalars(_StepValues(0.1)), [theta, g, m], program.new_scratch(theta))
    for got, want in zip([*theta, *m], [*want_theta, *want_m], strict=True):
        assert torch.equal(got, want)


class _M:
    def __init__(self, m):
        self.m = m
