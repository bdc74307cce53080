"""The per-tensor optimizers in the one registry: found by name everywhere, run through the
protocol, routed onto a problem's matrices, refused (by name) where they cannot run."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

import steplab as sl
from steplab.cli import spec
from steplab.optim import registry
from steplab.optim.matrix import SOAP, Adafactor, Muon, Routed, Shampoo, routed_on

PER_TENSOR = {"muon": Muon, "adafactor": Adafactor, "shampoo": Shampoo, "soap": SOAP}


def test_the_registry_holds_each_kind_apart_and_finds_both():
    assert registry.registered("per_tensor") == PER_TENSOR
    assert all(cls.KIND == "elementwise" for cls in sl.OPTIMIZERS.values())
    assert not set(PER_TENSOR) & set(sl.OPTIMIZERS)  # the element-wise backends never see them
    assert set(registry.registered()) == set(sl.OPTIMIZERS) | set(PER_TENSOR)
    for name, cls in PER_TENSOR.items():
        assert registry.lookup(name.upper()) is cls
    with pytest.raises(ValueError, match="muon"):  # the error lists the per-tensor ones too
        registry.lookup("mun")
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.registered("matrix")


def test_make_takes_hyperparameters_options_and_presets():
    opt = sl.make("muon", preset="torch", ns_steps=3, nesterov=False)
    assert isinstance(opt, Muon)
    assert (opt.lr, opt.weight_decay, opt.ns_steps, opt.nesterov) == (1e-3, 0.1, 3, False)
    with pytest.raises(ValueError, match="no hyperparameter ns_step"):
        sl.make("muon", ns_step=3)
    with pytest.raises(ValueError, match="lr must be in"):
        sl.make("adafactor", lr=-1.0)


def test_register_refuses_a_per_tensor_class_without_the_protocol_and_taken_names():
    class Half:
        KIND = "per_tensor"
        name = "half"

    with pytest.raises(TypeError, match="lacks rule"):
        registry.register(Half)

    @dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
    class Other(Muon):
        name: ClassVar[str] = "muon"

    with pytest.raises(ValueError, match="taken by steplab.optim.matrix.muon.Muon"):
        registry.register(Other)
    assert registry.lookup("muon") is Muon


def test_a_registered_toy_per_tensor_optimizer_is_found_and_removed():
    @dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
    class ToyMuon(Muon):
        name: ClassVar[str] = "toymuon"

    registry.register(ToyMuon)
    try:
        assert isinstance(sl.make("toymuon"), ToyMuon)
        assert "toymuon" in registry.registered("per_tensor")
    finally:
        registry.unregister("toymuon")
    assert "toymuon" not in registry.registered()


def test_the_protocol_gives_the_step():
    """prepare_step → apply_rule (what every backend calls) = the NumPy step."""
    rng = np.random.default_rng(0)
    theta, g = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    opt = Muon(weight_decay=0.1)
    state = opt.init(theta.copy())
    declared = opt.declared_for(theta.shape)
    hp, scalars = opt.prepare_step(declared, 1, state, None)
    assert hp.t == 1 and scalars == {}
    batched = type("S", (), {"B": state.B[None]})
    new_theta, new = opt.apply_rule(sl.matrix.NUMPY_MATRIX_OPS, hp, theta[None], g[None], batched)
    stepped = theta.copy()
    opt.step(stepped, g, state)
    np.testing.assert_array_equal(new_theta[0], stepped)
    np.testing.assert_array_equal(new["B"][0], state.B)


def test_options_that_may_be_none_are_checked_through_the_public_api():
    assert SOAP(rho_s=0.9).rho_s == 0.9
    with pytest.raises(ValueError, match=r"rho_s must be in \[0, inf\)"):
        SOAP(rho_s=-0.5)


def test_a_run_routes_a_per_tensor_optimizer_onto_the_problems_matrices():
    problem = sl.problems.get("mlp", hidden=(16,))
    run = sl.minimize(problem, "muon", steps=40, batch_size=64, seed=0, progress=False)
    assert run.final_loss < 0.5 * run.history.columns["loss"][0]
    routed = routed_on(Muon(), problem)
    assert isinstance(routed, Routed)
    assert [t.name for t in routed.matrices()] == ["W1"]  # hidden: Muon; output, biases: AdamW


def test_a_problem_without_matrices_is_refused_naming_the_routing_option():
    with pytest.raises(ValueError, match=r"rosenbrock.*no parameter layout.*Routed"):
        sl.minimize("rosenbrock", "muon", steps=3)


def test_the_command_line_parses_per_tensor_names():
    parsed = spec.parse("muon@torch:lr=0.01")
    assert isinstance(parsed.optimizer, Muon)
    assert (parsed.optimizer.lr, parsed.optimizer.weight_decay) == (0.01, 0.1)
    with pytest.raises(ValueError, match="did you mean.*muon"):
        spec.parse("muom")


def test_options_read_from_command_line_text_and_bad_text_names_the_allowed_values():
    """parse_option: what a command line needs beyond hyperparameters (ns_steps, …)."""
    from steplab.optim.matrix import Muon, Shampoo

    assert set(Muon.options()) >= {"ns_steps", "nesterov", "scale", "ns_dtype"}
    assert "lr" not in Muon.options() and "nonfinite" not in Muon.options()
    assert Muon.parse_option("ns_steps", "7") == 7
    assert Muon.parse_option("nesterov", "False") is False
    assert Muon.parse_option("ns_dtype", "bfloat16") == "bfloat16"
    assert Shampoo.parse_option("block_size", "none") is None
    assert Shampoo.parse_option("block_size", "256") == 256
    assert Muon(**{"ns_steps": Muon.parse_option("ns_steps", "3")}).ns_steps == 3
    with pytest.raises(ValueError, match="ns_dtype must be one of param, bfloat16"):
        Muon.parse_option("ns_dtype", "float16")
    with pytest.raises(ValueError, match="ns_steps must be a whole number"):
        Muon.parse_option("ns_steps", "five")
    with pytest.raises(ValueError, match="has no option 'lr'; its options are: .*ns_steps"):
        Muon.parse_option("lr", "0.1")
