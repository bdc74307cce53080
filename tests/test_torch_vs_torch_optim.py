"""steplab.torch with the "torch" preset equals torch.optim itself, and behaves like a
torch.optim optimizer: param groups, weight decay, LR schedulers, closures, state_dict,
maximize, bfloat16, the nonfinite policy."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import steplab.torch as st  # noqa: E402


def _torch_optim(name: str, params, hp: dict):
    """torch.optim's optimizer configured like the steplab hyperparameters ``hp``."""
    o = torch.optim
    wd = {"weight_decay": hp["weight_decay"]}
    if name == "sgd":
        return o.SGD(params, lr=hp["lr"], **wd)
    if name in ("momentum", "nesterov"):
        return o.SGD(params, lr=hp["lr"], momentum=hp["rho"], nesterov=name == "nesterov", **wd)
    if name == "adagrad":
        return o.Adagrad(
            params, lr=hp["lr"], eps=hp["eps"], initial_accumulator_value=hp["r0"], **wd
        )
    if name == "rmsprop":
        return o.RMSprop(
            params,
            lr=hp["lr"],
            alpha=hp["rho"],
            eps=hp["eps"],
            centered=hp["centered"],
            momentum=hp["momentum"],
            **wd,
        )
    if name == "adadelta":
        return o.Adadelta(params, lr=hp["lr"], rho=hp["rho"], eps=hp["eps_root"], **wd)
    betas = (hp["rho1"], hp["rho2"])
    if name in ("adam", "adamw"):
        cls = o.Adam if name == "adam" else o.AdamW
        return cls(params, lr=hp["lr"], betas=betas, eps=hp["eps"], amsgrad=hp["amsgrad"], **wd)
    if name == "adamax":
        return o.Adamax(params, lr=hp["lr"], betas=betas, eps=hp["eps_max"], **wd)
    if name == "nadam":
        return o.NAdam(
            params,
            lr=hp["lr"],
            betas=betas,
            eps=hp["eps"],
            momentum_decay=hp["momentum_decay"],
            **wd,
        )
    if name == "radam":
        return o.RAdam(params, lr=hp["lr"], betas=betas, eps=hp["eps"], **wd)
    raise AssertionError(name)


TORCH_CASES = [
    ("sgd", {}),
    ("momentum", {}),
    ("nesterov", {"weight_decay": 1e-2}),
    ("adagrad", {}),
    ("adagrad", {"r0": 0.1, "weight_decay": 1e-2}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True, "momentum": 0.9, "weight_decay": 1e-2}),
    ("adadelta", {}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "weight_decay": 1e-2}),
    ("adamw", {}),
    ("adamw", {"amsgrad": True}),
    ("adamax", {"weight_decay": 1e-2}),
    ("nadam", {}),
    ("radam", {"weight_decay": 1e-2}),
]


def _model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(
        dtype
    )


def _batches(n=60, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(8, 6, generator=gen, dtype=dtype),
            torch.randn(8, 3, generator=gen, dtype=dtype),
        )
        for _ in range(n)
    ]


def _groups(model, hp_second_group):
    """Two param groups: the first layer with the defaults, the last with its own values."""
    first, last = model[0], model[2]
    return [
        {"params": list(first.parameters())},
        {"params": list(last.parameters()), **hp_second_group},
    ]


def _train(model, opt, batches, scheduler=None):
    for x, y in batches:

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
        if scheduler is not None:
            scheduler.step()


@pytest.fixture
def float64_scalars():
    """torch.optim keeps scalars such as NAdam's running product of μ in the default dtype
    (float32): make it float64 so the comparison is about the algorithm, not rounding."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize(("name", "overrides"), TORCH_CASES)
def test_torch_preset_equals_torch_optim_with_groups_and_scheduler(
    name, overrides, float64_scalars
):
    lr = {"adadelta": 1.0, "sgd": 0.05, "momentum": 0.05, "nesterov": 0.05}.get(name, 0.01)
    ours_model, theirs_model = _model(), _model()
    ours = st.make(name, _groups(ours_model, {"lr": lr / 2}), preset="torch", lr=lr, **overrides)
    hp = {k: ours.defaults[k] for k in ours.hyperparameters()}
    theirs = _torch_optim(name, _groups(theirs_model, {"lr": lr / 2}), hp)
    batches = _batches()
    schedule = {"step_size": 20, "gamma": 0.5}
    _train(ours_model, ours, batches, torch.optim.lr_scheduler.StepLR(ours, **schedule))
    _train(theirs_model, theirs, batches, torch.optim.lr_scheduler.StepLR(theirs, **schedule))
    start = _model()
    moved = max(
        (p - q).abs().max().item()
        for p, q in zip(ours_model.parameters(), start.parameters(), strict=True)
    )
    assert moved > 1e-3
    for p, q in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-11)


def test_scheduler_drives_lr_in_param_groups():
    model = _model()
    opt = st.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    _train(model, opt, _batches(3), scheduler)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


def test_state_dict_round_trip_continues_identically():
    batches = _batches(40)
    model = _model()
    opt = st.Adam.like("torch", model.parameters(), lr=0.01, amsgrad=True)
    _train(model, opt, batches[:20])
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _train(model, opt, batches[20:])

    resumed = _model(seed=5)  # different start: everything must come from the checkpoint
    resumed.load_state_dict(saved_model)
    resumed_opt = st.Adam.like("torch", resumed.parameters(), lr=0.01, amsgrad=True)
    resumed_opt.load_state_dict(saved_opt)
    _train(resumed, resumed_opt, batches[20:])
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_parameters_without_gradient_are_left_alone_and_get_no_state():
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = st.RMSProp([used, unused], lr=0.1)
    used.grad = torch.ones(2)
    opt.step()
    assert unused not in opt.state and torch.equal(unused, torch.ones(2))
    assert opt.state[used]["t"] == 1 and not torch.equal(used, torch.ones(2))


def test_bfloat16_parameters_keep_float32_state_and_track_float32_run():
    batches = _batches(50, dtype=torch.float32)
    ref_model, bf_model = _model(torch.float32), _model(torch.float32).to(torch.bfloat16)
    ref = st.Adam.like("torch", ref_model.parameters(), lr=0.01)
    opt = st.Adam.like("torch", bf_model.parameters(), lr=0.01)
    _train(ref_model, ref, batches)
    _train(bf_model, opt, [(x.bfloat16(), y.bfloat16()) for x, y in batches])
    for p, q in zip(bf_model.parameters(), ref_model.parameters(), strict=True):
        assert p.dtype == torch.bfloat16
        assert opt.state[p]["s"].dtype == torch.float32
        torch.testing.assert_close(p.float(), q, rtol=0.05, atol=0.03)
    # load_state_dict would cast moments to bfloat16; steplab keeps them float32
    opt.load_state_dict(opt.state_dict())
    assert all(s["r"].dtype == torch.float32 for s in opt.state.values())


def test_nonfinite_policies():
    def fresh(policy):
        p = torch.nn.Parameter(torch.ones(3))
        return p, st.Adam([p], lr=0.1, nonfinite=policy)

    bad = torch.tensor([1.0, float("nan"), 1.0])
    p, opt = fresh("raise")
    p.grad = bad
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        opt.step()
    assert torch.equal(p, torch.ones(3)) and not opt.state[p]

    p, opt = fresh("skip")
    p.grad = bad
    opt.step()
    assert torch.equal(p, torch.ones(3)) and opt.state[p]["skipped"] == 1
    p.grad = torch.ones(3)
    opt.step()
    assert opt.state[p]["t"] == 1 and opt.state[p]["skipped"] == 1

    p, opt = fresh("propagate")  # the default, as torch.optim
    p.grad = bad
    opt.step()
    assert torch.isnan(p[1]) and torch.isfinite(p[0])


def test_bad_hyperparameters_name_the_problem():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match=r"rho1 must be in \[0, 1\)"):
        st.Adam(params, rho1=1.0)
    with pytest.raises(ValueError, match="betas -> rho1 and rho2"):
        st.Adam(params, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="no preset 'jax'"):
        st.Adam.like("jax", params)
    with pytest.raises(ValueError, match=r"lr must be in \(0, inf\)"):
        st.SGD([{"params": params, "lr": -1.0}])
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        st.SGD(params, nonfinite="ignore")
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        st.make("adamm", params)
    with pytest.raises(TypeError, match="floating-point"):
        st.SGD([torch.zeros(2, dtype=torch.int64)])


@pytest.mark.parametrize("implementation", [{"foreach": False}, {"foreach": True}])
def test_float32_adam_tracks_torch_adam(implementation):
    batches = _batches(60, dtype=torch.float32)
    ours_model, theirs_model = _model(torch.float32), _model(torch.float32)
    ours = st.Adam.like("torch", ours_model.parameters(), lr=0.01)
    theirs = torch.optim.Adam(theirs_model.parameters(), lr=0.01, **implementation)
    _train(ours_model, ours, batches)
    _train(theirs_model, theirs, batches)
    for p, q in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
        assert p.dtype == torch.float32
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_adam_equals_the_multi_tensor_step_and_torch_fused(name, dtype):
    batches = _batches(40, dtype=dtype)
    options = {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}
    models = [_model(dtype) for _ in range(3)]
    foreach = st.make(name, _groups(models[0], {"lr": 0.02}), preset="torch", **options)
    fused = st.make(name, _groups(models[1], {"lr": 0.02}), preset="torch", fused=True, **options)
    torch_class = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    theirs = torch_class(_groups(models[2], {"lr": 0.02}), fused=True, **{**options, "lr": 0.01})
    for model, opt in zip(models, (foreach, fused, theirs), strict=True):
        _train(model, opt, batches)
    tolerance = (
        {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    )
    for p, q, r in zip(*(m.parameters() for m in models), strict=True):
        torch.testing.assert_close(q, p, **tolerance)
        torch.testing.assert_close(q, r, **tolerance)


def test_fused_runs_every_convention_and_dtype_torch_fused_cannot():
    """torch's fused Adam computes ŝ/(√r̂ + eps) on float32/float64 only; steplab's single
    pass is the rule itself: the seed's β inside the root, and bfloat16 with float32 state."""
    batches = _batches(5, dtype=torch.float32)
    for dtype in (torch.float32, torch.bfloat16):
        model = _model(torch.float32).to(dtype)
        opt = st.Adam(model.parameters(), lr=0.01, fused=True)  # eps_root = 1e-8 inside
        _train(model, opt, [(x.to(dtype), y.to(dtype)) for x, y in batches])
        assert all(s["t"] == 5 and s["s"].dtype == torch.float32 for s in opt.state.values())
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_grad_scaler_and_one_cycle_schedule_drive_a_steplab_optimizer():
    model = _model()
    opt = st.Adam.like("torch", model.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=10, cycle_momentum=False
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for k, (x, y) in enumerate(_batches(4)):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y) * (float("inf") if k == 1 else 1.0)
        scaler.scale(loss).backward()
        scaler.step(opt)  # skips the step whose gradient is inf
        scaler.update()
        schedule.step()
    assert all(state["t"] == 3 for state in opt.state.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
