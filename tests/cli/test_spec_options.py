"""Options beyond hyperparameters in a CLI spec: a matrix optimizer's ns_steps, nesterov, graft."""

from __future__ import annotations

import pytest

from steplab.cli import spec


def test_a_matrix_optimizers_options_are_read_from_the_spec():
    parsed = spec.parse("muon:ns_steps=3,nesterov=false,lr=0.01")
    assert parsed.optimizer.ns_steps == 3
    assert parsed.optimizer.nesterov is False
    assert parsed.optimizer.lr == 0.01
    assert spec.parse("shampoo:graft=adagrad").optimizer.graft == "adagrad"
    # the preset's values stay where the spec gives none
    torch_muon = spec.parse("muon@torch:ns_steps=7").optimizer
    assert torch_muon.ns_steps == 7
    assert torch_muon.weight_decay == spec.parse("muon@torch").optimizer.weight_decay


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("muon:ns_stepz=3", r"did you mean 'ns_steps'\?.*its options: ns_steps"),
        ("muon:ns_steps=abc", r"ns_steps must be a whole number, got 'abc'"),
        ("muon:ns_steps=3,ns_steps=4", r"ns_steps is given twice"),
        ("adam:ns_steps=3", r"adam has no hyperparameter 'ns_steps'"),
    ],
)
def test_a_bad_option_is_refused_by_name(text, message):
    with pytest.raises(ValueError, match=message):
        spec.parse(text)
