"""The single-pass step (``fused=True``: the core's rule compiled by torch.compile) equals the
multi-tensor step (the same rule on lists of tensors) and the NumPy core, for every
optimizer; low-precision parameters; one compilation for every lr and t; the kept buckets
follow every change of the group. (~1 min with a cold inductor cache on a 2-core box: one
compilation of 1-4 s per optimizer, after ~10 s of importing the compiler.)"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import steplab as sl  # noqa: E402
import steplab.torch as st  # noqa: E402
from steplab.torch import _single_pass  # noqa: E402

STEPS = 12
# Two small tensors (packed into one flat call) and a large one (its own call); the
# non-contiguous and one-element cases are in test_single_pass_follows_the_group_as_it_changes.
SHAPES = [(3, 4), (5,), (_single_pass.PACK_BELOW + 7,)]

# One configuration per optimizer, with the options that change its code switched on.
CASES = {
    "sgd": ("seed", {"weight_decay": 0.1}),
    "momentum": ("torch", {}),
    "nesterov": ("seed", {"weight_decay": 0.3}),
    "adagrad": ("optax", {"weight_decay": 0.1}),
    "rmsprop": ("torch", {"centered": True, "momentum": 0.5, "weight_decay": 0.01}),
    "adadelta": ("seed", {}),
    "adam": ("seed", {"amsgrad": True, "weight_decay": 0.1}),
    "adamw": ("keras", {}),
    "adamax": ("keras", {}),
    "nadam": ("torch", {}),
    "radam": ("torch", {"rho2": 0.9}),  # ρₜ > 5 after a few steps: both branches
    "lion": ("seed", {"weight_decay": 0.5, "lr": 0.01}),
}
# ... and every other registered optimizer (a new module in steplab/optim) with its defaults
CASES.update({name: ("seed", {}) for name in st.OPTIMIZERS if name not in CASES})


def _problem(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    thetas = [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
    noise = [[0.3 * torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]] * STEPS
    return [t.to(dtype) for t in thetas], noise


def _run(name, preset, overrides, fused, dtype=torch.float64, lrs=None):
    thetas, noise = _problem(dtype)
    params = [torch.nn.Parameter(t.clone()) for t in thetas]
    opt = st.make(name, params, preset=preset, fused=fused, **overrides)
    for k in range(STEPS):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        for p, n in zip(params, noise[k], strict=True):
            p.grad = (2.0 * p.detach().double() + n).to(dtype)
        opt.step()
    return params, opt


def test_every_optimizer_has_a_case():
    assert set(CASES) == set(st.OPTIMIZERS)


@pytest.mark.slow  # compiles one kernel per optimizer: 1-4 s each on a 2-core CPU box
@pytest.mark.parametrize("name", list(CASES))
def test_single_pass_equals_multi_tensor_and_numpy_core(name):
    preset, overrides = CASES[name]
    fused_params, fused_opt = _run(name, preset, overrides, fused=True)
    multi_params, multi_opt = _run(name, preset, overrides, fused=False)
    core = sl.make(name, preset=preset, **overrides)
    thetas, noise = _problem(torch.float64)
    for i, (fp, mp) in enumerate(zip(fused_params, multi_params, strict=True)):
        theta = thetas[i].numpy().copy()
        state = core.init(theta)
        for k in range(STEPS):
            core.step(theta, 2.0 * theta + noise[k][i].numpy(), state)
        assert not np.allclose(theta, thetas[i].numpy(), atol=1e-4)  # the run moved
        np.testing.assert_allclose(fp.detach().numpy(), theta, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(mp.detach().numpy(), theta, rtol=1e-12, atol=1e-14)
        for key in state.arrays():
            fused_state = fused_opt.state[fp][key]
            np.testing.assert_allclose(fused_state.numpy(), state.arrays()[key], rtol=1e-12)
        assert fused_opt.state[fp]["t"] == multi_opt.state[mp]["t"] == STEPS


def test_bfloat16_single_pass_rounds_the_float32_step_once():
    name, preset, overrides = "adam", "seed", {}
    bf, bf_opt = _run(name, preset, overrides, fused=True, dtype=torch.bfloat16)
    multi, _ = _run(name, preset, overrides, fused=False, dtype=torch.bfloat16)
    for p, q in zip(bf, multi, strict=True):
        assert p.dtype == torch.bfloat16 and bf_opt.state[p]["s"].dtype == torch.float32
        # both compute in float32 and round once; the kernel may order operations
        # differently, so a few values land one bfloat16 step apart
        close = torch.isclose(p.float(), q.float(), rtol=0, atol=0)
        assert close.float().mean() > 0.99
        torch.testing.assert_close(p.float(), q.float(), rtol=2**-7, atol=1e-3)


def test_one_compilation_serves_every_lr_and_step():
    from torch._dynamo.utils import counters

    lrs = [0.01 * (k + 1) for k in range(STEPS)]  # a schedule: lr changes every step
    _run("adamax", "seed", {}, fused=True, lrs=lrs)  # compiles (or loads from the cache)
    before = counters["stats"]["unique_graphs"]
    params, _ = _run("adamax", "seed", {}, fused=True, lrs=lrs[::-1])
    assert counters["stats"]["unique_graphs"] == before
    reference, _ = _run("adamax", "seed", {}, fused=False, lrs=lrs[::-1])
    for p, q in zip(params, reference, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.slow  # compiles a kernel twice
def test_inductor_internals_are_used_only_on_the_torch_they_were_written_for(monkeypatch):
    from steplab.torch import _inductor

    case = ("lion", "seed", {"weight_decay": 0.5, "lr": 0.01})
    reference, _ = _run(*case, fused=False)
    monkeypatch.setattr(_single_pass, "_kernels", {})  # compile afresh
    params, _ = _run(*case, fused=True)
    direct = [k.step is not None and k.step.bumps_versions for k in _single_pass._kernels.values()]
    assert direct and all(d == _inductor.written_for_this_torch() for d in direct)
    monkeypatch.setattr(_inductor, "WRITTEN_FOR", ())  # "another torch version"
    monkeypatch.setattr(_single_pass, "_kernels", {})
    fenced, _ = _run(*case, fused=True)
    kernels = list(_single_pass._kernels.values())
    assert kernels and not any(k.step is not None and k.step.bumps_versions for k in kernels)
    for p, q, r in zip(params, fenced, reference, strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=0)  # the same kernel, called plainly
        torch.testing.assert_close(q, r, rtol=1e-12, atol=1e-14)


def test_fused_must_be_a_bool():
    with pytest.raises(ValueError, match="fused must be True or False"):
        st.Adam([torch.nn.Parameter(torch.zeros(2))], fused="yes")


def test_single_pass_follows_the_group_as_it_changes():
    """The single-pass step keeps its buckets between steps (steplab.torch.base's plan):
    every change that must rebuild them does, and each step equals the multi-tensor one —
    a parameter without a gradient for a step (then a step count of its own), a
    one-element parameter, a non-contiguous gradient, a parameter whose data is replaced,
    an lr and a weight decay changed between steps (the latter switches the kernel),
    ``maximize``, and a state dict loaded back."""
    shapes = [(3, 4), (_single_pass.PACK_BELOW + 7,), (1,), (64, 67)]
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    noise = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(9)]

    def make(fused):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        groups = [
            {"params": params[:3]},
            {"params": params[3:], "lr": 0.02, "weight_decay": 0.1, "maximize": True},
        ]
        return params, st.Adam(groups, lr=0.01, fused=fused)

    runs = [make(fused=True), make(fused=False)]
    for k in range(9):
        for params, opt in runs:
            for i, p in enumerate(params):
                g = 2.0 * p.detach() + noise[k][i]
                if i == 3 and k == 7:
                    g = g.t().contiguous().t()  # the same values, not contiguous
                p.grad = None if (i == 0 and k == 3) else g  # then (1,) is packed alone
            if k == 5:
                opt.param_groups[0]["lr"] = 0.005
                opt.param_groups[1]["weight_decay"] = 0.0
            if k == 6:
                opt.load_state_dict(opt.state_dict())
            if k == 8:
                params[0].data = params[0].data.clone()
            versions = [p._version for p in params]
            opt.step()
            for p, version in zip(params, versions, strict=True):  # in-place, as autograd sees
                assert (p._version > version) == (p.grad is not None)
        (fused, fused_opt), (multi, multi_opt) = runs
        for p, q in zip(fused, multi, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14, msg=f"step {k}")
            for key, value in multi_opt.state[q].items():
                if torch.is_tensor(value):
                    torch.testing.assert_close(fused_opt.state[p][key], value, rtol=1e-12, atol=0)
                else:
                    assert fused_opt.state[p][key] == value
    assert fused_opt.state[fused[0]]["t"] == 8 and fused_opt.state[fused[1]]["t"] == 9
