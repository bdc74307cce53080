"""Many configurations at once: K runs of one optimizer on a 2-D test function.

A sweep (K starting points, hyperparameters that may differ per configuration) is
embarrassingly parallel across configurations but sequential in time. The kernel
therefore takes a block of configurations, keeps their points and moments in small
local arrays (registers and L1 cache), and advances the whole block one step at a time:
the loop over the block has no dependencies, so it runs in SIMD lanes, and nothing
touches main memory until the block is done.

Each optimizer is written once more here as a *coordinate rule*: its loop body for one
coordinate, in float64, with three state slots. The rules follow ``_update`` line by
line, with one change for speed: divisions by per-step constants (1 − ρᵗ) become
multiplications by their reciprocals, so results agree with the readable path to a few
ulps per step rather than bit for bit (tests check them). Per-step constants (bias
corrections, Nadam's μ schedule, RAdam's rectification) are tabulated up front by NumPy.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np

from steplab.fast import _numba
from steplab.fast._numba import lazy_jit
from steplab.fast.functions import FUNCTIONS, PARAMETERS
from steplab.optim.base import Optimizer, bias_correction

BLOCK = 64  # configurations advanced together; their state (~4 KB) stays in L1

# --------------------------------------------------------------------------------------
# Coordinate rules: rule(x, g, a, b, c, lr, h0..h4, q0..q3) -> (x, a, b, c)
# a, b, c: the coordinate's state slots; lr and h0..h4: the configuration's step size and
# other hyperparameters (in the order of RULES below); q0..q3: this step's constants.
# Scalars only: an array argument would bring reference counting into the loop.
# --------------------------------------------------------------------------------------


@lazy_jit(inline=True)
def sgd_rule(x, g, a, b, c, lr, h0, h1, h2, h3, h4, q0, q1, q2, q3):
    return x - lr * g, a, b, c


@lazy_jit(inline=True)
def momentum_rule(x, g, b, a, c, lr, rho, nesterov, h2, h3, h4, q0, q1, q2, q3):
    b = rho * b + g  # velocity
    direction = g + rho * b if nesterov else b
    return x - lr * direction, b, a, c


@lazy_jit(inline=True)
def adagrad_rule(x, g, r, b, c, lr, eps, eps_root, h2, h3, h4, q0, q1, q2, q3):
    r = r + g * g  # accumulate squared gradient
    return x - lr / (eps + math.sqrt(r + eps_root)) * g, r, b, c


@lazy_jit(inline=True)
def rmsprop_rule(x, g, r, m, v, lr, rho, eps, eps_root, centered, mu, q0, q1, q2, q3):
    r = rho * r + (1 - rho) * g * g  # accumulate squared gradient
    m = rho * m + (1 - rho) * g if centered else m  # average gradient (centered only)
    scaled = g / (eps + math.sqrt(r - m * m + eps_root))
    v = mu * v + scaled  # momentum (μ = 0: none)
    return x - lr * v, r, m, v


@lazy_jit(inline=True)
def adadelta_rule(x, g, r, u, c, lr, rho, eps_root, h2, h3, h4, q0, q1, q2, q3):
    r = rho * r + (1 - rho) * g * g  # squared gradients
    delta = math.sqrt(u + eps_root) / math.sqrt(r + eps_root) * g
    u = rho * u + (1 - rho) * delta * delta  # squared updates
    return x - lr * delta, r, u, c


@lazy_jit(inline=True)
def adam_rule(x, g, s, r, r_max, lr, rho1, rho2, eps, eps_root, amsgrad, q0, q1, q2, q3):
    s = rho1 * s + (1 - rho1) * g  # biased first moment
    r = rho2 * r + (1 - rho2) * g * g  # biased second moment
    r_max = max(r_max, r) if amsgrad else r  # AMSGrad: the running maximum of r
    # q0, q1: 1/(1−ρ₁ᵗ), 1/(1−ρ₂ᵗ) (1 without bias correction); q2: eps's factor (ε̂)
    s_hat, r_hat = s * q0, r_max * q1
    return x - lr * s_hat / (eps * q2 + math.sqrt(r_hat + eps_root)), s, r, r_max


@lazy_jit(inline=True)
def adamax_rule(x, g, s, u, c, lr, rho1, rho2, eps, eps_max, h4, q0, q1, q2, q3):
    s = rho1 * s + (1 - rho1) * g  # biased first moment
    u = max(rho2 * u, abs(g) + eps_max)  # infinity norm
    return x - lr * q0 * s / (u + eps), s, u, c  # q0 = 1/(1−ρ₁ᵗ)


@lazy_jit(inline=True)
def nadam_rule(x, g, s, r, c, lr, rho1, rho2, eps, h3, h4, q0, q1, q2, q3):
    s = rho1 * s + (1 - rho1) * g  # biased first moment
    r = rho2 * r + (1 - rho2) * g * g  # biased second moment
    # q0: today's gradient weight, q1: tomorrow's momentum weight, q2: 1/(1−ρ₂ᵗ)
    return x - lr * (q0 * g + q1 * s) / (math.sqrt(r * q2) + eps), s, r, c


@lazy_jit(inline=True)
def radam_rule(x, g, s, r, c, lr, rho1, rho2, eps, eps_hat, h4, q0, q1, q2, q3):
    s = rho1 * s + (1 - rho1) * g  # biased first moment
    r = rho2 * r + (1 - rho2) * g * g  # biased second moment
    # q0: 1/(1−ρ₁ᵗ), q1: rectification (0: not yet), q2: √(1−ρ₂ᵗ), q3: 1/(1−ρ₂ᵗ)
    # eps_hat: √(1−ρ₂ᵗ)/(√r + ε), else 1/(√r̂ + ε); selects rather than branches (SIMD)
    numerator = q2 if eps_hat else 1.0
    r_used = r if eps_hat else r * q3
    adaptive = numerator / (math.sqrt(r_used) + eps)
    factor = q1 * adaptive if q1 > 0 else 1.0
    return x - lr * (s * q0) * factor, s, r, c


@lazy_jit(inline=True)
def lion_rule(x, g, m, b, c, lr, rho1, rho2, h2, h3, h4, q0, q1, q2, q3):
    direction = rho1 * m + (1 - rho1) * g  # interpolate momentum and gradient
    m = rho2 * m + (1 - rho2) * g  # momentum tracks ĝ
    return x - lr * np.sign(direction), m, b, c


# --------------------------------------------------------------------------------------
# Per-optimizer hyperparameter rows and per-step constants (NumPy, float64)
# --------------------------------------------------------------------------------------


def _steps(steps):
    return np.arange(1, steps + 1, dtype=np.float64)[:, None]  # t = 1 … steps, as a column


def _adam_constants(opt, h, steps):
    t = _steps(steps)
    if opt.bias_correction:
        inv1, inv2 = 1 / bias_correction(h["rho1"], t), 1 / bias_correction(h["rho2"], t)
    else:
        inv1 = inv2 = np.ones_like(t)
    eps_factor = 1 / np.sqrt(bias_correction(h["rho2"], t)) if opt.eps_hat else np.ones_like(t)
    return [inv1, inv2, eps_factor]


def _nadam_constants(opt, h, steps):
    t = _steps(steps)
    mu = h["rho1"] * (1 - 0.5 * 0.96 ** (t * h["momentum_decay"]))
    mu_next = h["rho1"] * (1 - 0.5 * 0.96 ** ((t + 1) * h["momentum_decay"]))
    product = np.cumprod(np.broadcast_to(mu, np.broadcast_shapes(mu.shape, mu_next.shape)), 0)
    return [(1 - mu) / (1 - product), mu_next / (1 - product * mu_next),
            1 / bias_correction(h["rho2"], t)]  # fmt: skip


def _radam_constants(opt, h, steps):
    t = _steps(steps)
    rho2 = h["rho2"]
    rho_inf = 2 / (1 - rho2) - 1
    rho_t = rho_inf - 2 * t * rho2**t / bias_correction(rho2, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    rectification = np.where(rho_t > 5, np.sqrt(np.maximum(ratio, 0)), 0.0)
    correction = bias_correction(rho2, t)
    return [1 / bias_correction(h["rho1"], t), rectification, np.sqrt(correction), 1 / correction]


def _adamax_constants(opt, h, steps):
    return [1 / bias_correction(h["rho1"], _steps(steps))]


#: name -> (rule, extra hyperparameter rows, per-step constants or None, initial state)
RULES = {
    "sgd": (sgd_rule, (), None),
    "momentum": (momentum_rule, ("rho", "nesterov"), None),
    "nesterov": (momentum_rule, ("rho", "nesterov"), None),
    "adagrad": (adagrad_rule, ("eps", "eps_root"), None),
    "rmsprop": (rmsprop_rule, ("rho", "eps", "eps_root", "centered", "momentum"), None),
    "adadelta": (adadelta_rule, ("rho", "eps_root"), None),
    "adam": (adam_rule, ("rho1", "rho2", "eps", "eps_root", "amsgrad"), _adam_constants),
    "adamw": (adam_rule, ("rho1", "rho2", "eps", "eps_root", "amsgrad"), _adam_constants),
    "adamax": (adamax_rule, ("rho1", "rho2", "eps", "eps_max"), _adamax_constants),
    "nadam": (nadam_rule, ("rho1", "rho2", "eps"), _nadam_constants),
    "radam": (radam_rule, ("rho1", "rho2", "eps", "eps_hat"), _radam_constants),
    "lion": (lion_rule, ("rho1", "rho2"), None),
}


def _hyperparameters(opt: Optimizer, K: int) -> dict[str, np.ndarray]:
    """Every hyperparameter as a float64 array of shape (K,) (switches as 0/1)."""
    values = {}
    for name in opt.hyperparameters():
        value = np.asarray(getattr(opt, name), dtype=np.float64)
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]  # (K, 1) -> (K,)
        if value.ndim > 1 or value.size not in (1, K):
            raise ValueError(
                f"{opt.name}: {name} must be a scalar or have one value per configuration "
                f"(shape ({K},) or ({K}, 1)), got shape {np.shape(getattr(opt, name))}"
            )
        values[name] = np.broadcast_to(value.reshape(-1), (K,))
    values["nesterov"] = np.full(K, float(opt.name == "nesterov"))
    return values


def _tables(opt: Optimizer, K: int, steps: int):
    """(rule, hp (H, K), constants (steps, C, 1 or K), initial state (3, K)) for a sweep."""
    rule, extra, constants = RULES[opt.name]
    h = _hyperparameters(opt, K)
    lr, wd = h["lr"], h["weight_decay"]
    decoupled = opt.DECOUPLED_WEIGHT_DECAY
    rows = [lr, wd * (not decoupled), 1 - lr * wd if decoupled else np.ones(K)]
    rows += [h[name] for name in extra]
    rows += [np.zeros(K)] * (8 - len(rows))  # the kernel reads 8 rows (unused ones: 0)
    hp = np.ascontiguousarray(np.stack(rows))
    if constants is None:
        table = np.zeros((max(steps, 1), 4, 1))
    else:
        # Constants depend on t and on the decay rates: shared by all configurations
        # unless a decay rate varies between them.
        shared = {name: (v[0] if np.all(v == v[0]) else v) for name, v in h.items()}
        columns = constants(opt, shared, steps)
        width = max(np.shape(c)[1] for c in columns) if steps else 1
        table = np.zeros((max(steps, 1), 4, width))  # the kernel reads 4 (unused ones: 0)
        for j, column in enumerate(columns):
            table[:steps, j, :] = column
    state = np.zeros((3, K))
    if opt.name in ("adagrad", "rmsprop"):
        state[0] = h["r0"]  # the accumulator's initial value
    return rule, hp, table, state


# --------------------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------------------


def _make_kernel(value, grad, rule, per_config, has_l2, has_decay, history):
    """Compile the sweep loop for one test function and one optimizer rule.

    The function, the rule and the switches are compile-time constants of the closure,
    so numba inlines them and drops what is switched off. (Closures are not cached on
    disk: the first sweep of a combination in a process compiles for a second or two.)
    """

    # nogil: threads run disjoint ranges of configurations [k_lo, k_hi) side by side.
    @_numba.numba.njit(error_model="numpy", nogil=True)
    def kernel(p, X, S, hp, cs, steps, losses, k_lo, k_hi):
        p0, p1, p2 = p[0], p[1], p[2]
        for k0 in range(k_lo, k_hi, BLOCK):
            n = min(BLOCK, k_hi - k0)
            # The block's points and three state slots per coordinate: 8 short rows, in L1.
            local = np.empty((8, BLOCK))
            x0, x1, a0, b0, c0 = local[0], local[1], local[2], local[3], local[4]
            a1, b1, c1 = local[5], local[6], local[7]
            for j in range(n):
                k = k0 + j
                x0[j], x1[j] = X[k, 0], X[k, 1]
                a0[j], b0[j], c0[j] = S[0, k], S[1, k], S[2, k]
                a1[j], b1[j], c1[j] = S[0, k], S[1, k], S[2, k]
            for t in range(steps):
                for i in range(n):  # independent configurations: SIMD lanes
                    # unsigned indices: numba then skips its negative-index wraparound,
                    # which would turn these loads into gathers
                    j = np.uint64(i)
                    k = np.uint64(k0 + i)
                    kq = k if per_config else np.uint64(0)
                    y0, y1 = x0[j], x1[j]
                    g0, g1 = grad(y0, y1, p0, p1, p2)
                    if has_l2:  # L2 penalty in the gradient
                        g0, g1 = g0 + hp[1, k] * y0, g1 + hp[1, k] * y1
                    if has_decay:  # decoupled weight decay (AdamW, Lion)
                        y0, y1 = y0 * hp[2, k], y1 * hp[2, k]
                    lr, h0, h1, h2 = hp[0, k], hp[3, k], hp[4, k], hp[5, k]
                    h3, h4 = hp[6, k], hp[7, k]
                    q0, q1, q2, q3 = cs[t, 0, kq], cs[t, 1, kq], cs[t, 2, kq], cs[t, 3, kq]
                    x0[j], a0[j], b0[j], c0[j] = rule(
                        y0, g0, a0[j], b0[j], c0[j], lr, h0, h1, h2, h3, h4, q0, q1, q2, q3
                    )
                    x1[j], a1[j], b1[j], c1[j] = rule(
                        y1, g1, a1[j], b1[j], c1[j], lr, h0, h1, h2, h3, h4, q0, q1, q2, q3
                    )
                if history:
                    for j in range(n):
                        losses[t + 1, k0 + j] = value(x0[j], x1[j], p0, p1, p2)
            for j in range(n):
                k = k0 + j
                X[k, 0], X[k, 1] = x0[j], x1[j]
                if not history:
                    losses[0, k] = value(x0[j], x1[j], p0, p1, p2)

    return kernel


_KERNELS: dict[tuple, object] = {}


def _kernel(function: str, optimizer: str, *switches):
    key = (function, optimizer, *switches)
    if key not in _KERNELS:
        value, grad = FUNCTIONS[function]
        _KERNELS[key] = _make_kernel(value, grad, RULES[optimizer][0], *switches)
    return _KERNELS[key]


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
        configuration (shape ``(K,)`` or ``(K, 1)``): ``Adam(lr=np.logspace(-3, 0, K))``.
    x0s:
        Starting points, shape ``(K, 2)``; configuration ``k`` starts at ``x0s[k]``.
    steps:
        Number of optimizer steps (full-batch gradients: the functions are deterministic).
    history:
        False: return the final loss of each configuration, shape ``(K,)``.
        True: the loss before every step and after the last, shape ``(steps + 1, K)``.

    Returns ``(x, loss)``: the final points ``(K, 2)`` (float64) and the losses. The numbers
    are those of ``optimizer.step`` in a loop (to rounding, a few ulps per step). Without
    numba the same loop runs in NumPy (vectorized over configurations), after one warning.
    """
    name = str(problem)
    if name not in FUNCTIONS:
        raise ValueError(
            f"unknown 2-D test function {problem!r}; choose one of: {', '.join(FUNCTIONS)}"
        )
    if not isinstance(optimizer, Optimizer) or optimizer.name not in RULES:
        raise TypeError(f"optimizer must be a steplab optimizer, got {optimizer!r}")
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
    if not _numba.available() or not isinstance(getattr(optimizer, "lr", 0.0), (float, np.ndarray)):
        if _numba.available() is False:
            _numba.warn_slow_path(f"numba is not available ({_numba.UNAVAILABLE_REASON})")
        parameters = dict(zip(names, p[: len(names)], strict=True))
        return _numpy_sweep(name, optimizer, X, steps, history, parameters)
    _, hp, table, state = _tables(optimizer, K, steps)
    losses = np.empty((steps + 1, K) if history else (1, K))
    if history:
        value = FUNCTIONS[name][0]
        losses[0] = [value(x, y, *p[:3]) for x, y in X]
    switches = (table.shape[2] > 1, bool(np.any(hp[1])), bool(np.any(hp[2] != 1)), history)
    kernel = _kernel(name, optimizer.name, *switches)
    arguments = (p, X, state, hp, table, steps, losses)
    # With several threads, each takes a contiguous share of whole blocks.
    blocks = -(-K // BLOCK)
    threads = min(_threads(), blocks)
    if threads == 1:
        kernel(*arguments, 0, K)
    else:
        edges = [min(K, BLOCK * (blocks * i // threads)) for i in range(threads + 1)]
        with ThreadPoolExecutor(threads) as pool:
            jobs = [pool.submit(kernel, *arguments, lo, hi) for lo, hi in pairwise(edges)]
            for job in jobs:
                job.result()
    return X, (losses if history else losses[0])


def _threads() -> int:
    from steplab.fast.dispatch import threads

    return threads()


def _numpy_sweep(name, optimizer, X, steps, history, options):
    """The slow path: the readable optimizer in a loop, vectorized over configurations."""
    from steplab import problems

    fn = problems.get(name, **options)
    K = X.shape[0]
    opt = optimizer.replace(**{
        n: np.reshape(v, (K, 1)) if np.ndim(v) >= 1 else v  # (K,) hyperparameters as (K, 1)
        for n in optimizer.hyperparameters()
        if np.ndim(v := getattr(optimizer, n)) >= 1
    })  # fmt: skip
    state = opt.init(X)
    losses = [fn.f(X)]
    for _ in range(steps):
        opt.step(X, fn.g(X), state)
        if history:
            losses.append(fn.f(X))
    return X, (np.array(losses) if history else fn.f(X))
