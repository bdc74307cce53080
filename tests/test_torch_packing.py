"""The CPU multi-tensor step packs small tensors into one flat tensor per operand: that must
change nothing but speed.

Each parameter alone in its own param group is never packed (a bucket needs two small
tensors), so the same optimizer with all parameters in one group must give bit-identical
parameters and moments — also when the moments are not back to back (after
``load_state_dict``, which copies them), with a large tensor, a non-contiguous gradient and
a parameter without gradient in the mix.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import steplab.torch as st  # noqa: E402
from steplab.torch import base  # noqa: E402

SHAPES = [(7, 5), (3,), (64, 64), (1,), (base.PACK_BELOW + 3,), (4, 6), (9,)]


def _params(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=gen, dtype=dtype) for shape in SHAPES]


def _grads(step, dtype=torch.float32):
    gen = torch.Generator().manual_seed(100 + step)
    grads = [torch.randn(shape, generator=gen, dtype=dtype) for shape in SHAPES]
    grads[5] = torch.randn(6, 4, generator=gen, dtype=dtype).t()  # non-contiguous
    grads[3] = None  # no gradient this step
    return grads


def _run(name, grouped, steps, reload_at=None, dtype=torch.float32, **kw):
    params = [torch.nn.Parameter(p) for p in _params(dtype)]
    groups = [{"params": params}] if grouped else [{"params": [p]} for p in params]
    opt = st.make(name, groups, preset="seed", **kw)
    for step in range(steps):
        for p, g in zip(params, _grads(step, dtype), strict=True):
            p.grad = g
        opt.step()
        if step == reload_at:
            saved = opt.state_dict()
            opt = st.make(name, groups, preset="seed", **kw)
            opt.load_state_dict(saved)
    return params, opt


@pytest.mark.parametrize("name", ["adam", "rmsprop", "momentum", "radam", "lion"])
@pytest.mark.parametrize("reload_at", [None, 1])
def test_packed_step_equals_unpacked_bit_for_bit(name, reload_at):
    packed, opt_packed = _run(name, grouped=True, steps=5, reload_at=reload_at)
    alone, opt_alone = _run(name, grouped=False, steps=5, reload_at=reload_at)
    for p, q in zip(packed, alone, strict=True):
        assert torch.equal(p, q)
        state_p, state_q = opt_packed.state[p], opt_alone.state[q]
        assert state_p.keys() == state_q.keys()
        for key, value in state_p.items():
            if torch.is_tensor(value):
                assert torch.equal(value, state_q[key]), key
            else:
                assert value == state_q[key], key


def test_packed_step_equals_unpacked_in_bfloat16():
    packed, _ = _run("adam", grouped=True, steps=3, dtype=torch.bfloat16)
    alone, _ = _run("adam", grouped=False, steps=3, dtype=torch.bfloat16)
    for p, q in zip(packed, alone, strict=True):
        assert torch.equal(p, q)


def test_small_parameters_moments_lie_back_to_back():
    params = [torch.nn.Parameter(p) for p in _params()]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = st.Adam(params)
    opt.step()
    small = [opt.state[p]["s"] for p in params if p.numel() < base.PACK_BELOW]
    flat = base._adjacent_view(small)
    assert flat is not None and flat.numel() == sum(s.numel() for s in small)
    large = opt.state[params[4]]["s"]
    assert large._base is None  # large tensors keep their own storage


def test_single_pass_steps_small_tensors_as_one_flat_tensor_with_the_same_numbers():
    packed, opt = _run("adam", grouped=True, steps=4, dtype=torch.float64, fused=True)
    alone, _ = _run("adam", grouped=False, steps=4, dtype=torch.float64, fused=True)
    (plan,) = opt.__dict__["_plans__SinglePassPlan"].values()
    (bucket,) = plan.buckets
    assert bucket.packed is not None and len(bucket.packed.small) == 5  # all but 2 large/None
    for p, q in zip(packed, alone, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
