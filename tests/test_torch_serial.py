"""The compiled route of the CPU multi-tensor step (``steplab/torch/_serial.py``): with numba
installed, a bucket of float32/float64 CPU tensors is stepped by one single-threaded call of
the rule compiled by ``steplab.fast``, over a table of the tensors' addresses.

It must give the NumPy core's bits (float32 and float64, many optimizers, small and large
tensors in one bucket), really be taken (the traced program never runs), fall back to the
traced program for a step it cannot take (a non-contiguous gradient), take only small
tensors when torch runs several threads, and never start numba's thread pool (which fights
torch's OpenMP threads; see docs/speed.md). Its reductions (the global norm, the
``nonfinite`` check) must read every tensor: a NaN anywhere is found, an overflowing sum of
finite values is not mistaken for one.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import steplab.optim as so  # noqa: E402
import steplab.torch as st  # noqa: E402
from steplab.fast import serial  # noqa: E402
from steplab.torch import _serial, base  # noqa: E402

# many small tensors (one row each) and two large ones: 2·10⁴ + 7·10⁴ elements in all
SHAPES = [(64, 64), (64,), (7, 5), (1,), (300, 200), (9,), (64, 64), (10000,)]
NAMES = ["sgd", "momentum", "adam", "adamw", "rmsprop", "radam", "nadam", "lion", "adagrad"]
DTYPES = [torch.float32, torch.float64]


def _gradients(dtype, steps):
    gen = torch.Generator().manual_seed(1)
    return [[torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES] for _ in range(steps)]


def _torch_run(name, dtype, grads, **options):
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES]
    opt = st.make(name, params, preset="torch" if name != "lion" else "seed", **options)
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
    return params, opt


def _core_run(name, dtype, grads, **options):
    gen = torch.Generator().manual_seed(0)
    thetas = [torch.randn(s, generator=gen, dtype=dtype).numpy().copy() for s in SHAPES]
    preset = "torch" if name != "lion" else "seed"
    core = so.make(name, preset=preset, impl="numpy", **options)
    states = [core.init(theta) for theta in thetas]
    for step_grads in grads:
        for theta, state, g in zip(thetas, states, step_grads, strict=True):
            core.step(theta, g.numpy().copy(), state)
    return thetas, states, core


def _bucket(opt):
    (plan,) = opt.__dict__["_plans__MultiTensorPlan"].values()
    (bucket,) = plan.buckets
    return bucket


@pytest.fixture
def count_calls(monkeypatch):
    """How many times the compiled step ran (steplab.fast.serial.step_table)."""
    calls = []
    original = serial.step_table

    def counted(*args, **kwargs):
        calls.append(args[2].shape[0])  # rows
        return original(*args, **kwargs)

    monkeypatch.setattr(serial, "step_table", counted)
    return calls


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_compiled_route_gives_the_numpy_cores_bits(name, dtype, count_calls, one_thread):
    grads = _gradients(dtype, steps=6)
    params, opt = _torch_run(name, dtype, grads)
    thetas, states, core = _core_run(name, dtype, grads)
    assert count_calls == [len(SHAPES)] * 6  # every step, every tensor, one call
    assert not opt.__dict__.get("_programs").by_key  # the traced program never ran
    for p, theta, state in zip(params, thetas, states, strict=True):
        assert np.array_equal(p.detach().numpy(), theta)
        for key, value in opt.state[p].items():
            if torch.is_tensor(value):
                assert np.array_equal(value.numpy(), getattr(state, key)), key


def test_kernels_kept_from_step_to_step_follow_the_switches_and_the_tables_columns(
    count_calls, one_thread
):
    """step_table keeps each kernel by what picks it: the same optimizer with its weight
    decay switched on after a run with it off gets the core's bits with the decay (not the
    kernel kept from before), and a table whose columns do not match the rule is refused on
    every call, kept kernel or not, with nothing written."""
    grads = _gradients(torch.float32, steps=3)
    _torch_run("sgd", torch.float32, grads)  # the kernel without decay, kept
    decayed, _ = _torch_run("sgd", torch.float32, grads, weight_decay=0.5)
    thetas, _, _ = _core_run("sgd", torch.float32, grads, weight_decay=0.5)
    assert count_calls == [len(SHAPES)] * 6
    for p, theta in zip(decayed, thetas, strict=True):
        assert np.array_equal(p.detach().numpy(), theta)
    seen = []
    with pytest.MonkeyPatch.context() as patch:
        original = serial.step_table
        patch.setattr(serial, "step_table", lambda *args: seen.append(args) or original(*args))
        params, _ = _torch_run("adam", torch.float32, grads)
    configured, hp, addresses, sizes, dtype, moments = seen[-1]  # its kernel is kept now
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match="moment columns"):
        serial.step_table(configured, hp, addresses, sizes, dtype, moments[::-1])
    for p, q in zip(params, before, strict=True):
        assert torch.equal(p, q)


def test_the_traced_route_differs_from_the_core_where_the_compiled_one_does_not(one_thread):
    """Why the bit test above can fail: the traced ``_foreach`` program rounds Adam's step
    differently (scalars combined in Python floats), so equality is not a given."""
    grads = _gradients(torch.float32, steps=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_serial, "SERIAL_MIN_SIZE", 1 << 60)  # the traced route
        traced, _ = _torch_run("adam", torch.float32, grads)
    thetas, _, _ = _core_run("adam", torch.float32, grads)
    assert not all(
        np.array_equal(p.detach().numpy(), t) for p, t in zip(traced, thetas, strict=True)
    )


def test_a_step_the_table_cannot_take_runs_the_traced_program(count_calls, one_thread):
    grads = _gradients(torch.float32, steps=2)
    odd = [g.clone() for g in grads[0]]
    odd[4] = torch.randn(200, 300).t()  # a non-contiguous gradient at step 1
    fallback, opt = _torch_run("adam", torch.float32, [odd, grads[1]])
    assert count_calls == [len(SHAPES)]  # step 2 only
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_serial, "SERIAL_MIN_SIZE", 1 << 60)
        traced_first, _ = _torch_run("adam", torch.float32, [odd])
    fallback_first, _ = _torch_run("adam", torch.float32, [odd])
    for p, q in zip(fallback_first, traced_first, strict=True):
        assert torch.equal(p, q)  # step 1 was the traced program's


def test_several_torch_threads_leave_large_tensors_to_the_foreach_kernels():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _, opt = _torch_run("adam", torch.float32, _gradients(torch.float32, steps=1))
    finally:
        torch.set_num_threads(before)
    bucket = _bucket(opt)
    compiled = [SHAPES[i] for i in bucket.serial.indices]
    assert compiled and all(math.prod(s) < _serial.SERIAL_SMALL for s in compiled)
    assert [SHAPES[i] for i in bucket.large] == [(300, 200)]


def test_small_buckets_and_maximize_keep_the_traced_program(one_thread):
    grads = _gradients(torch.float32, steps=1)
    _, opt = _torch_run("adam", torch.float32, grads, maximize=True)
    assert _bucket(opt).serial is None and opt.__dict__["_programs"].by_key
    gen = torch.Generator().manual_seed(0)
    small = [torch.nn.Parameter(torch.randn(64, 64, generator=gen)) for _ in range(3)]
    for p in small:
        p.grad = torch.ones_like(p)
    opt = st.Adam(small)
    opt.step()
    assert _bucket(opt).serial is None  # below SERIAL_MIN_SIZE: no compiling


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_global_norm_reads_every_tensor_in_float64(dtype):
    gen = torch.Generator().manual_seed(3)
    tensors = [torch.randn(s, generator=gen, dtype=dtype) + 3.0 for s in SHAPES]
    exact = math.fsum(float(x) ** 2 for t in tensors for x in t.double().reshape(-1).tolist())
    got = _serial.sum_of_squares(tensors)
    assert got is not None and got == pytest.approx(exact, rel=1e-13)
    if dtype == torch.float32:  # a float32 sum is ~1e-7 off here: the sum is float64
        assert abs(float(sum((t * t).sum() for t in tensors)) - exact) > 1e-12 * exact


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nonfinite_check_reads_every_element(dtype):
    gen = torch.Generator().manual_seed(4)
    tensors = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    assert _serial.all_finite(tensors) is True
    big = torch.finfo(dtype).max / 2
    assert _serial.all_finite([*tensors, torch.full((10,), big, dtype=dtype)]) is True
    for value in (float("nan"), float("inf"), -float("inf")):
        for where in (0, len(SHAPES) - 1):
            bad = [t.clone() for t in tensors]
            bad[where].view(-1)[-1] = value
            assert _serial.all_finite(bad) is False
            assert base.all_finite(bad) is False


@pytest.mark.parametrize("parallel_kernel", [False, True])
def test_no_thread_pool_is_started_and_torch_keeps_its_thread_count(parallel_kernel):
    """numba's parallel kernels start an OpenMP pool in the process and, on this machine,
    set the OpenMP thread count torch reads (the control, ``parallel_kernel``: one parallel
    NumPy-side reduction first): the compiled route, the global norm and the check never
    start it."""
    control = (
        "import numpy as np; from steplab.fast import kernels; "
        "kernels.sum_of_squares(np.ones(1 << 20, np.float32))"
        if parallel_kernel
        else ""
    )
    script = textwrap.dedent(
        """
        import numba, torch
        import steplab.optim.transforms as T
        from steplab.optim import AdamW
        from steplab.torch.base import twin
        torch.set_num_threads(1)
        params = [torch.nn.Parameter(torch.randn(n)) for n in (300000, 64, 4096)]
        chain = T.fuse(T.clip_by_global_norm(1.0), AdamW.like("torch"))
        values = {n: getattr(chain, n) for n in chain.hyperparameters()}
        opt = twin(type(chain))(params, nonfinite="raise", **values)
        plain = torch.optim.Adam(params, foreach=True)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape)
            opt.step()
            plain.step()
        (plan,) = opt.__dict__["_plans__MultiTensorPlan"].values()
        assert plan.buckets[0].serial is not None
        try:
            numba.threading_layer()
            print("pool started")
        except ValueError:
            print("no pool")
        print("torch threads", torch.get_num_threads())
        """
    ).replace("torch.set_num_threads(1)", f"torch.set_num_threads(1)\n{control}")
    # numba's disk cache holding the parallel kernels first (a serial kernel that loaded the
    # cached parallel code would start the pool as it loads)
    warm = "import numpy as np; from steplab.fast import kernels; "
    warm += "kernels.all_finite(np.ones(1 << 20, np.float32))"
    subprocess.run([sys.executable, "-c", warm], timeout=300, check=True)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    ).stdout.split("\n")
    if parallel_kernel:
        assert "pool started" in out  # the detector sees a pool when there is one
    else:
        assert "no pool" in out and "torch threads 1" in out
