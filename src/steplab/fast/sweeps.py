"""Many configurations at once: K runs of one optimizer on a 2-D test function.

A sweep (K starting points, hyperparameters that may differ per configuration) is
embarrassingly parallel across configurations but sequential in time. The kernel
therefore takes a block of configurations, keeps their points and moments in small
local arrays (registers and L1 cache), and advances the whole block one step at a time:
the loop over the block has no dependencies, so it runs in SIMD lanes, and nothing
touches main memory until the block is done.

The step is the optimizer's ``rule``, the same function ``Optimizer.step`` runs, compiled
for one coordinate; per-step scalars (bias corrections, Nadam's μ schedule, RAdam's
rectification, a scheduled lr) are tabulated up front by the optimizer's own
``step_scalars``, in float64, for every t. So a configuration of a sweep takes the steps
that ``optimizer.step`` takes on that configuration alone, in the same arithmetic.
The kernel is generated per rule, per test function and per set of switches; no
optimizer is named here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import numpy as np

from steplab.fast import _numba
from steplab.fast.functions import FUNCTIONS, PARAMETERS
from steplab.formulas import FORMULAS
from steplab.optim.base import Optimizer, step_values_type
from steplab.optim.ops import NUMPY_OPS
from steplab.optim.schedules import Schedule

BLOCK = 64  # configurations advanced together; their state (a few KB) stays in L1

# --------------------------------------------------------------------------------------
# Hyperparameters as rows and per-step tables
# --------------------------------------------------------------------------------------


def _shared(value: Any) -> Any:
    """A (K,) array whose values are all equal as that one float (keeps tables narrow)."""
    if isinstance(value, np.ndarray) and value.size and np.all(value == value.flat[0]):
        return float(value.flat[0])
    return value


def _plan(opt: Optimizer, K: int, steps: int):
    """(hp type, per-field sources, ``fixed`` (R, K), ``per_step`` (steps, C, 1 or K)).

    ``fixed`` holds the hyperparameters that differ between configurations but not between
    steps, one row each; ``per_step`` the step scalars of every step, one column each (one
    value shared by every configuration, or one per configuration). A field's source is
    ``("static", value)`` for switches, ``("row", r)`` for row r of ``fixed``, ``("step",
    c)`` for column c of ``per_step``.
    """
    for name in opt.hyperparameters():
        value = getattr(opt, name)
        if isinstance(value, np.ndarray) and (
            value.size not in (1, K) or value.shape[1:] not in ((), (1,))
        ):
            raise ValueError(
                f"{opt.name}: {name} must be a scalar or have one value per configuration "
                f"(shape ({K},) or ({K}, 1)), got shape {value.shape}"
            )
    values: dict[str, Any] = {}
    for name, value in opt.declared_for((K, 2)).items():
        if isinstance(value, np.ndarray):
            value = _shared(np.broadcast_to(value.reshape(-1), (K,)).astype(np.float64))
        values[name] = value
    scheduled = isinstance(values.get("lr"), Schedule)
    columns = _step_columns(opt, values, max(steps, 1), scheduled)
    fields = tuple(dict.fromkeys([*values, *columns]))
    if opt.NEEDS_GRAD_NORM:  # clip_numbers of each configuration's own ‖ĝ‖, in the kernel
        fields += _CLIP_NUMBERS
    width = K if any(np.shape(c)[-1] > 1 for c in columns.values()) else 1
    table = np.zeros((max(steps, 1), max(len(columns), 1), width))
    for c, column in enumerate(columns.values()):
        table[:, c, :] = np.broadcast_to(column, (max(steps, 1), width))
    rows: list[Any] = []
    sources: dict[str, Any] = {}
    for name in fields:
        if name in _CLIP_NUMBERS:
            sources[name] = ("norm", name)
        elif name in columns:
            sources[name] = ("step", list(columns).index(name))
        elif isinstance(values[name], (bool, np.bool_)):
            sources[name] = ("static", bool(values[name]))
        else:
            sources[name] = ("row", len(rows))
            rows.append(np.broadcast_to(np.asarray(values[name], dtype=np.float64), (K,)))
    fixed = np.ascontiguousarray(np.stack(rows) if rows else np.zeros((1, K)))
    return step_values_type(type(opt), fields), sources, fixed, table


# the step values prepare_step makes from ‖ĝ‖ (pieces.clip_numbers); a sweep's kernel
# computes them per configuration, from that configuration's gradient
_CLIP_NUMBERS = ("clip_divisor", "clip_factor")


def _step_columns(opt: Optimizer, values: dict, steps: int, scheduled: bool) -> dict:
    """Every per-step scalar for t = 1 … steps, by the optimizer's own ``step_scalars``:
    name -> array (steps, 1) or, if it differs per configuration, (steps, K).

    The step scalars are element-wise functions of t, so one call with t as a column
    computes them all (the same float64 operations, element by element: the same bits as
    step by step). Scalar state that is a running product (Nadam's Πᵗμ) comes from one
    cumulative product; any other scalar state is carried step by step.
    """
    hp = dict(values)
    t = np.arange(1, steps + 1)[:, None]  # t down the rows, configurations across
    if scheduled:
        hp["lr"] = np.array([opt.lr_at(int(step)) for step in t[:, 0]])[:, None]
    if not opt.SCALAR_STATE:
        extra = opt.step_scalars(NUMPY_OPS, SimpleNamespace(**hp), t, SimpleNamespace())
    else:
        extra = _running_products(opt, hp, t) or _step_by_step(opt, hp, steps, scheduled)
    columns = {"lr": hp["lr"]} if scheduled else {}
    for key, value in extra.items():
        value = np.asarray(value, dtype=np.float64)
        if value.ndim < 2:  # the same at every step: a number, or one per configuration
            value = np.broadcast_to(value.reshape(1, -1), (steps, value.size))
        columns[key] = value
    return columns


def _running_products(opt: Optimizer, hp: dict, t: np.ndarray) -> dict | None:
    """The step scalars of every t in two element-wise calls, if each scalar state is a
    running product, stateₜ = stateₜ₋₁ × factorₜ; else None.

    A first call with every state at 1 returns the factors as the new states; their
    cumulative product (in step order, as the steps multiply) is the state before each
    step; a second call from those states gives the step scalars. The new states it
    returns must equal the products bit for bit: then, by induction over t, every column
    is what the steps compute one by one, whatever ``step_scalars`` does.
    """
    at_t = SimpleNamespace(**hp)
    with np.errstate(all="ignore"):  # the first call's other scalars are thrown away
        factors = opt.step_scalars(NUMPY_OPS, at_t, t, SimpleNamespace(**dict.fromkeys(
            opt.SCALAR_STATE, 1.0)))  # fmt: skip
    before, after = {}, {}
    for key, initial in opt.SCALAR_STATE.items():
        factor = np.asarray(factors[key], dtype=np.float64)
        factor = np.broadcast_to(factor, np.broadcast_shapes(factor.shape, t.shape))
        start = np.full((1, factor.shape[1]), initial, dtype=np.float64)
        products = np.multiply.accumulate(np.concatenate([start, factor]), axis=0)
        before[key], after[key] = products[:-1], products[1:]
    extra = opt.step_scalars(NUMPY_OPS, at_t, t, SimpleNamespace(**before))
    for key, products in after.items():
        if not np.array_equal(np.broadcast_to(extra[key], products.shape), products):
            return None
    return extra


def _step_by_step(opt: Optimizer, hp: dict, steps: int, scheduled: bool) -> dict:
    """The step scalars of t = 1 … steps computed in turn, carrying the scalar state."""
    state = SimpleNamespace(**{k: _shared(v) for k, v in opt.SCALAR_STATE.items()})
    at_t = SimpleNamespace(**hp)  # one namespace, updated in place: this loop is hot
    rows: dict[str, list] = {}
    for step in range(1, steps + 1):
        if scheduled:
            at_t.lr = hp["lr"][step - 1, 0]
        extra = opt.step_scalars(NUMPY_OPS, at_t, step, state)
        for key, value in extra.items():
            rows.setdefault(key, []).append(value)
        state = SimpleNamespace(**{k: extra[k] for k in opt.SCALAR_STATE})
    return {key: np.array(column).reshape(steps, -1) for key, column in rows.items()}


# --------------------------------------------------------------------------------------
# The kernel, generated for one rule, one test function and one set of switches
# --------------------------------------------------------------------------------------

_TEMPLATE = """
def kernel(p, X, S, fixed, per_step, steps, losses, k_lo, k_hi):
    p0, p1, p2 = p[0], p[1], p[2]
    R, C = fixed.shape[0], per_step.shape[1]  # rows of fixed values, columns of step scalars
    for k0 in range(k_lo, k_hi, BLOCK):
        n = min(BLOCK, k_hi - k0)
        # Everything the lane loop touches lives in one fresh array with a row of BLOCK
        # lanes per quantity: the block's points and moments, its hyperparameters and, if
        # they differ per configuration, this step's scalars. The loop then reads and
        # writes nothing else, needs no run-time alias checks and runs in SIMD lanes.
        local = np.empty(({rows} + R + C, BLOCK))
        for j in range(BLOCK):
            k = k0 + min(j, n - 1)  # lanes past the last configuration repeat it
{loads}            for h in range(R):
                local[{rows} + h, j] = fixed[h, k]
        for t in range(steps):
{step_scalars}            for j in range(BLOCK):  # independent configurations: SIMD lanes
                y0, y1 = local[0, j], local[1, j]
                g0, g1 = grad(y0, y1, p0, p1, p2)
{norm}                hp = HP({fields})
{before}{update}{after}
            if history:
                for j in range(n):
                    losses[t + 1, k0 + j] = value(local[0, j], local[1, j], p0, p1, p2)
        for j in range(n):
            k = k0 + j
{stores}            if not history:
                losses[0, k] = value(local[0, j], local[1, j], p0, p1, p2)
"""

# A chain that clips by global norm: each configuration is its own parameter vector, so
# its own ‖ĝ‖ = √(g₀² + g₁²), summed in float64 in the order of the one reduction pass the
# step makes (0 + g₀² + g₁²: any order of two terms gives these bits), then
# pieces.clip_numbers' choice: (‖ĝ‖, c) when ‖ĝ‖ ≥ c, else (1, 1).
_NORM = """\
                norm = np.sqrt(g0 * g0 + g1 * g1)  # this configuration's global norm
                below = norm < {clip_norm}
                clip_divisor = 1.0 if below else norm
                clip_factor = 1.0 if below else {clip_norm}
"""

_SHARED_STEP_SCALARS = "            q{c} = per_step[t, {c}, 0]  # the same in every lane\n"
_PER_LANE_STEP_SCALARS = """\
            for j in range(BLOCK):  # this step's scalars, one per configuration
                for c in range(C):
                    local[{rows} + R + c, j] = per_step[t, c, k0 + j]  # padded to whole blocks
"""

_KERNELS: dict[tuple, Any] = {}


def _kernel(function: str, opt: Optimizer, HP: type, sources: dict, kept, width, history):
    from steplab.fast.kernels import jitted

    cls = type(opt)
    before, after = (
        tuple(p.function for p in side if p.switch is None or sources[p.switch] == ("static", True))
        for side in cls.pieces()
    )  # the pieces switched on: compiled around the rule (switches are static in a sweep)
    key = (function, cls.rule, HP, tuple(sources.items()), kept, width > 1, history,
           before, after)  # fmt: skip
    if key in _KERNELS:
        return _KERNELS[key]
    slots = [j for j, keep in enumerate(kept) if keep]
    rows = 2 + 2 * len(slots)
    # local rows: 0, 1 the point; then per kept moment its two coordinates
    row = {j: 2 + 2 * n for n, j in enumerate(slots)}
    loads = "            local[0, j], local[1, j] = X[k, 0], X[k, 1]\n"
    stores = "            X[k, 0], X[k, 1] = local[0, j], local[1, j]\n"
    for n, j in enumerate(slots):
        lanes = f"local[{row[j]}, j], local[{row[j] + 1}, j]"
        loads += f"            {lanes} = S[{n}, k, 0], S[{n}, k, 1]\n"
        stores += f"            S[{n}, k, 0], S[{n}, k, 1] = {lanes}\n"
    fields, step_scalars = [], ""
    for kind, where in sources.values():
        if kind == "norm":
            fields.append(where)  # a local of the lane loop (_NORM)
        elif kind == "static":
            fields.append(repr(where))
        elif kind == "row":
            fields.append(f"local[{rows + where}, j]")
        elif width > 1:
            fields.append(f"local[{rows} + R + {where}, j]")
        else:
            fields.append(f"q{where}")
            step_scalars += _SHARED_STEP_SCALARS.format(c=where)
    if width > 1:
        step_scalars = _PER_LANE_STEP_SCALARS.format(rows=rows)
    lines_before = "".join(
        f"                y{c}, g{c} = before{j}(ops, hp, y{c}, g{c})\n"
        for j in range(len(before)) for c in (0, 1)
    )  # fmt: skip
    if after:  # they read the point the step started from
        lines_before = "                x0, x1 = y0, y1\n" + lines_before
    lines_after = "".join(
        f"                local[{c}, j] = after{j}(ops, hp, x{c}, local[{c}, j], g{c})\n"
        for j in range(len(after)) for c in (0, 1)
    )  # fmt: skip
    update = ""
    for c in (0, 1):
        outputs = [f"local[{row[j] + c}, j]" if keep else "_" for j, keep in enumerate(kept)]
        inputs = [f"local[{row[j] + c}, j]" if keep else "0.0" for j, keep in enumerate(kept)]
        targets = ", ".join([f"local[{c}, j]", *outputs]) + ","
        arguments = ", ".join([f"y{c}", f"g{c}", *inputs])
        update += f"                {targets} = rule(ops, hp, {arguments})\n"
    norm = _NORM.format(clip_norm=fields[list(sources).index("clip_norm")]) if (
        "clip_divisor" in sources) else ""  # fmt: skip
    source = _TEMPLATE.format(
        norm=norm,
        rows=rows,
        loads=loads,
        stores=stores,
        step_scalars=step_scalars,
        fields=", ".join(fields),
        before=lines_before,
        update=update,
        after=lines_after,
    )
    value, grad = FUNCTIONS[function]
    from steplab.fast import scalar_ops

    namespace = {
        # a module global, not an argument: numba inlines its functions (no calls: SIMD)
        "ops": scalar_ops,
        "np": np,
        "BLOCK": BLOCK,
        "HP": HP,
        "rule": jitted(cls.rule),
        "value": value,
        "grad": grad,
        "history": history,
        **{f"before{j}": jitted(f) for j, f in enumerate(before)},
        **{f"after{j}": jitted(f) for j, f in enumerate(after)},
    }
    exec(compile(source, f"<steplab sweep of {cls.__name__} on {function}>", "exec"), namespace)  # noqa: S102
    # nogil: threads run disjoint ranges of configurations [k_lo, k_hi) side by side.
    kernel = _numba.numba.njit(error_model="numpy", nogil=True)(namespace["kernel"])
    _KERNELS[key] = kernel
    return kernel


def _pad_to_blocks(array: np.ndarray, K: int) -> np.ndarray:
    """``array`` with its last axis (K configurations) padded to whole blocks by repeating
    the last configuration: the kernel's lanes past K read real numbers, never past the end."""
    if array.shape[-1] != K:
        return array  # one column shared by every configuration
    padded = -(-K // BLOCK) * BLOCK
    edge = np.repeat(array[..., -1:], padded - K, axis=-1)
    return np.ascontiguousarray(np.concatenate([array, edge], axis=-1))


# --------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------


def sweep(problem: str, optimizer: Optimizer, x0s, steps: int, *, history: bool = False,
          **options) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Run ``optimizer`` for ``steps`` steps from each row of ``x0s`` on a 2-D test function.

    Parameters
    ----------
    problem:
        A name from :data:`FUNCTIONS` (``"rosenbrock"``, ``"beale"``, …); ``options`` set
        its parameters (e.g. ``a=1, b=100`` for Rosenbrock), as in ``steplab.problems``.
    optimizer:
        Any steplab optimizer. Hyperparameters may be scalars or hold one value per
        configuration (shape ``(K,)`` or ``(K, 1)``): ``Adam(lr=np.logspace(-3, 0, K))``;
        ``lr`` may be a schedule.
    x0s:
        Starting points, shape ``(K, 2)``; configuration ``k`` starts at ``x0s[k]``.
    steps:
        Number of optimizer steps (full-batch gradients: the functions are deterministic).
    history:
        False: return the final loss of each configuration, shape ``(K,)``.
        True: the loss before every step and after the last, shape ``(steps + 1, K)``.

    Returns ``(x, loss)``: the final points ``(K, 2)`` (float64) and the losses. Each
    configuration takes the steps of ``optimizer.step`` on its own (the same rule, in
    float64); a chain that clips by global norm (``fuse(clip_by_global_norm(c), …)``)
    clips each configuration by the norm of its own gradient, as its step alone would.
    Without numba the same loop runs in NumPy (vectorized over configurations), after one
    warning.
    """
    name = str(problem)
    if name not in FUNCTIONS:
        raise ValueError(
            f"unknown 2-D test function {problem!r}; choose one of: {', '.join(FUNCTIONS)}"
        )
    kind = getattr(optimizer, "KIND", None)  # a whole-array modifier (adamw+cautious) too
    if kind is None or not isinstance(optimizer, Optimizer) and kind == "elementwise":
        raise TypeError(f"optimizer must be a steplab optimizer, got {optimizer!r}")
    if kind != "elementwise":
        raise ValueError(
            f"{optimizer.name}: its rule is {optimizer.KIND}; sweeps run element-wise rules"
        )
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    X = np.array(x0s, dtype=np.float64, order="C")
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"x0s must have shape (K, 2) with K >= 1, got {np.shape(x0s)}")
    names, defaults = PARAMETERS[name]
    unknown = sorted(set(options) - set(names))
    if unknown:
        allowed = ", ".join(names) or "none"
        raise ValueError(f"{name} has no parameter {', '.join(unknown)}; its parameters: {allowed}")
    p = np.zeros(3)  # the function's parameters, padded with zeros
    p[: len(names)] = [float(options.get(n, d)) for n, d in zip(names, defaults, strict=True)]
    K, steps = X.shape[0], int(steps)
    if not _numba.available():
        _numba.warn_slow_path(f"numba is not available ({_numba.UNAVAILABLE_REASON})")
        parameters = dict(zip(names, p[: len(names)], strict=True))
        return _numpy_sweep(name, optimizer, X, steps, history, parameters)
    HP, sources, fixed, table = _plan(optimizer, K, steps)
    state = optimizer.init(X)
    kept = tuple(getattr(state, n, None) is not None for n in optimizer.moment_names())
    moments = [getattr(state, n) for n, keep in zip(optimizer.moment_names(), kept, strict=True)
               if keep]  # fmt: skip
    S = np.ascontiguousarray(np.stack(moments) if moments else np.zeros((1, K, 2)))
    losses = np.empty((steps + 1, K) if history else (1, K))
    if history:
        value = FUNCTIONS[name][0]
        losses[0] = [value(x, y, *p[:3]) for x, y in X]
    kernel: Any = _kernel(name, optimizer, HP, sources, kept, table.shape[2], history)
    fixed, table = _pad_to_blocks(fixed, K), _pad_to_blocks(table, K)
    arguments: tuple[Any, ...] = (p, X, S, fixed, table, steps, losses)
    # With several threads, each takes a contiguous share of whole blocks.
    blocks = -(-K // BLOCK)
    from steplab.fast.dispatch import threads as _threads

    threads = min(_threads(), blocks)
    if threads == 1:
        kernel(*arguments, 0, K)
    else:
        edges = [min(K, BLOCK * (blocks * i // threads)) for i in range(threads + 1)]
        with ThreadPoolExecutor(threads) as pool:
            jobs = [pool.submit(kernel, *arguments, lo, hi) for lo, hi in pairwise(edges)]  # type: ignore[call-arg]
            for job in jobs:
                job.result()
    return X, (losses if history else losses[0])


def _numpy_sweep(name, optimizer, X, steps, history, options):
    """The slow path: the readable optimizer in a loop, vectorized over configurations."""
    value, grad = FORMULAS[name]
    parameters = options.values()

    def f(X):
        return value(X[:, 0], X[:, 1], *parameters)

    def g(X):
        return np.stack(grad(X[:, 0], X[:, 1], *parameters), axis=1)

    K = X.shape[0]
    opt = optimizer.replace(**{
        n: np.reshape(v, (K, 1)) if np.ndim(v) >= 1 else v  # (K,) hyperparameters as (K, 1)
        for n in optimizer.hyperparameters()
        if isinstance(v := getattr(optimizer, n), np.ndarray) and v.ndim >= 1
    })  # fmt: skip
    state = opt.init(X)
    losses = [f(X)]
    for _ in range(steps):
        G = g(X)
        # a chain's global norm: each configuration's own, ‖ĝ‖ of its row (K, 1)
        norm = np.sqrt(np.sum(G * G, axis=1, keepdims=True)) if opt.NEEDS_GRAD_NORM else None
        opt.step(X, G, state, grad_norm=norm)
        if history:
            losses.append(f(X))
    return X, (np.array(losses) if history else f(X))
