"""The cautious mask on the fused path (steplab.fast): two passes over memory (pass 1 runs
the base's compiled rule and counts the mask, writing nothing; pass 2 takes the masked
step), the same bits as the NumPy Cautious for every kind of base (decoupled and L2 decay,
a step-size schedule, a fused chain with clipping), float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import steplab.fast  # noqa: E402, F401 - registers the fused backend
from steplab.fast import kernels  # noqa: E402
from steplab.fast.dispatch import switched_on  # noqa: E402
from steplab.optim import Adam, AdamW, Lion, Momentum  # noqa: E402
from steplab.optim import transforms as T  # noqa: E402
from steplab.optim.modifiers import AdEMAMix, Cautious, cautious_scale  # noqa: E402
from steplab.optim.ops import NUMPY_OPS  # noqa: E402
from steplab.optim.schedules import CosineDecay  # noqa: E402

SIZE = 20_000  # above FUSED_MIN_SIZE: impl="auto" takes the fused path
BASES = {
    "adamw": lambda impl: AdamW.like("torch", lr=1e-2, weight_decay=0.1, impl=impl),
    "adam-l2": lambda impl: Adam(lr=1e-2, weight_decay=0.1, impl=impl),
    "lion": lambda impl: Lion(lr=1e-3, weight_decay=0.1, impl=impl),
    "momentum": lambda impl: Momentum(lr=1e-2, impl=impl),
    "adamw-cosine": lambda impl: AdamW(lr=CosineDecay(1e-2, 20), weight_decay=0.1, impl=impl),
    "ademamix": lambda impl: AdEMAMix(lr=1e-2, weight_decay=0.1, impl=impl),
    "clip+adamw": lambda impl: T.fuse(
        T.clip_by_global_norm(1.0), AdamW.like("torch", lr=1e-2, weight_decay=0.1, impl=impl)
    ),
}


def run(base, dtype, steps=20):
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(SIZE).astype(dtype)
    opt = Cautious(base=base)
    state = opt.init(theta)
    for t in range(steps):
        opt.step(theta, (np.sin(3 * t + theta) + 0.1 * theta).astype(dtype), state)
    return theta, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(BASES))
def test_fused_cautious_is_the_numpy_cautious_bit_for_bit(name, dtype):
    theta, state = run(BASES[name]("numpy"), dtype)
    fused_theta, fused_state = run(BASES[name]("auto"), dtype)
    assert (state.impl, fused_state.impl) == ("numpy", "fused")
    assert fused_theta.tobytes() == theta.tobytes()
    for key, value in vars(state).items():
        if isinstance(value, np.ndarray):
            assert getattr(fused_state, key).tobytes() == value.tobytes(), key
        elif key != "impl":
            assert getattr(fused_state, key) == value, key
    uncautious = BASES[name]("numpy")
    x = np.random.default_rng(0).standard_normal(SIZE).astype(dtype)
    s = uncautious.init(x)
    for t in range(20):
        uncautious.step(x, (np.sin(3 * t + x) + 0.1 * x).astype(dtype), s)
    assert not np.array_equal(x, theta)  # the mask changed the path


def test_the_count_pass_writes_nothing_and_counts_the_mask():
    base = AdamW.like("torch", lr=1e-2)
    theta = np.random.default_rng(1).standard_normal(SIZE)
    grad = np.sin(theta) + 0.3
    state = base.init(theta)
    state.t = 4  # momentum from earlier steps: some of it points against today's ĝ
    state.s[...] = np.cos(3 * theta)
    state.r[...] = 0.5
    hp, _ = base.prepare_step(base.declared_for(theta.shape), 5, state, NUMPY_OPS)
    count, _ = kernels.cautious_kernels(
        type(base).rule, (True, True, False), switched_on(type(base), hp), type(hp),
        tuple(v if isinstance(v, bool) else None for v in hp),
    )  # fmt: skip
    numbers = np.array([v for v in hp if not isinstance(v, bool)])
    before = [theta.copy(), state.s.copy(), state.r.copy()]
    total = count(theta, grad, state.s, state.r, numbers, 1.0)
    assert all(np.array_equal(a, b) for a, b in zip([theta, state.s, state.r], before, strict=True))
    new_theta, _ = base.update(theta, grad, state)
    delta = new_theta - theta
    assert total == np.count_nonzero(-delta * grad > 0)
    assert 0 < total < SIZE


def test_the_scale_counts_exactly_where_a_float32_sum_would_round():
    n = 2**25 + 3
    assert cautious_scale(n, n - 1, np.float64) == n / n
    assert cautious_scale(10, 4, np.float32) == np.float32(10) / np.float32(5)
    assert cautious_scale(10, 4, np.float32).dtype == np.float32


def test_impl_fused_names_why_it_cannot_run():
    opt = Cautious(base=AdamW(impl="fused"))
    theta = np.zeros((SIZE, 2))[:, 0]  # not contiguous
    state = opt.init(theta)
    with pytest.raises(ValueError, match="impl='fused' cannot run this step: .*C-contiguous"):
        opt.step(theta, np.ones_like(theta), state)
    assert state.t == 0 and not theta.any()
