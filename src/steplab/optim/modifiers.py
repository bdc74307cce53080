"""Recent modifications of Adam: ADOPT, AdEMAMix, the cautious mask, MARS and Prodigy.

Two kinds, as steplab's design separates them:

- **element-wise rules** (ADOPT, AdEMAMix) are :class:`~steplab.optim.base.Optimizer`
  subclasses like Adam: one coordinate at a time, so the fused and sweep kernels are
  built from them as from every rule;
- **rules with reductions** (the cautious mask's rescaling, MARS' clipping of the
  corrected gradient by its norm, Prodigy's dot products) see the whole array θ; each
  writes its reductions explicitly (``np.sum``, ``np.dot``, ``np.linalg.norm``) in
  :class:`WholeArrayOptimizer`'s ``rule``. θ is one array, so a reduction runs over
  every parameter (a model's parameters concatenated, as Prodigy's global sums want).

Where the references disagree, each class says which one steplab follows and why
(see also docs/modern.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np

from steplab.optim.base import (
    FUSED_MIN_SIZE,
    Optimizer,
    State,
    bias_correction,
    check_in_interval,
    hyper,
    step_backend,
    sum_of_squares,
)
from steplab.optim.ops import NUMPY_OPS, Ops
from steplab.optim.registry import register, register_wrapper

# --------------------------------------------------------------------------------------
# ADOPT (Taniguchi et al., 2024)
# --------------------------------------------------------------------------------------


class ADOPTState(NamedTuple):
    t: int  # steps taken
    m: Any  # first moment of the normalized gradient
    v: Any  # second moment of the gradient (the previous step's, when normalizing)


def minimum(ops: Any, x: Any, y: Any) -> Any:
    """min(x, y), element-wise, from ``maximum`` alone."""
    return -ops.maximum(-x, -y)


def adopt_step_scalars(ops, hp, t, state):
    """Step 1 only sets v = ĝ² (ρ₂ₜ = 0) and moves nothing (ρ₁ₜ = 1 and a clip of 0);
    afterwards the clip bound is (t − 1)^¼, the paper's t^¼ counted from its t = 1."""
    first = t == 1
    return {
        "rho1_t": ops.where(first, 1.0, hp.rho1),
        "rho2_t": ops.where(first, 0.0, hp.rho2),
        "clip_t": ops.pow(t - 1, 0.25) if hp.clipping else math.inf,
    }


def adopt_rule(ops, hp, theta, g, m, v):
    n = g / ops.maximum(ops.sqrt(v), hp.eps)  # normalize by the *previous* v
    # clip to ±(t−1)^¼, bounding the first steps' outliers (min(n, c) = −max(−n, −c); the
    # fused kernels compile the rule alone, so no helper function here)
    n = ops.maximum(-ops.maximum(-n, -hp.clip_t), -hp.clip_t)
    m = hp.rho1_t * m + (1 - hp.rho1_t) * n  # momentum of the normalized gradient
    theta = theta + -hp.lr * m  # apply update
    v = hp.rho2_t * v + (1 - hp.rho2_t) * g * g  # only now does ĝ enter v
    return theta, m, v


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ADOPT(Optimizer):
    """ADOPT: n = clip(ĝ/max(√v, ε), (t−1)^¼);  m ← ρ₁m + (1−ρ₁)n;  θ ← θ − α·m;
    v ← ρ₂v + (1−ρ₂)ĝ⊙ĝ  (v₁ = ĝ₁², and the first step moves nothing).

    Normalizing by the second moment of the *previous* gradients (v is updated last)
    removes the correlation between ĝ and its scaling that makes Adam diverge for
    some ρ₂ (Reddi et al.'s counterexample); that is why ADOPT converges for any ρ₂.
    Defaults: the paper's α = 1e-3, ρ₁ = 0.9, ρ₂ = 0.9999, ε = 1e-6. The clip bound
    follows the paper and optax ((t − 1)^¼ at steplab's step t); pytorch_optimizer 4.1.0
    uses t^¼ (``clip_lambda=lambda t: (t - 1) ** 0.25`` makes it equal).
    """

    name = "adopt"
    state_type = ADOPTState
    rule = staticmethod(adopt_rule)
    step_scalars = staticmethod(adopt_step_scalars)
    PRESETS = {"optax": {}, "pytorch_optimizer": {}}

    lr: float = hyper(1e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.9999, "[0, 1)", "decay rate ρ₂ of the second moment")
    eps: float = hyper(1e-6, "(0, inf)", "lower bound of √v when normalizing")
    clipping: bool = hyper(True, "bool", "clip the normalized gradient to ±(t−1)^¼")


# --------------------------------------------------------------------------------------
# AdEMAMix (Pagliardini et al., 2024)
# --------------------------------------------------------------------------------------


class AdEMAMixState(NamedTuple):
    t: int  # steps taken
    s: Any  # fast EMA of the gradient (Adam's first moment)
    s_slow: Any  # slow EMA of the gradient (ρ₃ close to 1, not bias-corrected)
    r: Any  # second moment


def ademamix_step_scalars(ops, hp, t, state):
    """Bias corrections, and the warm-ups of α (linear) and ρ₃ (so that the slow EMA's
    half-life grows linearly) over ``warmup_steps`` (none when 0)."""
    if hp.warmup_steps_on:
        frac = ops.where(t < hp.warmup_steps, t / ops.maximum(hp.warmup_steps, 1), 1.0)
        log1, log3 = np.log(hp.rho1), np.log(hp.rho3)  # of hyperparameters: never traced
        # exp(log ρ₁·log ρ₃/((1 − f)·log ρ₃ + f·log ρ₁)), written as a power of ρ₁ so that
        # a traced t (JAX) works through ops.pow
        rho3_t = ops.pow(hp.rho1, log3 / ((1 - frac) * log3 + frac * log1))
        alpha_t, rho3_t = hp.alpha * frac, minimum(ops, rho3_t, hp.rho3)
    else:
        alpha_t, rho3_t = hp.alpha, hp.rho3
    return {
        "correct1": 1 / bias_correction(hp.rho1, t, ops),
        "correct2": 1 / bias_correction(hp.rho2, t, ops),
        "alpha_t": alpha_t,
        "rho3_t": rho3_t,
    }


def ademamix_rule(ops, hp, theta, g, s, s_slow, r):
    s = hp.rho1 * s + (1 - hp.rho1) * g  # fast EMA (Adam's s)
    s_slow = hp.rho3_t * s_slow + (1 - hp.rho3_t) * g  # slow EMA: remembers ~1/(1−ρ₃) steps
    r = hp.rho2 * r + (1 - hp.rho2) * g * g  # second moment
    s_hat = s * hp.correct1  # correct bias (the slow EMA is left to fill slowly)
    r_hat = r * hp.correct2
    delta = -hp.lr * (s_hat + hp.alpha_t * s_slow) / (ops.sqrt(r_hat + hp.eps_root) + hp.eps)
    theta = theta + delta  # apply update
    return theta, s, s_slow, r


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AdEMAMix(Optimizer):
    """AdEMAMix: Adam's update plus α times a slow EMA of the gradients (ρ₃ = 0.9999):
    Δθ = −α_lr·(ŝ + α·s_slow)/(√r̂ + ε), decoupled weight decay as AdamW.

    Old gradients stay relevant for tens of thousands of steps; a slow EMA keeps them
    without letting them dominate the fast response. α and ρ₃ warm up over
    ``warmup_steps`` (the paper's T_α = T_ρ₃; 0: none) because a slow EMA that starts
    at full strength destabilizes the first steps. Defaults: the paper's (α = 5,
    ρ₁ = 0.9, ρ₂ = 0.999, ρ₃ = 0.9999, ε = 1e-8). Weight decay is decoupled as in the
    paper and optax; pytorch_optimizer's default is L2 (``weight_decouple=False``).
    """

    name = "ademamix"
    state_type = AdEMAMixState
    rule = staticmethod(ademamix_rule)
    step_scalars = staticmethod(ademamix_step_scalars)
    PRESETS = {"optax": {}, "pytorch_optimizer": {}}
    DECOUPLED_WEIGHT_DECAY = True
    OFF_WHEN_ZERO = ("weight_decay", "warmup_steps")

    lr: float = hyper(1e-3, "(0, inf)", "global step size")
    rho1: float = hyper(0.9, "(0, 1)", "decay rate ρ₁ of the fast EMA")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    rho3: float = hyper(0.9999, "(0, 1)", "decay rate ρ₃ of the slow EMA")
    alpha: float = hyper(5.0, "[0, inf)", "weight α of the slow EMA")
    eps: float = hyper(1e-8, "[0, inf)", "constant added outside the square root")
    eps_root: float = hyper(0.0, "[0, inf)", "constant added inside the square root")
    warmup_steps: float = hyper(0.0, "[0, inf)", "warm-up of α and ρ₃ (0: none)")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ")


# --------------------------------------------------------------------------------------
# Rules that see the whole array: the cautious mask, MARS, Prodigy
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class WholeArrayOptimizer:
    """An optimizer whose rule needs reductions over θ: hyperparameters as ``hyper``
    fields (checked on construction), ``init`` and an in-place ``step`` like every
    optimizer's; ``rule(theta, g, state)`` returns the new θ and sets the new moments."""

    name: ClassVar[str] = "whole-array optimizer"
    # Not a base.KINDS rule: the paths that run element-wise rules (fused, sweeps, torch,
    # JAX) check KIND and refuse this one with a message naming it.
    KIND: ClassVar[str] = "whole_array"
    MOMENTS: ClassVar[tuple[str, ...]] = ()
    #: the moments that start as a copy of θ (the others start at 0)
    COPIES_THETA: ClassVar[tuple[str, ...]] = ()
    SCALARS: ClassVar[dict[str, float]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if "interval" in f.metadata:
                value = check_in_interval(f.name, getattr(self, f.name), f.metadata["interval"])
                object.__setattr__(self, f.name, value)

    @classmethod
    def hyperparameters(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls) if "interval" in f.metadata}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **{k: getattr(self, k) for k in self.hyperparameters()}}

    def init(self, theta: np.ndarray) -> State:
        moments = {name: self.initial(name, theta) for name in self.MOMENTS}
        return State(t=0, made_by=self.name, shape=theta.shape, dtype=theta.dtype.str,
                     **self.initial_scalars(), **moments)  # fmt: skip

    def initial(self, name: str, theta: np.ndarray) -> np.ndarray:
        return theta.copy() if name in self.COPIES_THETA else np.zeros_like(theta)

    def initial_scalars(self) -> dict[str, float]:
        """The scalar state before the first step."""
        return dict(self.SCALARS)

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State) -> np.ndarray:
        grad = np.asarray(grad)
        if grad.shape != theta.shape:
            raise ValueError(f"grad has shape {grad.shape} but theta has shape {theta.shape}")
        if getattr(state, "made_by", None) != self.name:
            raise ValueError(
                f"this state was made by {getattr(state, 'made_by', None)}.init, "
                f"not by {self.name}.init"
            )
        state.t += 1
        theta[...] = self.rule(theta, grad, state)
        return theta

    def rule(self, theta: Any, g: Any, state: Any, ops: Ops = NUMPY_OPS) -> Any:
        """The new θ (the new moments written into ``state``'s arrays). θ is every
        parameter as one flat or whole array: NumPy's, or torch's with ``TORCH_OPS``
        (steplab.torch.modifiers runs the same rule); reductions through :func:`_dot`."""
        raise NotImplementedError


def _dot(x: Any, y: Any) -> float:
    """⟨x, y⟩ as a Python float, for NumPy arrays and torch tensors alike (a matrix
    product of the flattened arrays: NumPy's np.dot, bit for bit)."""
    return float(x.reshape(-1) @ y.reshape(-1))


class Reductions(NamedTuple):
    """How a whole-array rule reduces θ-sized arrays to a number, and the scalar
    functions it applies to such numbers (and to the step count)."""

    dot: Callable[[Any, Any], Any]  # ⟨x, y⟩ over every element
    sqrt: Callable[[Any], Any]
    maximum: Callable[[Any, Any], Any]


#: Reductions to Python floats (NumPy arrays and torch tensors): a rule may branch on them.
PYTHON_REDUCTIONS = Reductions(dot=_dot, sqrt=math.sqrt, maximum=max)


def cautious_mask(direction: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Liang et al.'s mask: 1 where the step's direction agrees in sign with the gradient,
    0 elsewhere, rescaled by n/(Σmask + 1) so that the step keeps its size on average."""
    mask = (direction * g > 0).astype(g.dtype)
    return mask * cautious_scale(mask.size, int(np.count_nonzero(mask)), g.dtype)  # one reduction


def cautious_scale(n: int, count: int, dtype: Any) -> Any:
    """n/(Σmask + 1) in ``dtype`` from the exact count Σmask (a float32 sum of ones would
    round above 2²⁴); the fused two-pass kernel (``steplab.fast``) uses the same number."""
    number = np.dtype(dtype).type
    return number(n) / (number(count) + number(1))


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Cautious(WholeArrayOptimizer):
    """The cautious mask around any momentum optimizer (C-AdamW, C-Lion, C-ADOPT ...):
    the base optimizer's step, with the coordinates whose step points uphill (the step
    Δθ and ĝ share a sign) set to zero, the others scaled by n/(Σmask + 1).

    Momentum can point against today's gradient; updating those coordinates anyway is
    what makes momentum methods overshoot. The moments are the base optimizer's,
    updated as usual; only the step is masked. Decoupled weight decay is applied to θ
    first and not masked (as pytorch_optimizer, whose Lion/ADOPT ``cautious=True`` this
    equals; its AdEMAMix masks the fast EMA alone, steplab the whole step as the paper).

    Where the base's ``impl`` sends its steps to the fused backend (``steplab.fast``), the
    step runs there in two passes built from the base's rule and pieces (count the mask,
    then take the masked step), with the same bits as this class's NumPy step.
    """

    base: Optimizer = dataclasses.field(default_factory=lambda: _default_base())

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.base, Optimizer):
            raise TypeError(f"Cautious wraps a steplab Optimizer, got {self.base!r}")
        if isinstance(getattr(self.base, "lr", 0.0), np.ndarray):
            raise ValueError("Cautious needs scalar hyperparameters (the mask is per array)")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.base.name}+cautious"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base.config()}

    def init(self, theta: np.ndarray) -> State:
        state = self.base.init(theta)
        state.made_by = self.name
        return state

    def step(self, theta: np.ndarray, grad: np.ndarray, state: State) -> np.ndarray:
        if getattr(state, "made_by", None) != self.name:
            raise ValueError(
                f"this state was made by {getattr(state, 'made_by', None)}.init, "
                f"not by {self.name}.init"
            )
        base, decay = self.base, None
        if base.DECOUPLED_WEIGHT_DECAY and np.any(base.weight_decay):
            lr = base.lr(state.t + 1) if callable(base.lr) else base.lr  # type: ignore[attr-defined]
            decay = 1 - lr * base.weight_decay  # decay first, not masked
            base = base.replace(weight_decay=0.0)
        backend = self._fused_backend(base, theta, np.asarray(grad), state)
        if backend is not None:  # the same step in two passes over memory (steplab.fast)
            try:
                factor = 1.0 if decay is None else decay  # x·1 is x
                return self._fused_step(backend, base, theta, np.asarray(grad), state, factor)
            except backend.CompileError as exc:  # nothing written: NumPy takes the step
                if base.impl == "fused":
                    raise
                backend.warn_slow_path(str(exc))
        start = theta if decay is None else theta * decay
        new_theta, new = base.update(start, np.asarray(grad), state)
        delta = new_theta - start
        theta[...] = start + delta * cautious_mask(-delta, grad)  # −Δθ: the descent direction
        state.impl = "numpy"
        for name, value in new._asdict().items():
            if isinstance(getattr(state, name, None), np.ndarray):
                getattr(state, name)[...] = value
            elif value is not None:
                setattr(state, name, value)
        return theta

    def _fused_backend(self, base: Optimizer, theta: np.ndarray, grad: np.ndarray,
                       state: State) -> Any:  # fmt: skip
        """The fused backend when the base's ``impl`` and the size send its steps there and
        it takes the cautious step, else None (``impl="fused"`` raises with the reason)."""
        if base.impl == "numpy" or (base.impl == "auto" and theta.size < FUSED_MIN_SIZE):
            return None
        if grad.shape != theta.shape or grad.dtype != theta.dtype:
            return None  # NumPy's step handles (and names) what does not match
        backend = step_backend("fused")
        if backend is not None and not hasattr(backend, "cautious_step"):
            backend = None
        declared = base.declared_for(theta.shape)
        reason = "no fused step backend with a cautious step is registered"
        if backend is not None:
            reason = backend.why_not(base, theta, grad, state, declared)
            if reason is None:
                return backend
        if base.impl == "fused":
            raise ValueError(f"{self.name}: impl='fused' cannot run this step: {reason}")
        return None

    def _fused_step(self, backend: Any, base: Optimizer, theta: np.ndarray, grad: np.ndarray,
                    state: State, decay: float) -> np.ndarray:  # fmt: skip
        """The step on the fused backend: the base's step values as its ``update`` prepares
        them, the two passes, then t and the scalar state."""
        t = state.t + 1
        norm = math.sqrt(sum_of_squares(grad)) if base.NEEDS_GRAD_NORM else None
        declared = base.declared_for(theta.shape)
        hp, scalars = base.prepare_step(declared, t, state, NUMPY_OPS, grad_norm=norm)
        backend.cautious_step(base, hp, theta, grad, state, decay)
        state.t, state.impl = t, "fused"
        for name, value in scalars.items():
            setattr(state, name, value)
        return theta


def _default_base() -> Optimizer:
    from steplab.optim.adam import AdamW

    return AdamW.like("torch")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class MARS(WholeArrayOptimizer):
    """MARS-AdamW (Yuan et al., 2024): AdamW on a variance-reduced gradient.

    c = ĝ + γ·ρ₁/(1−ρ₁)·(ĝ − ĝ_prev), divided by ‖c‖ when ‖c‖ > 1 (one reduction);
    m ← ρ₁m + (1−ρ₁)c;  v ← ρ₂v + (1−ρ₂)c⊙c;  θ ← θ(1 − αλ) − α·m̂/((√v + ε)/√(1−ρ₂ᵗ)).
    The previous gradient is state (``g_prev``, 0 before the first step). Defaults and
    the ε inside the bias correction follow pytorch_optimizer 4.1.0 (α = 3e-3,
    ρ₁ = 0.95, ρ₂ = 0.99, γ = 0.025), the reference this class equals.
    """

    name = "mars"
    MOMENTS = ("m", "v", "g_prev")

    lr: float = hyper(3e-3, "(0, inf)", "global step size α")
    rho1: float = hyper(0.95, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.99, "[0, 1)", "decay rate ρ₂ of the second moment")
    gamma: float = hyper(0.025, "[0, inf)", "weight γ of the gradient correction")
    eps: float = hyper(1e-8, "[0, inf)", "constant added to √v")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ")

    def rule(self, theta: Any, g: Any, state: Any, ops: Ops = NUMPY_OPS) -> Any:
        theta, m, v, g_prev = mars_rule(
            ops, PYTHON_REDUCTIONS, self, state.t, theta, g, state.m, state.v, state.g_prev
        )
        state.m[...], state.v[...], state.g_prev[...] = m, v, g_prev
        return theta


def mars_rule(ops: Ops, r: Reductions, hp: MARS, t: Any, theta: Any, g: Any,
              m: Any, v: Any, g_prev: Any) -> tuple[Any, Any, Any, Any]:  # fmt: skip
    """MARS' step on θ (every parameter, one array): the new θ, m, v and ĝ_prev. The
    reduction's results and the step count t go through ``r`` (Python floats for NumPy and
    torch; traced values under ``jax.jit``, :func:`steplab.jax.modifiers.mars`)."""
    c = g + hp.gamma * (hp.rho1 / (1 - hp.rho1)) * (g - g_prev)
    norm = r.sqrt(r.dot(c, c))  # the reduction: clip the corrected gradient's norm to 1
    c = c / r.maximum(norm, 1.0)  # c/1 is c, bit for bit: unclipped when ‖c‖ ≤ 1
    m = hp.rho1 * m + (1 - hp.rho1) * c
    v = hp.rho2 * v + (1 - hp.rho2) * c * c
    denominator = (ops.sqrt(v) + hp.eps) / r.sqrt(1 - ops.pow(hp.rho2, t))
    theta = theta * (1 - hp.lr * hp.weight_decay)  # decoupled weight decay
    theta = theta + -hp.lr * (m / (1 - ops.pow(hp.rho1, t))) / denominator
    return theta, m, v, g


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Prodigy(WholeArrayOptimizer):
    """Prodigy (Mishchenko & Defazio, 2023): Adam whose step size d is estimated.

    With dlr = d·α·(√(1−ρ₂ᵗ)/(1−ρ₁ᵗ) if ``bias_correction``):
    m ← ρ₁m + (1−ρ₁)·d·ĝ;  v ← ρ₂v + (1−ρ₂)·d²·ĝ⊙ĝ;
    r ← ρ₃r + (d/d₀)·dlr·⟨ĝ, θ₀ − θ⟩;  s ← ρ₃s + (d/d₀)·dlr·ĝ;  (the two reductions)
    d ← max(d, r/‖s‖₁);  θ ← θ(1 − dlr·λ) − dlr·m/(√v + d·ε).

    d₀ = 1e-6 grows to the distance to the solution as ⟨ĝ, θ₀ − θ⟩ accumulates, so
    α = 1 is the right step size. ``bias_correction`` is off by default, as in the
    authors' code and pytorch_optimizer; optax.contrib.prodigy always corrects
    (``bias_correction=True`` equals it). ρ₃ defaults to √ρ₂ (``rho3=None``).
    """

    name = "prodigy"
    MOMENTS = ("m", "v", "s", "theta0")
    COPIES_THETA = ("theta0",)
    SCALARS = {"d": 0.0, "numerator": 0.0}

    lr: float = hyper(1.0, "(0, inf)", "multiplier α of the estimated step size")
    rho1: float = hyper(0.9, "[0, 1)", "decay rate ρ₁ of the first moment")
    rho2: float = hyper(0.999, "[0, 1)", "decay rate ρ₂ of the second moment")
    rho3: float | None = None
    eps: float = hyper(1e-8, "[0, inf)", "constant added to √v (times d)")
    d0: float = hyper(1e-6, "(0, inf)", "initial estimate d₀ of the step size")
    d_coef: float = hyper(1.0, "(0, inf)", "multiplier of the estimate r/‖s‖₁")
    bias_correction: bool = hyper(False, "bool", "scale dlr by √(1−ρ₂ᵗ)/(1−ρ₁ᵗ) (optax)")
    weight_decay: float = hyper(0.0, "[0, inf)", "decoupled weight decay λ")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rho3 is not None:
            object.__setattr__(self, "rho3", check_in_interval("rho3", self.rho3, "[0, 1)"))

    def initial_scalars(self) -> dict[str, float]:
        return {**self.SCALARS, "d": self.d0}

    def rule(self, theta: Any, g: Any, state: Any, ops: Ops = NUMPY_OPS) -> Any:
        t, d = state.t, state.d
        rho3 = math.sqrt(self.rho2) if self.rho3 is None else self.rho3
        correction = 1.0
        if self.bias_correction:
            correction = math.sqrt(1 - self.rho2**t) / (1 - self.rho1**t)
        dlr = d * self.lr * correction
        m = self.rho1 * state.m + (1 - self.rho1) * d * g
        v = self.rho2 * state.v + (1 - self.rho2) * d * d * g * g
        # the two reductions: ⟨ĝ, θ₀ − θ⟩ and ‖s‖₁
        numerator = rho3 * state.numerator + (d / self.d0) * dlr * _dot(g, state.theta0 - theta)
        s = rho3 * state.s + (d / self.d0) * dlr * g
        denominator = float(ops.abs(s).sum())
        if denominator > 0:
            d = max(d, self.d_coef * numerator / denominator)
        theta = theta * (1 - dlr * self.weight_decay)  # decoupled weight decay
        theta = theta + -dlr * m / (ops.sqrt(v) + d * self.eps)
        state.m[...], state.v[...], state.s[...] = m, v, s
        state.numerator, state.d = numerator, d
        return theta


# The element-wise rules join the one registry (every path: NumPy, fused, sweeps, torch,
# JAX, the command line, the web lab). The whole-array ones are not Optimizer subclasses
# and stay NumPy classes: a rule with reductions over every parameter has no KIND yet.
register(ADOPT)
register(AdEMAMix)
register_wrapper("cautious", lambda optimizer: Cautious(base=optimizer))  # "adamw+cautious"

__all__ = [
    "ADOPT",
    "AdEMAMix",
    "Cautious",
    "MARS",
    "Prodigy",
    "PYTHON_REDUCTIONS",
    "Reductions",
    "WholeArrayOptimizer",
    "cautious_mask",
    "mars_rule",
]
