"""EMA, SWA and Lookahead as optimizer-spec modifiers ('adam+ema:decay=0.99',
'sgd+lookahead'): a key goes to the modifier whose setting it is, the rest to the optimizer;
mistakes raise ValueError naming the part and what is allowed ("did you mean")."""

from __future__ import annotations

import pytest

from steplab.cli import spec
from steplab.optim import EMA, SWA, Lookahead
from steplab.optim.registry import WRAPPER_SETTINGS, WRAPPERS


def test_the_averaging_modifiers_are_registered_with_their_settings():
    assert {"ema", "swa", "lookahead", "cautious"} <= set(WRAPPERS)
    assert WRAPPER_SETTINGS["ema"] == {"decay": "[0, 1)", "debias": "bool"}
    assert WRAPPER_SETTINGS["lookahead"] == {"sync_period": "[1, inf)", "slow_step_size": "[0, 1]"}
    assert WRAPPER_SETTINGS["cautious"] == {}


@pytest.mark.parametrize(
    ("text", "cls", "own", "base"),
    [
        ("adam+ema:decay=0.99,lr=0.01", EMA, {"decay": 0.99, "debias": True}, {"lr": 0.01}),
        ("adam+ema:debias=false", EMA, {"decay": 0.999, "debias": False}, {"lr": 0.001}),
        ("sgd+lookahead", Lookahead, {"sync_period": 5.0, "slow_step_size": 0.5}, {}),
        ("momentum+swa:start=50,every=5,lr=0.1", SWA, {"start": 50.0, "every": 5.0}, {"lr": 0.1}),
    ],
)
def test_keys_go_to_the_modifier_whose_setting_they_are(text, cls, own, base):
    parsed = spec.parse(text)
    wrapper = parsed.optimizer
    assert type(wrapper) is cls
    assert {k: getattr(wrapper, k) for k in own} == own
    assert {k: getattr(wrapper.base, k) for k in base} == base
    assert parsed.name == text.partition(":")[0] and wrapper.name == parsed.name
    assert parsed.settings == {k: v for k, v in own.items() if k in text}
    assert parsed.config()["spec"] == text


def test_a_preset_applies_to_the_wrapped_optimizer():
    wrapper = spec.parse("adam+ema@torch:decay=0.9").optimizer
    assert wrapper.base.eps == 1e-8 and wrapper.base.eps_root == 0.0  # torch's Adam


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adam+emma", "unknown modifier 'emma'.*did you mean 'ema'.*choose one of: .*lookahead"),
        (
            "adam+ema:decy=0.9",
            "adam has no hyperparameter 'decy'.*did you mean 'decay'"
            ".*ema's settings: decay, debias",
        ),
        ("sgd+lookahead:sync_perod=3", "did you mean 'sync_period'"),
        ("adam+ema:decay=1", r"decay must be in \[0, 1\), got 1.0 \(in 'adam\+ema:decay=1'\)"),
        ("adam+ema:debias=maybe", "debias must be true or false, got 'maybe'"),
        ("adam+ema:decay=0.9,decay=0.8", "decay is given twice"),
        ("adam+ema+ema", "the modifier 'ema' is given twice"),
        ("sgd+swa:start=0", r"start must be in \[1, inf\)"),
        ("sgd+lookahead:slow_step_size=cosine(1,10)", "only lr takes a schedule"),
    ],
)
def test_mistakes_name_the_part_and_the_choices(text, message):
    with pytest.raises(ValueError, match=message):
        spec.parse(text)


def test_a_setting_of_two_owners_is_refused(monkeypatch):
    monkeypatch.setitem(WRAPPERS, "toy", lambda opt, **s: opt)
    monkeypatch.setitem(WRAPPER_SETTINGS, "toy", {"decay": "[0, 1)"})
    with pytest.raises(ValueError, match="'decay' would be a setting of both ema and toy"):
        spec.parse("adam+ema+toy:decay=0.5")
    monkeypatch.setitem(WRAPPER_SETTINGS, "toy", {"lr": "(0, inf)"})
    with pytest.raises(ValueError, match="'lr' would be a setting of both adam and toy"):
        spec.parse("adam+toy")
