"""The element-wise pieces by name in optimizer specs ("adamw+clip_by_global_norm:clip_norm=1"):
the same optimizer as transforms.fuse builds, the pieces in fuse's order, mistakes named."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.cli import spec
from steplab.optim import SGD, Adam, AdamW, Optimizer
from steplab.optim import transforms as T


def _steps(opt, steps=30):
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(50)
    state = opt.init(theta)
    for t in range(steps):
        opt.step(theta, (3.0 + t % 4) * theta + rng.standard_normal(50), state)
    return theta


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("adamw+clip_by_global_norm:clip_norm=2,lr=0.01",
         (T.clip_by_global_norm(2.0), AdamW(lr=0.01))),
        ("sgd+clip+add_decayed_weights:clip_delta=0.5,l2_weight_decay=0.01",
         (T.clip(0.5), T.add_decayed_weights(0.01), SGD())),
        # the global norm goes first, where fuse requires it; decay_weights after the rule
        ("adam+clip+decay_weights+clip_by_global_norm:clip_delta=3,decay_lr=0.1,"
         "decoupled_weight_decay=0.2,clip_norm=5",
         (T.clip_by_global_norm(5.0), T.clip(3.0), Adam(), T.decay_weights(0.1, 0.2))),
    ],
)  # fmt: skip
def test_a_spec_builds_what_fuse_builds(text, parts):
    parsed = spec.parse(text).optimizer
    fused = T.fuse(*parts)
    assert type(parsed) is type(fused) and parsed.name == fused.name
    np.testing.assert_array_equal(_steps(parsed), _steps(fused))
    base = next(part for part in parts if isinstance(part, Optimizer))
    assert not np.array_equal(_steps(parsed), _steps(base))  # the pieces act


def test_defaults_of_the_pieces():
    opt = spec.parse("adam+clip_by_global_norm").optimizer
    assert opt.clip_norm == 1.0 and opt.NEEDS_GRAD_NORM


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adam+clip_by_globl_norm", "did you mean 'clip_by_global_norm'"),
        ("adam+clip_by_global_norm:clip_nrom=2", "did you mean 'clip_norm'"),
        ("adam+clip_by_global_norm:clip_norm=0", r"clip_norm must be in \(0, inf\)"),
        ("adam+clip+clip", "given twice"),
        ("adam+ema+clip", "put clip before any other modifier"),
        ("adamw+cautious+clip_by_global_norm", "not one"),
    ],
)
def test_mistakes_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        spec.parse(text)


def test_a_piece_twice_through_with_piece_is_refused():
    from steplab.optim.pieces import CLIP

    with pytest.raises(ValueError, match="each piece once"):
        T.with_piece(T.fuse(T.clip(1.0), Adam()), CLIP)
    with pytest.raises(ValueError, match="no setting clip_norm"):
        T.with_piece(Adam(), CLIP, clip_norm=1.0)


def test_the_spec_help_names_each_piece_and_its_keys():
    from steplab.optim.registry import WRAPPER_SETTINGS

    help_text = " ".join(spec.__doc__.split())
    assert "adamw+clip_by_global_norm:clip_norm=1,lr=1e-3" in help_text
    spec.parse("adamw+clip_by_global_norm:clip_norm=1,lr=1e-3")
    for name in ("clip_by_global_norm", "clip", "add_decayed_weights", "decay_weights"):
        assert f"{name}: {', '.join(WRAPPER_SETTINGS[name])}" in help_text
