"""A chain of element-wise pieces compiled into one optimizer (transforms.fuse,
fused_chain): equal to optax's equivalent chain (float64, 1e-10), the NumPy and the fused
path bit for bit, one reduction for a global norm, bad chains refused by name."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from steplab.optim import SGD, Adam, AdamW
from steplab.optim import transforms as T
from steplab.optim.modifiers import Cautious

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
pytest.importorskip("numba")
jnp = jax.numpy

from steplab import fast  # noqa: E402 - after the skips: needs numba
from steplab.fast import dispatch  # noqa: E402

START = {"w": np.array([[1.0, -2.0, 0.5], [3.0, -1.5, 0.25]]), "b": np.array([0.3, -0.7])}
CURVATURE = {"w": np.array([[0.01, 0.1, 1.0], [3.0, 10.0, 100.0]]), "b": np.array([2.0, 0.5])}


def gradient(params, t):
    rng = np.random.default_rng(1000 + t)
    return {k: CURVATURE[k] * params[k] + 0.5 * rng.standard_normal(params[k].shape)
            for k in START}  # fmt: skip


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def optax_path(tx, start, steps=60):
    params = jax.tree.map(jnp.asarray, start)
    state = tx.init(params)
    path = []
    for t in range(steps):
        numpy_params = jax.tree.map(np.asarray, params)
        grads = jax.tree.map(jnp.asarray, _grad_of(numpy_params, t))
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        path.append(_flat(jax.tree.map(np.asarray, params)))
    return np.array(path)


def _grad_of(params, t):
    if isinstance(params, dict):
        return gradient(params, t)
    return gradient({"w": params.reshape(2, 3), "b": START["b"]}, t)["w"].ravel()


def _flat(params):
    if isinstance(params, dict):
        return np.concatenate([params["w"].ravel(), params["b"]])
    return params.ravel().copy()


def fused_path(opt, start, steps=60):
    theta = start.copy()
    state = opt.init(theta)
    path = []
    for t in range(steps):
        opt.step(theta, _grad_of(theta, t), state)
        path.append(theta.copy())
    return np.array(path)


def tree_path(tx, start, steps=60):
    """A transformation's path on NumPy trees (a dict by label, or one array)."""
    params = {k: v.copy() for k, v in start.items()} if isinstance(start, dict) else start.copy()
    state = tx.init(params)
    path = []
    for t in range(steps):
        updates, state = tx.update(_grad_of(params, t), state, params)
        params = T.apply_updates(params, updates)
        path.append(_flat(params))
    return np.array(path)


def adam(**kw):
    return Adam.like("optax", lr=0.05, **kw)


# our parts, optax's chain
CHAINS = {
    "clip_by_global_norm + adam": (
        (T.clip_by_global_norm(1.0), adam()),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)),
    ),
    "clip + sgd": (
        (T.clip(0.5), SGD(lr=0.01)),
        optax.chain(optax.clip(0.5), optax.sgd(0.01)),
    ),
    "L2 + adam": (
        (T.add_decayed_weights(0.1), adam()),
        optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.05)),
    ),
    "adam + decoupled decay = adamw": (
        (adam(), T.decay_weights(0.05, 0.1)),
        optax.adamw(0.05, weight_decay=0.1),
    ),
    "clip_by_global_norm + adamw (its own decay)": (
        (T.clip_by_global_norm(2.5), AdamW.like("optax", lr=0.05, weight_decay=0.1)),
        optax.chain(optax.clip_by_global_norm(2.5), optax.adamw(0.05, weight_decay=0.1)),
    ),
    "every piece": (
        (T.clip_by_global_norm(3.0), T.clip(0.4), T.add_decayed_weights(0.01), adam(),
         T.decay_weights(0.05, 0.1)),
        optax.chain(optax.clip_by_global_norm(3.0), optax.clip(0.4),
                    optax.add_decayed_weights(0.01), optax.scale_by_adam(),
                    optax.add_decayed_weights(0.1), optax.scale_by_learning_rate(0.05)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("impl", ["numpy", "fused"])
@pytest.mark.parametrize("name", list(CHAINS))
def test_fused_chain_equals_optax(name, impl):
    parts, theirs = CHAINS[name]
    opt = T.fuse(*parts).replace(impl=impl)
    start = START["w"].ravel().copy()
    ours = fused_path(opt, start)
    np.testing.assert_allclose(ours, optax_path(theirs, start), rtol=1e-10, atol=1e-14)
    # the same chain unfused (transforms.chain, piece by piece) agrees as well
    unfused = T.chain(*(T.from_optimizer(p) if not hasattr(p, "piece") else p for p in parts))
    np.testing.assert_allclose(ours, tree_path(unfused, start), rtol=1e-10, atol=1e-14)


def test_the_clip_triggers_and_rests_in_these_paths():
    """The global norm starts above the bounds of 2.5 and 3 and falls below them: both
    branches of the clip run in the chains that use them."""
    norms = [np.linalg.norm(_grad_of(p, t)) for t, p in
             enumerate(fused_path(adam(), START["w"].ravel().copy(), 60))]  # fmt: skip
    assert max(norms) > 3.0 and min(norms) < 2.5


def test_fused_chain_over_a_tree_with_masks_and_a_global_norm_equals_optax():
    mask = {"w": True, "b": False}
    ours = T.fused_chain(T.clip_by_global_norm(1.0), T.masked(T.add_decayed_weights(0.1), mask),
                         adam(), T.masked(T.decay_weights(0.05, 0.2), mask))  # fmt: skip
    theirs = optax.chain(
        optax.clip_by_global_norm(1.0), optax.masked(optax.add_decayed_weights(0.1), mask),
        optax.scale_by_adam(), optax.masked(optax.add_decayed_weights(0.2), mask),
        optax.scale_by_learning_rate(0.05))  # fmt: skip
    np.testing.assert_allclose(tree_path(ours, START), optax_path(theirs, START),
                               rtol=1e-10, atol=1e-14)  # fmt: skip


def test_jax_runs_a_fused_chain_as_optax_does():
    from steplab.jax.transform import transformation

    parts, theirs = CHAINS["every piece"]
    opt = T.fuse(*parts)
    values = {n: getattr(opt, n) for n in opt.hyperparameters()}
    ours = transformation(type(opt), "optax", **values)
    np.testing.assert_allclose(optax_path(ours, START), optax_path(theirs, START),
                               rtol=1e-10, atol=1e-14)  # fmt: skip


CHAINS_FOR_BITS = [
    (T.clip_by_global_norm(0.5), T.clip(0.3), T.add_decayed_weights(1e-3),
     AdamW.like("torch", lr=1e-2), T.decay_weights(1e-2, 0.1)),
    (T.clip(0.2), Adam(amsgrad=True, weight_decay=1e-3)),
    (T.clip_by_global_norm(1e-3), SGD(lr=0.1)),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", CHAINS_FOR_BITS, ids=["all", "clip+amsgrad", "norm+sgd"])
def test_numpy_and_fused_chains_give_the_same_bits(parts, dtype):
    rng = np.random.default_rng(3)
    start = rng.standard_normal(5000).astype(dtype)
    noise = [rng.standard_normal(5000).astype(dtype) for _ in range(8)]
    paths = {}
    for impl in ("numpy", "fused"):
        opt = T.fuse(*parts).replace(impl=impl)
        theta = start.copy()
        state = opt.init(theta)
        for t in range(8):
            opt.step(theta, (2 * theta + noise[t]).astype(dtype), state)
            assert state.impl == impl
        paths[impl] = theta
    np.testing.assert_array_equal(paths["numpy"], paths["fused"])
    assert not np.array_equal(paths["numpy"], start)


def test_a_global_norm_costs_one_reduction_and_no_second_finiteness_pass(monkeypatch):
    reductions, checks = [], []
    real_sum, real_step = dispatch.kernels.sum_of_squares, dispatch.step
    monkeypatch.setattr(dispatch.kernels, "sum_of_squares",
                        lambda g: reductions.append(g.size) or real_sum(g))  # fmt: skip

    def spying_step(*args, check=False):
        checks.append(check)
        return real_step(*args, check=check)

    monkeypatch.setattr(dispatch.FusedBackend, "step", staticmethod(spying_step))
    opt = T.fuse(T.clip_by_global_norm(1.0), AdamW(impl="fused"))
    theta = np.ones(10_000)
    state = opt.init(theta)
    for _ in range(3):
        opt.step(theta, np.full(10_000, 0.5), state)
    assert reductions == [10_000] * 3  # one reduction per step
    assert checks == [False] * 3  # a finite Σĝ² proved ĝ finite: the pass does not check


@pytest.mark.parametrize("impl", ["numpy", "fused"])
def test_a_nonfinite_gradient_still_raises_and_changes_nothing(impl):
    opt = T.fuse(T.clip_by_global_norm(1.0), T.clip(0.1), Adam(impl=impl))
    theta = np.ones(5000)
    state = opt.init(theta)
    grad = np.full(5000, 0.5)
    grad[17] = np.nan
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        opt.step(theta, grad, state)
    assert np.all(theta == 1.0) and state.t == 0 and np.all(state.s == 0)


def test_a_clip_of_zero_stops_every_step():
    """The clip is really in the pass: δ = 0 leaves SGD where it started (and δ > 0 not)."""
    theta = np.linspace(-1, 1, 5000)
    for delta, moves in ((0.0, False), (1e-3, True)):
        opt = T.fuse(T.clip(delta), SGD(lr=1.0, impl="fused"))
        x = theta.copy()
        opt.step(x, 10 * x, opt.init(x))
        assert (not np.array_equal(x, theta)) == moves


def test_sweeps_run_a_fused_chain_as_its_step_does():
    opt = T.fuse(T.clip(0.5), T.add_decayed_weights(0.01), Adam(lr=np.geomspace(1e-3, 0.3, 70)),
                 T.decay_weights(0.05, 0.1))  # fmt: skip
    rng = np.random.default_rng(1)
    X0 = np.array([-1.2, 1.0]) + rng.uniform(-0.5, 0.5, (70, 2))
    x, _ = fast.sweep("rosenbrock", opt, X0, 40)
    from steplab import problems

    problem = problems.get("rosenbrock")
    ref = opt.replace(lr=opt.lr.reshape(70, 1), nonfinite="propagate")
    X = X0.copy()
    state = ref.init(X)
    for _ in range(40):
        ref.step(X, problem.g(X), state)
    np.testing.assert_allclose(x, X, rtol=1e-9, atol=1e-12)
    plain, _ = fast.sweep("rosenbrock", Adam(lr=opt.lr), X0, 40)
    assert not np.allclose(plain, x)  # the pieces did something


def test_state_and_pickle():
    opt = T.fuse(T.clip(0.5), Adam())
    other = T.fuse(T.clip_by_global_norm(0.5), Adam())
    theta = np.ones(3)
    with pytest.raises(ValueError, match=r"made by chain\(clip_by_global_norm, adam\)"):
        opt.step(theta, np.ones(3), other.init(theta))
    copy = pickle.loads(pickle.dumps(opt))
    assert type(copy) is type(opt) and copy.clip_delta == 0.5 and copy.name == "chain(clip, adam)"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ((T.clip(1.0),), "needs a steplab optimizer"),
        ((Adam(), SGD()), "holds one optimizer"),
        ((T.decay_weights(0.1, 0.1), Adam()), "put it after"),
        ((Adam(), T.clip(1.0)), "put it before"),
        ((T.clip(1.0), T.clip_by_global_norm(1.0), Adam()), "must come first"),
        ((T.clip(1.0), T.clip(2.0), Adam()), "each piece once"),
        ((T.masked(T.clip(1.0), {"w": True}), Adam()), "fused_chain"),
        ((T.scale(2.0), Adam()), "element-wise pieces"),
        ((Cautious(),), "whole_array"),
    ],
)
def test_bad_chains_are_refused_by_name(parts, message):
    with pytest.raises(ValueError, match=message):
        T.fuse(*parts)


def test_bad_piece_values_are_refused():
    with pytest.raises(ValueError, match=r"clip_delta must be in \[0, inf\)"):
        T.fuse(T.clip(1.0), Adam()).replace(clip_delta=-1.0)


def test_who_cannot_take_a_global_norm_says_so():
    opt = T.fuse(T.clip_by_global_norm(1.0), Adam())
    with pytest.raises(ValueError, match="pass grad_norm"):
        opt.prepare_step(opt.declared_for((3,)), 1, opt.init(np.ones(3)), None)


@pytest.mark.parametrize("fused", [False, True])
def test_torch_runs_a_fused_chain_as_the_numpy_core(fused):
    """torch's multi-tensor and single-pass routes run the chain's pieces through the
    core's apply_rule: equal to the NumPy step (1e-12)."""
    torch = pytest.importorskip("torch")
    from steplab.torch.base import twin

    opt = T.fuse(T.clip(0.3), T.add_decayed_weights(1e-2), AdamW.like("torch", lr=1e-2),
                 T.decay_weights(1e-2, 0.1))  # fmt: skip
    values = {n: getattr(opt, n) for n in opt.hyperparameters()}
    rng = np.random.default_rng(0)
    start = rng.standard_normal(1000)
    grads = [rng.standard_normal(1000) for _ in range(5)]
    theta = start.copy()
    state = opt.init(theta)
    p = torch.nn.Parameter(torch.tensor(start))
    ours = twin(type(opt))([p], fused=fused, **values)
    for g in grads:
        opt.step(theta, g, state)
        p.grad = torch.tensor(g)
        ours.step()
    np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-12, atol=1e-15)
    plain = T.fuse(T.clip(0.3), AdamW.like("torch", lr=1e-2))  # the pieces count
    x = start.copy()
    plain_state = plain.init(x)
    for g in grads:
        plain.step(x, g, plain_state)
    assert not np.allclose(x, theta)


# several tensors for torch's global norm: small ones (packed together) and one above both
# routes' packing bound, in two parameter groups; the norm falls through the bound of 5
_RNG = np.random.default_rng(7)
NORM_START = {**START, "big": 0.1 * _RNG.standard_normal(20000)}
NORM_CURVATURE = {**CURVATURE, "big": np.linspace(0.0, 1.0, 20000)}
NORM_BOUND = 5.0


def norm_gradient(params, t):
    rng = np.random.default_rng(2000 + t)
    return {k: NORM_CURVATURE[k] * params[k]
            + 0.3 * rng.standard_normal(params[k].shape) / np.sqrt(params[k].size)
            for k in NORM_START}  # fmt: skip


def _norm_chain():
    return T.clip_by_global_norm(NORM_BOUND), AdamW.like("optax", lr=0.05, weight_decay=0.1)


def _torch_norm_path(fused, steps=40, **options):
    """steplab.torch's twin of the fused chain on NORM_START's tensors: the path and the
    global norms of the gradients it saw."""
    torch = pytest.importorskip("torch")
    from steplab.torch.base import twin

    opt = T.fuse(*_norm_chain())
    values = {n: getattr(opt, n) for n in opt.hyperparameters()}
    params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in NORM_START.items()}
    groups = [{"params": [params["w"]]}, {"params": [params["b"], params["big"]]}]
    ours = twin(type(opt))(groups, fused=fused, **values, **options)
    path, norms = [], []
    for t in range(steps):
        grads = norm_gradient({k: p.detach().numpy() for k, p in params.items()}, t)
        norms.append(np.sqrt(sum(np.sum(g**2) for g in grads.values())))
        for k, p in params.items():
            p.grad = torch.tensor(grads[k])
        ours.step()
        path.append(np.concatenate([params[k].detach().numpy().ravel() for k in NORM_START]))
    return np.array(path), norms, ours, params


def _tree_norm_path(step, steps=40):
    params = {k: v.copy() for k, v in NORM_START.items()}
    path = []
    for t in range(steps):
        params = step(params, norm_gradient(params, t))
        path.append(np.concatenate([np.asarray(params[k]).ravel() for k in NORM_START]))
    return np.array(path)


@pytest.mark.parametrize("fused", [False, True])
def test_torch_clips_by_the_global_norm_of_every_group(fused):
    """Both torch routes take ‖ĝ‖ over every tensor of every group (float64): equal to the
    NumPy core's chain over the same tree (1e-12) and to optax.chain(clip_by_global_norm,
    adamw) (1e-10), with the clip triggering and then resting."""
    ours, norms, _, _ = _torch_norm_path(fused)
    assert max(norms) > NORM_BOUND > min(norms)  # both branches of the clip run

    core = T.fused_chain(*_norm_chain())
    core_state = [None]

    def core_step(params, grads):
        if core_state[0] is None:
            core_state[0] = core.init(params)
        updates, core_state[0] = core.update(grads, core_state[0], params)
        return T.apply_updates(params, updates)

    np.testing.assert_allclose(ours, _tree_norm_path(core_step), rtol=1e-12, atol=1e-15)

    tx = optax.chain(optax.clip_by_global_norm(NORM_BOUND), optax.adamw(0.05, weight_decay=0.1))
    optax_state = [None]

    def optax_step(params, grads):
        params = jax.tree.map(jnp.asarray, params)
        if optax_state[0] is None:
            optax_state[0] = tx.init(params)
        updates, optax_state[0] = tx.update(jax.tree.map(jnp.asarray, grads), optax_state[0],
                                            params)  # fmt: skip
        return jax.tree.map(np.asarray, optax.apply_updates(params, updates))

    np.testing.assert_allclose(ours, _tree_norm_path(optax_step), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("fused", [False, True])
def test_a_nonfinite_gradient_under_raise_changes_nothing_in_a_global_norm_chain(fused):
    torch = pytest.importorskip("torch")
    _, _, ours, params = _torch_norm_path(fused, steps=3, nonfinite="raise")
    before = {k: p.detach().clone() for k, p in params.items()}
    state = {k: {n: v.clone() if torch.is_tensor(v) else v for n, v in ours.state[p].items()}
             for k, p in params.items()}  # fmt: skip
    for p in params.values():
        p.grad = torch.ones_like(p)
    params["big"].grad[5] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        ours.step()
    for k, p in params.items():
        assert torch.equal(p.detach(), before[k])
        for n, v in ours.state[p].items():
            assert torch.equal(v, state[k][n]) if torch.is_tensor(v) else v == state[k][n]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_torch_sums_the_global_norm_in_float64(dtype):
    """‖ĝ‖ of low-precision gradients (cast to float64 in chunks) is the float64 norm of
    their values, over every group: not a float32 sum (~1e-7 off at this size)."""
    torch = pytest.importorskip("torch")
    from steplab.torch.base import SQUARES_CHUNK, twin

    opt = T.fuse(T.clip_by_global_norm(1.0), Adam())
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(3 * SQUARES_CHUNK + 7) + 10.0, rng.standard_normal(11)]
    params = [torch.nn.Parameter(torch.zeros(len(g), dtype=getattr(torch, dtype)))
              for g in grads]  # fmt: skip
    ours = twin(type(opt))([{"params": [params[0]]}, {"params": [params[1]]}],
                           **{n: getattr(opt, n) for n in opt.hyperparameters()})  # fmt: skip
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g).to(p.dtype)
    values = np.concatenate([p.grad.double().numpy() for p in params])
    assert ours._global_grad_norm() == pytest.approx(np.sqrt(values @ values), rel=1e-14)


def test_a_checkpoint_resumes_a_fused_chain_bit_for_bit(tmp_path):
    """10 steps, save, load, 10 more = 20 straight; another chain's file is refused."""
    from steplab.optim import State

    opt = T.fuse(T.clip_by_global_norm(1.0), T.clip(0.5), Adam())
    straight, resumed = np.linspace(-1, 1, 100), np.linspace(-1, 1, 100)
    state = opt.init(straight)
    for _ in range(10):
        opt.step(straight, 3 * straight + 0.1, state)
    resumed[...] = straight
    state.save(tmp_path / "state.npz", opt)
    loaded = State.load(tmp_path / "state.npz", opt)
    for _ in range(10):
        opt.step(straight, 3 * straight + 0.1, state)
        opt.step(resumed, 3 * resumed + 0.1, loaded)
    np.testing.assert_array_equal(resumed, straight)
    with pytest.raises(ValueError, match=r"not of 'chain\(clip, adam\)'"):
        State.load(tmp_path / "state.npz", T.fuse(T.clip(0.5), Adam()))


@pytest.fixture
def one_process_group():
    """A gloo process group of world size 1 (enough for DTensors), torn down afterwards."""
    pytest.importorskip("torch")
    import socket

    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("needs torch.distributed, with no process group yet")  # CI has both
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        from torch.distributed.device_mesh import init_device_mesh

        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("fused", [False, True])
def test_torch_global_norm_over_dtensor_gradients_equals_the_numpy_core(one_process_group, fused):
    """Parameters and gradients as DTensors (FSDP's kind, sharded on a one-rank mesh): the
    chain's ‖ĝ‖ runs over every tensor and the path equals the NumPy chain on θ concatenated
    (float64, 1e-12), with the clip acting (‖ĝ‖ above its bound at every step)."""
    import torch
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    from steplab.torch.base import twin

    mesh = one_process_group
    opt = T.fuse(T.clip_by_global_norm(1.0), AdamW.like("optax", lr=0.05, weight_decay=0.1))
    values = {n: getattr(opt, n) for n in opt.hyperparameters()}
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal((6, 3)), rng.standard_normal(5)]
    theta = np.concatenate([s.ravel() for s in starts])
    state = opt.init(theta)
    params = [torch.nn.Parameter(distribute_tensor(torch.tensor(s), mesh, [Shard(0)]))
              for s in starts]  # fmt: skip
    ours = twin(type(opt))(params, fused=fused, **values)
    for _ in range(10):
        grads = [3 * rng.standard_normal(s.shape) for s in starts]
        flat = np.concatenate([g.ravel() for g in grads])
        assert np.linalg.norm(flat) > 1.0  # the clip acts
        opt.step(theta, flat, state)
        for p, g in zip(params, grads, strict=True):
            p.grad = distribute_tensor(torch.tensor(g), mesh, [Shard(0)])
        ours.step()
    assert all(isinstance(p.data, DTensor) for p in params)
    got = np.concatenate([p.full_tensor().detach().numpy().ravel() for p in params])
    np.testing.assert_allclose(got, theta, rtol=1e-12, atol=1e-15)
