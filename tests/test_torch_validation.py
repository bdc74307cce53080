"""steplab.torch refuses what it cannot step from, before anything changes (issue 27):
hostile state dicts, param-group options that are not their allowed values (in the
constructor, add_param_group and edits before step()), and add_param_group is all or
nothing. benchmarks/attack_torch_state.py holds the attacks; every one is refused cleanly."""

from __future__ import annotations

import copy
import importlib.util
import pathlib

import pytest

torch = pytest.importorskip("torch")
st = pytest.importorskip("steplab.torch")

from steplab.torch import validation  # noqa: E402

_SCRIPT = pathlib.Path(__file__).parents[1] / "benchmarks" / "attack_torch_state.py"


def _attacks():
    spec = importlib.util.spec_from_file_location("attack_torch_state", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


attacks = _attacks()


def test_every_hostile_call_is_refused_cleanly():
    """72 attacks (load_state_dict, add_param_group, edited options, constructor options):
    each raises ValueError/TypeError and leaves state_dict, param_groups and the
    parameters as they were, bit for bit (29 of them before this round)."""
    counts = attacks.run()
    assert counts == {"refused cleanly": len(attacks.ATTACKS) + len(attacks.CONSTRUCTOR_ATTACKS)}


def _stepped(name="adam", **options):
    return attacks.stepped_optimizer(name, **options)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("s", [0.0, 0.0, 0.0], "moment s must be a dense floating-point tensor"),
        ("s", 0.0, "moment s must be a dense floating-point tensor"),
        ("r", None, "moment r must be a dense floating-point tensor"),
        ("r", "negative", "moment r holds negative values"),
        ("t", -5, "t must be an integer >= 0, got -5"),
        ("foo", "tensor", r"holds \['foo', 'r', 's', 't'\]"),
    ],
)
def test_refused_load_names_group_parameter_and_field_and_changes_nothing(field, value, message):
    opt, params = _stepped()
    extra = torch.nn.Parameter(torch.randn(3))
    opt.add_param_group({"params": [extra]})
    extra.grad = torch.randn(3)
    opt.step()
    before = copy.deepcopy(opt.state_dict())
    sd = copy.deepcopy(before)
    if value == "negative":
        value = -sd["state"][2][field]
    elif value == "tensor":
        value = torch.zeros(3)
    sd["state"][2][field] = value  # the third parameter: group 1's first
    with pytest.raises(ValueError, match=r"param group 1: parameter 0 \(id 2\)") as info:
        opt.load_state_dict(sd)
    assert info.match(message)
    assert attacks.same(opt.state_dict(), before)


def test_nadam_scalar_state_must_be_a_finite_number():
    opt, _ = _stepped("nadam")
    before = copy.deepcopy(opt.state_dict())
    sd = copy.deepcopy(before)
    sd["state"][1]["mu_product"] = "abc"
    with pytest.raises(ValueError, match=r"parameter 1 \(id 1\): mu_product must be a real"):
        opt.load_state_dict(sd)
    assert attacks.same(opt.state_dict(), before)


def test_which_entries_must_be_nonnegative_is_read_from_the_rule():
    def entries(name, **options):
        opt, params = _stepped(name, **options)
        group = opt.param_groups[0]
        core, declared = opt._configured_and_declared(group)
        kept = tuple(opt.state[params[0]])
        kept = tuple(k for k in kept if torch.is_tensor(opt.state[params[0]][k]))
        return validation.nonnegative_state(core, kept)

    assert entries("adam") == {"r"}
    assert entries("adam", amsgrad=True) == {"r", "r_max"}
    assert entries("nadam") == {"r", "mu_product"}
    assert entries("adadelta") == {"r", "u"}
    assert entries("lion") == frozenset()


def test_differing_step_counts_in_a_group_are_kept_apart():
    """Per-parameter t may differ (a parameter without a gradient for some steps has
    taken fewer): loaded as it is, each parameter steps with its own t, exactly as two
    optimizers would; the optimizer's own state dict with such counts loads back."""
    torch.manual_seed(0)
    start = [torch.randn(3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    grads = [torch.randn(3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    params = [torch.nn.Parameter(t.clone()) for t in start]
    together = st.Adam(params, lr=0.1)
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    together.step()
    sd = together.state_dict()
    sd["state"][0]["t"], sd["state"][1]["t"] = 3, 7
    together.load_state_dict(sd)
    together.step()
    assert [together.state[p]["t"] for p in params] == [4, 8]
    for i, t in enumerate([3, 7]):
        alone = torch.nn.Parameter(start[i].clone())
        single = st.Adam([alone], lr=0.1)
        alone.grad = grads[i].clone()
        single.step()
        one = single.state_dict()
        one["state"][0]["t"] = t
        single.load_state_dict(one)
        single.step()
        assert torch.equal(alone, params[i])
    params[1].grad = None  # the second parameter misses a step: t 5 and 8
    together.step()
    copy_of = st.Adam([torch.nn.Parameter(t.clone()) for t in start], lr=0.1)
    copy_of.load_state_dict(together.state_dict())
    assert [s["t"] for s in copy_of.state_dict()["state"].values()] == [5, 8]


@pytest.mark.parametrize(
    ("group", "error"),
    [
        ({"lr": -1.0}, "lr must be in"),
        ({"maximize": "yes"}, "maximize must be True or False"),
        ({"nonfinite": "explode"}, "nonfinite must be one of raise, skip, propagate"),
        ({"foreach": 5}, "foreach is a torch.optim option"),
        ({"params": "complex"}, "floating-point parameters"),
        ({"params": "duplicate"}, "the same parameter twice"),
    ],
)
def test_add_param_group_is_all_or_nothing(group, error):
    opt, params = _stepped()
    new = torch.nn.Parameter(torch.randn(4))
    chosen = {
        "complex": [torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))],
        "duplicate": [new, new],
    }.get(group.get("params"), [new])
    before = attacks.snapshot(opt)
    with pytest.raises((ValueError, TypeError), match=error):
        opt.add_param_group({**group, "params": chosen})
    assert len(opt.param_groups) == 1
    assert attacks.same(attacks.snapshot(opt), before)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()  # still steps, with the one group
    assert all(id(p) not in {id(q) for q in opt.state} for p in chosen)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("maximize", "yes", "True or False"),
        ("fused", "yes", "True or False"),
        ("nonfinite", "explode", "one of raise, skip, propagate"),
        ("foreach", 5, "the multi-tensor step is the default"),
    ],
)
def test_options_edited_before_step_are_refused_and_nothing_steps(key, value, allowed):
    opt, params = _stepped()
    opt.param_groups[0][key] = value
    for p in params:
        p.grad = torch.full_like(p, float("nan"))  # 'explode' once skipped these silently
    before = attacks.snapshot(opt)
    with pytest.raises(ValueError, match=f"param group 0: {key}.*{allowed}"):
        opt.step()
    assert attacks.same(attacks.snapshot(opt), before)


def test_maximize_must_be_a_bool_in_the_constructor():
    """maximize='yes' was accepted, and the optimizer climbed."""
    with pytest.raises(ValueError, match="maximize must be True or False, got 'yes'"):
        st.Adam([torch.nn.Parameter(torch.zeros(2))], maximize="yes")
