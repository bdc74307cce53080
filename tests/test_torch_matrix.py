"""steplab.torch.matrix: the core's per-tensor rules as torch.optim optimizers that keep shapes.
NumPy = torch for every optimizer and preset (float64, 100 steps of the feedback stream,
1e-10); state_dict, param groups, routing and bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from steplab.optim import registry
from steplab.optim.matrix import Adafactor, Muon

torch = pytest.importorskip("torch")
import steplab.torch.matrix as stm  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "matrix_stream", Path(__file__).parent / "optim" / "matrix_stream.py"
)
stream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stream)

MATRICES = ("W1", "W2")
CASES = [(cls, preset) for cls in (Muon, Adafactor) for preset in ("seed", "torch", "optax")]


@pytest.mark.parametrize("cls, preset", CASES, ids=lambda c: getattr(c, "name", c))
def test_numpy_equals_torch_for_every_preset(cls, preset):
    lr = 0.01
    names = MATRICES if cls is Muon else tuple(stream.SHAPES)
    numpy = stream.run_numpy(
        {k: cls.like(preset, lr=lr) if k in names else _Frozen() for k in stream.SHAPES}
    )
    ours = stream.run_torch(
        lambda p: [stm.OPTIMIZERS[cls.name].like(preset, [p[k] for k in names], lr=lr)]
    )
    assert stream.max_difference(numpy, ours) < 1e-10
    assert stream.max_difference(ours, stream.start()) > 0.01


class _Frozen:
    """Leaves a parameter where it is (the biases when only the matrices are compared)."""

    def init(self, theta):
        return None

    def step(self, theta, grad, state):
        return theta


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def _train(model, optimizers, steps):
    x = torch.tensor(stream.X)
    y = torch.tensor(stream.Y)
    for _ in range(steps):
        for o in optimizers:
            o.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        for o in optimizers:
            o.step()


@pytest.mark.parametrize("name", ["muon", "adafactor"])
def test_state_dict_round_trip_continues_the_run_exactly(name):
    def build(model):
        groups = stm.route(model.named_parameters())
        return stm.OPTIMIZERS[name](groups["matrix"], lr=0.01)

    a = _model()
    opt_a = build(a)
    _train(a, [opt_a], 10)
    b = _model()
    opt_b = build(b)
    _train(b, [opt_b], 5)
    saved = opt_b.state_dict()
    c = _model()
    c.load_state_dict(b.state_dict())
    opt_c = build(c)
    opt_c.load_state_dict(saved)
    _train(c, [opt_c], 5)
    for p, q in zip(a.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q)


def test_state_from_other_options_is_refused_and_nothing_changes():
    model = _model()
    params = [model[0].weight]
    factored = stm.Adafactor(params)
    _train(model, [factored], 2)
    saved = factored.state_dict()
    unfactored = stm.Adafactor(params, factor_min_size=1000)
    with pytest.raises(ValueError, match="other options"):
        unfactored.load_state_dict(saved)
    assert len(unfactored.state) == 0
    with pytest.raises(ValueError, match="other options or another optimizer"):
        stm.Muon(params).load_state_dict(saved)


def test_muon_refuses_a_bias_and_names_it():
    model = _model()
    with pytest.raises(ValueError, match=r"parameter '0.bias' has shape \(8,\)"):
        stm.Muon(model.named_parameters())
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\]"):
        stm.Muon(model.parameters())


def test_route_splits_by_dimension_and_labels_override():
    model = _model()
    groups = stm.route(model.named_parameters())
    assert [n for n, _ in groups["matrix"]] == ["0.weight", "2.weight"]
    assert [n for n, _ in groups["other"]] == ["0.bias", "2.bias"]
    relabelled = stm.route(model.named_parameters(), labels={"2.weight": "other"})
    assert [n for n, _ in relabelled["matrix"]] == ["0.weight"]
    with pytest.raises(ValueError, match="labels name no parameter"):
        stm.route(model.named_parameters(), labels={"3.weight": "other"})


def test_param_groups_each_use_their_own_hyperparameters():
    model = _model()
    W1, W2 = model[0].weight, model[2].weight
    start = [W1.detach().numpy().copy(), W2.detach().numpy().copy()]
    opt = stm.Muon([{"params": [W1], "lr": 0.1}, {"params": [W2]}], lr=0.01)
    _train(model, [opt], 1)
    for W, W0, lr in ((W1, start[0], 0.1), (W2, start[1], 0.01)):
        step = np.abs(W.detach().numpy() - W0).max()
        assert lr * 0.3 < step < lr * 1.6  # |O| entries ~ 1/√n … 1, times α·s


@pytest.mark.parametrize("policy", ["raise", "skip", "propagate"])
def test_nonfinite_gradients_follow_the_policy(policy):
    model = _model()
    W = model[0].weight
    opt = stm.Adafactor([W], nonfinite=policy)
    _train(model, [opt], 1)
    before = W.detach().clone()
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[W].items()}
    W.grad = torch.full_like(W, float("nan"))
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="unchanged"):
            opt.step()
    else:
        opt.step()
    if policy == "propagate":
        assert torch.isnan(W).all()
        return
    assert torch.equal(W, before)
    for k, v in state.items():
        assert torch.equal(opt.state[W][k], v) if torch.is_tensor(v) else opt.state[W][k] == v
    assert opt.state[W].get("skipped", 0) == (1 if policy == "skip" else 0)


def test_float32_parameters_step_in_float32():
    W = torch.nn.Parameter(torch.ones(6, 4, dtype=torch.float32))
    for cls in (stm.Muon, stm.Adafactor):
        opt = cls([W])
        W.grad = torch.full_like(W, 0.5)
        opt.step()
        assert W.dtype == torch.float32
        assert all(v.dtype == torch.float32 for v in opt.state[W].values() if torch.is_tensor(v))


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(ValueError, match="has no hyperparameter"):
        stm.Muon([torch.nn.Parameter(torch.ones(2, 2))], momentum=0.9)


def test_the_registry_derived_lookups_find_the_per_tensor_optimizers():
    import steplab.torch as st

    w = torch.nn.Parameter(torch.zeros(3, 4))
    assert type(st.make("muon", [w], preset="torch")) is stm.Muon
    assert list(stm.OPTIMIZERS) == list(registry.registered("per_tensor"))
    assert stm.OPTIMIZERS["soap"] is stm.SOAP
    assert "muon" not in st.OPTIMIZERS  # the element-wise twins only
    with pytest.raises(ValueError, match="adam is element-wise"):
        stm.make("adam", [w])


@pytest.mark.slow  # torch.compile builds two C++ kernels (about a minute on a loaded machine)
@pytest.mark.parametrize("cls", [stm.Muon, stm.Adafactor])
def test_compile_true_runs_the_same_rule_compiled(cls):
    """compile=True (the fast path, built from the rule by torch.compile) gives the op-by-op
    step's values, to float64 rounding, over steps whose t differs (t is a tensor input)."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((6, 4))
    grads = [rng.standard_normal((6, 4)) for _ in range(3)]
    params = {}
    for compiled in (False, True):
        w = torch.nn.Parameter(torch.tensor(w0))
        opt = cls.like("torch", [w], compile=compiled)
        for g in grads:
            w.grad = torch.tensor(g)
            opt.step()
        params[compiled] = (w.detach().numpy().copy(), opt.state[w])
    np.testing.assert_allclose(params[True][0], params[False][0], rtol=1e-12, atol=1e-14)
    assert params[True][1]["t"] == 3
    with pytest.raises(ValueError, match="compile must be True or False"):
        cls([torch.nn.Parameter(torch.zeros(2, 2))], compile="yes")


@pytest.mark.parametrize("cls", [stm.Muon, stm.Adafactor, stm.Shampoo, stm.SOAP])
def test_the_in_place_eager_step_equals_the_pure_rule_and_leaves_the_gradient(cls):
    """The eager step writes θ and the state in place (TORCH_MATRIX_OPS_IN_PLACE); the same
    rule through the pure table (core.update, nothing mutated) gives the same values, and the
    gradient is never written; Muon's and Adafactor's state tensors (their rules update them
    with lerp_) stay the ones the optimizer holds."""
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((6, 4))
    w = torch.nn.Parameter(torch.tensor(w0))
    opt = cls.like("seed", [w])
    core = opt._core(opt.param_groups[0])
    theta, state = torch.tensor(w0), None
    for step in range(3):
        g = torch.tensor(rng.standard_normal((6, 4)))
        w.grad = g.clone()
        if state is None:
            state = core.init(w0.copy())
            state = type(state)(**{k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v
                                   for k, v in vars(state).items()})  # fmt: skip
        held = [opt.state[w].get(k) for k in core.state_shapes((6, 4))] if step else []
        opt.step()
        assert torch.equal(w.grad, g)  # the gradient untouched
        if step and cls in (stm.Muon, stm.Adafactor):  # the state written where it lies
            names = core.state_shapes((6, 4))
            assert all(opt.state[w][k] is t for k, t in zip(names, held, strict=True))
        theta, state = core.update(theta, g, state, ops=stm.TORCH_MATRIX_OPS, batched=False)
    np.testing.assert_allclose(w.detach().numpy(), theta.numpy(), rtol=1e-12, atol=1e-14)


def _profiled_adafactor_step(rows: int, cols: int) -> list:
    w = torch.nn.Parameter(torch.randn(rows, cols, dtype=torch.float64))
    w.grad = torch.randn(rows, cols, dtype=torch.float64)
    opt = stm.Adafactor.like("torch", [w])
    opt.step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:  # fmt: skip
        opt.step()
    return list(prof.events())


def test_the_eager_adafactor_step_makes_one_matrix_and_no_norm_down_the_columns():
    """Where the 1024² step's time went (docs/matrix.md, Speed): a norm of G down its columns,
    a strided reduction, took ~4 ms where an element-wise pass takes 0.17 ms. The rule takes
    the row and column means of one G² array and writes V̂ over it (ops.mul_into_), so an
    eager step of a factored weight allocates one (m, n) array and takes norms of whole
    tensors only: RMS(θ) and RMS(U)."""
    rows, cols = 96, 64
    events = _profiled_adafactor_step(rows, cols)
    matrices = [e for e in events if e.self_cpu_memory_usage >= rows * cols * 8]
    assert len(matrices) == 1, [e.name for e in matrices]
    norms = [e for e in events if e.name == "aten::linalg_vector_norm"]
    assert len(norms) == 2


def test_a_bfloat16_iteration_is_refused_on_numpy_arrays_by_name():
    opt = Muon(ns_dtype="bfloat16")
    theta = np.ones((3, 2))
    state = opt.init(theta)
    with pytest.raises(ValueError, match="bfloat16 iteration runs on the torch and JAX"):
        opt.step(theta, np.ones((3, 2)), state)
    assert np.all(theta == 1) and state.t == 0
    with pytest.raises(ValueError, match="ns_dtype must be one of"):
        Muon(ns_dtype="float16")


@pytest.mark.parametrize("rows, cols", [(37, 23), (23, 37), (64, 64), (65, 9)])
def test_gram_products_by_blocks_equal_one_product(monkeypatch, rows, cols):
    """gram/add_gram compute a symmetric product by blocks (each off-diagonal block once, then
    mirrored) from 2·GRAM_LEAF rows on; panels of 4 rows make several, the last one shorter."""
    monkeypatch.setattr(stm, "GRAM_LEAF", 4)
    rng = np.random.default_rng(rows * cols)
    X = torch.tensor(rng.standard_normal((1, rows, cols)))
    A = torch.mm(X[0], X[0].mT)
    gram = stm.TORCH_MATRIX_OPS.gram(X)
    torch.testing.assert_close(gram[0], A, rtol=1e-13, atol=1e-13)
    added = stm.TORCH_MATRIX_OPS.add_gram(A[None], A[None], -4.775, 2.0315)
    torch.testing.assert_close(added[0], -4.775 * A + 2.0315 * A @ A, rtol=1e-12, atol=1e-10)
    assert gram.shape == added.shape == (1, rows, rows)


@pytest.mark.parametrize("shape", [(600, 300), (300, 600)])
def test_muon_by_blocks_equals_torch_optim_muon_in_float64(monkeypatch, shape):
    """With panels of 128 rows a side of 300 puts Newton–Schulz's Gram products in three
    panels; 5 fed-back float64 steps still equal torch.optim.Muon (its bfloat16 cast made the
    identity) and the NumPy core's step."""
    monkeypatch.setattr(stm, "GRAM_LEAF", 128)
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal(shape)
    ours = torch.nn.Parameter(torch.tensor(w0))
    theirs = torch.nn.Parameter(torch.tensor(w0))
    a, b = stm.Muon.like("torch", [ours]), torch.optim.Muon([theirs])
    core = Muon.like("torch")
    theta, state = w0.copy(), core.init(w0.copy())
    for _ in range(5):
        g = rng.standard_normal(shape) + 0.1 * ours.detach().numpy()
        ours.grad, theirs.grad = torch.tensor(g), torch.tensor(g)
        a.step()
        b.step()
        core.step(theta, g, state)  # in place
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.detach().numpy(), theta, rtol=0, atol=1e-12)
    assert np.abs(theta - w0).max() > 1e-3


@pytest.mark.parametrize("rows, fraction", [(1024, 0.75), (4096, 0.5625)])
def test_gram_by_panels_multiplies_75_and_56_percent_of_one_product(monkeypatch, rows, fraction):
    """The count behind the docs' "75 % at 1024 rows, 56 % at 4096" (panels of GRAM_LEAF =
    512 rows): the multiplications of every product the X·Xᵀ by panels calls, against one
    rows × rows × k product."""
    done = []
    mm, addmm = torch.mm, torch.addmm

    def counted_mm(A, B, **kwargs):
        done.append(A.shape[0] * B.shape[1] * A.shape[1])
        return mm(A, B, **kwargs)

    def counted_addmm(C, A, B, **kwargs):
        done.append(A.shape[0] * B.shape[1] * A.shape[1])
        return addmm(C, A, B, **kwargs)

    monkeypatch.setattr(torch, "mm", counted_mm)
    monkeypatch.setattr(torch, "addmm", counted_addmm)
    X = torch.ones(1, rows, 2)
    assert torch.equal(stm.TORCH_MATRIX_OPS.gram(X)[0], torch.full((rows, rows), 2.0))
    assert sum(done) == fraction * rows * rows * 2
    done.clear()
    stm.TORCH_MATRIX_OPS.add_gram(torch.zeros(1, rows, rows), X, 1.0, 1.0)
    assert sum(done) == fraction * rows * rows * 2
