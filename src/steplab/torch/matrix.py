"""Per-tensor optimizers (Muon, Adafactor) as ``torch.optim`` optimizers that keep shapes.

The NumPy core's rules (:mod:`steplab.optim.matrix`) run here on each parameter, whole, with
torch's functions (:data:`TORCH_MATRIX_OPS`)::

    import steplab.torch.matrix as stm
    groups = stm.route(model.named_parameters())          # 2-D weights: "matrix"; rest: "other"
    muon = stm.Muon(groups["matrix"], lr=0.02)             # Keller Jordan's Muon
    adamw = torch.optim.AdamW(groups["other"], lr=3e-4)    # or steplab.torch.AdamW
    muon = stm.Muon.like("torch", groups["matrix"])        # = torch.optim.Muon (in float64/32)

Param groups, ``state_dict``/``load_state_dict``, LR schedulers, closures work as in
torch.optim. ``nonfinite``: ``"propagate"`` (default, as torch.optim), ``"raise"`` or
``"skip"``, as in :class:`steplab.torch.TorchOptimizer`. A parameter the optimizer cannot take
(Muon and a bias) is refused when the optimizer is built, by name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch

from steplab.optim.base import NONFINITE_POLICIES
from steplab.optim.matrix import SOAP as CoreSOAP
from steplab.optim.matrix import Adafactor as CoreAdafactor
from steplab.optim.matrix import MatrixOps, MatrixOptimizer
from steplab.optim.matrix import Muon as CoreMuon
from steplab.optim.matrix import Shampoo as CoreShampoo
from steplab.optim.registry import lookup, registered
from steplab.torch.base import passes_nonfinite_policy


def _each_finite(grads: list[torch.Tensor]) -> bool:
    """Whether no gradient holds NaN or ±inf, tensor by tensor: a matrix optimizer's
    parameters may differ in dtype and device, which one summed stack would not take."""
    return all(bool(torch.isfinite(g).all()) for g in grads)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float))


def _maximum(a: Any, b: Any) -> Any:
    if _number(a) and _number(b):
        return max(a, b)
    if _number(b):
        return torch.clamp(a, min=b)
    if _number(a):
        return torch.clamp(b, min=a)
    return torch.maximum(a, b)


def _minimum(a: Any, b: Any) -> Any:
    if _number(a) and _number(b):
        return min(a, b)
    if _number(b):
        return torch.clamp(a, max=b)
    if _number(a):
        return torch.clamp(b, max=a)
    return torch.minimum(a, b)


def _last(axes: int | tuple[int, ...]) -> tuple[int, ...]:
    """``axes`` as a tuple: an int k means the last k axes."""
    return axes if isinstance(axes, tuple) else tuple(range(-axes, 0))


def _broadcast_index(x: torch.Tensor, idx: torch.Tensor, axis: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[axis] = idx.shape[axis]
    return idx.expand(shape)


#: Rows of a panel of a symmetric product X·Xᵀ (see _gram_into): products of fewer than twice
#: as many rows run whole. Each panel is one product, one OpenMP parallel region: smaller panels
#: save more multiplications and gained more on one thread, but on two threads of a machine
#: loaded past its cores their many regions cost more than they saved (docs/matrix.md, Speed).
GRAM_LEAF = 512


def _gram_into(out: torch.Tensor, X: torch.Tensor, C: Any, beta: Any, alpha: Any) -> None:
    """out ← β·C + α·X·Xᵀ (C None: X·Xᵀ; C symmetric) for a 2-D X: a symmetric result, so X
    is cut into p panels of GRAM_LEAF rows, each panel multiplied by the rows from its own on
    (the blocks on and above the diagonal: p products of one row of blocks each), and each
    block below the diagonal copied from its mirror: (p + 1)/(2p) of one product's
    multiplications, 75 % at 1024 rows and 56 % at 4096 (what BLAS's syrk saves, with torch's
    own kernels, in p calls). The kernel may order an entry's sum over k otherwise than in one
    product: equal to rounding (float32: ~1e-7 relative), not bit for bit."""
    m = X.shape[0]
    if m < 2 * GRAM_LEAF:
        if C is None:
            torch.mm(X, X.mT, out=out)
        else:
            torch.addmm(C, X, X.mT, beta=beta, alpha=alpha, out=out)
        return
    starts = list(range(0, m, GRAM_LEAF))
    for i, start in enumerate(starts):  # panel i times rows start.. : blocks (i, i), (i, i+1), …
        stop = min(start + GRAM_LEAF, m)
        row = out[start:stop, start:]
        if C is None:
            torch.mm(X[start:stop], X[start:].mT, out=row)
        else:
            torch.addmm(C[start:stop, start:], X[start:stop], X[start:].mT,
                        beta=beta, alpha=alpha, out=row)  # fmt: skip
        if i:  # the blocks left of the diagonal in these rows: mirrors of those above it
            out[start:stop, :start].copy_(out[:start, start:stop].mT)


@torch.library.custom_op(
    "steplab::gram",
    mutates_args=(),
    schema="(Tensor X, Tensor? C, float beta, float alpha) -> Tensor",
)
def gram_product(X: torch.Tensor, C: Any, beta: float, alpha: float) -> torch.Tensor:
    """β·C + α·X·Xᵀ (C None: X·Xᵀ; C symmetric) of a 2-D X, by blocks on the CPU from
    2·GRAM_LEAF rows on: one operation that torch.compile calls as it is (it cannot trace the
    writes into blocks of the result)."""
    out = torch.empty(X.shape[0], X.shape[0], dtype=X.dtype, device=X.device)
    if X.device.type == "cpu":
        _gram_into(out, X, C, beta, alpha)
    elif C is None:
        torch.mm(X, X.mT, out=out)
    else:
        torch.addmm(C, X, X.mT, beta=beta, alpha=alpha, out=out)
    return out


@gram_product.register_fake
def _gram_shape(X: torch.Tensor, C: Any, beta: float, alpha: float) -> torch.Tensor:
    return X.new_empty(X.shape[0], X.shape[0])


def _one(X: torch.Tensor) -> bool:
    """One configuration (the torch optimizers' (1, m, n)) on the CPU, where blocks pay."""
    return X.ndim == 3 and X.shape[0] == 1 and X.device.type == "cpu"


def _gram_of_one(X: torch.Tensor, C: Any, beta: float, alpha: float) -> torch.Tensor:
    if torch.compiler.is_compiling():  # the custom op: ~30 µs a call eager, so only here
        return gram_product(X, C, beta, alpha)
    out = torch.empty(X.shape[0], X.shape[0], dtype=X.dtype, device=X.device)
    _gram_into(out, X, C, beta, alpha)
    return out


def _gram(X: torch.Tensor) -> torch.Tensor:
    if _one(X):
        return _gram_of_one(X[0], None, 0.0, 1.0)[None]
    return _matmul(X, X.mT)


def _add_gram(C: Any, X: torch.Tensor, beta: Any, alpha: Any) -> Any:
    if _one(X) and _number(beta) and _number(alpha):
        return _gram_of_one(X[0], C[0], float(beta), float(alpha))[None]
    return _addmm(C, X, X.mT, beta, alpha)


def _matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    if A.ndim == 3 and A.shape[0] == 1 == B.shape[0]:  # one configuration: torch.mm's kernel,
        return torch.mm(A[0], B[0])[None]  # the one torch.optim.Muon runs
    return torch.matmul(A, B)


def _addmm(C: Any, A: Any, B: Any, beta: Any, alpha: Any) -> Any:
    if C.ndim == 3 and _number(beta) and _number(alpha):  # one fused pass, as torch.optim.Muon
        if C.shape[0] == 1 == A.shape[0] == B.shape[0]:
            return torch.addmm(C[0], A[0], B[0], beta=beta, alpha=alpha)[None]
        return torch.baddbmm(C, A, B, beta=beta, alpha=alpha)
    return beta * C + alpha * torch.matmul(A, B)


def _cast(x: torch.Tensor, like: Any) -> torch.Tensor:
    return x.to(getattr(torch, like) if isinstance(like, str) else like.dtype)


def _eigh(S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.linalg.eigh, retried in float64 where float32's fails to converge (LAPACK's
    "failed to converge" on a badly graded matrix), as the authors' distributed Shampoo
    (``retry_double_precision``) and SOAP's reference do; see steplab.optim.matrix.ops."""
    try:
        return torch.linalg.eigh(S)
    except torch.linalg.LinAlgError:
        if S.dtype == torch.float64:
            raise
        lam, V = torch.linalg.eigh(S.double())
        return lam.to(S.dtype), V.to(S.dtype)


def _lerp(a: Any, b: Any, w: Any) -> Any:
    return torch.lerp(a, b, w) if _number(w) else a + w * (b - a)


def _lerp_in_place(a: Any, b: Any, w: Any) -> Any:
    return a.lerp_(b, w) if _number(w) else a.add_(w * (b - a))


def _maximum_in_place(x: Any, floor: Any) -> Any:
    return x.clamp_(min=floor) if _number(floor) else torch.maximum(x, floor, out=x)


def _add_scaled(x: Any, alpha: Any, y: Any) -> Any:
    return torch.add(x, y, alpha=alpha) if _number(alpha) else x + alpha * y


def _add_scaled_in_place(x: Any, alpha: Any, y: Any) -> Any:
    # α a number: one fused pass; α a tensor (a per-step scalar that came from a norm, or K
    # values): x + y·α in one pass too, without reading α back to the host
    return x.add_(y, alpha=alpha) if _number(alpha) else x.addcmul_(y, alpha)


#: torch's functions for the per-tensor rules (Python numbers stay Python numbers).
TORCH_MATRIX_OPS = MatrixOps(
    sqrt=lambda x: math.sqrt(x) if _number(x) else torch.sqrt(x),
    maximum=_maximum,
    minimum=_minimum,
    matmul=_matmul,
    addmm=_addmm,
    gram=_gram,
    add_gram=_add_gram,
    mT=lambda x: x.mT,
    sum=lambda x, axes: torch.sum(x, dim=_last(axes), keepdim=True),
    mean=lambda x, axes: torch.mean(x, dim=_last(axes), keepdim=True),
    eigh=_eigh,
    float32=np.float32,  # a NumPy float32 scalar: torch takes it as a number
    cond=lambda pred, if_true, if_false: if_true() if pred else if_false(),
    concat=lambda arrays, axis: torch.cat(arrays, dim=axis),
    qr=lambda x: torch.linalg.qr(x)[0],
    argsort=lambda x: torch.argsort(x, dim=-1, stable=True),
    take=lambda x, idx, axis: torch.take_along_dim(x, _broadcast_index(x, idx, axis), dim=axis),
    flip=lambda x, axis: torch.flip(x, dims=(axis,)),
    norm=lambda x, axes: torch.linalg.vector_norm(x, dim=_last(axes), keepdim=True),
    cast=_cast,
    lerp=_lerp,  # torch.lerp: one pass, as torch.optim.Muon's Nesterov mix
    lerp_=_lerp,
    maximum_=_maximum,
    rsqrt_=lambda x: 1 / math.sqrt(x) if _number(x) else torch.rsqrt(x),
    mul_=lambda x, y: x * y,
    add_scaled_=_add_scaled,
    mul_into_=lambda buffer, x, y: x * y,
)

#: The same table with the ``_`` functions in place (torch's ``lerp_``, ``clamp_``, …): what
#: the optimizers' eager step runs, on the parameter, its state and the rule's own
#: temporaries (see steplab.optim.matrix.ops for the contract that makes this safe).
TORCH_MATRIX_OPS_IN_PLACE = TORCH_MATRIX_OPS._replace(
    lerp_=_lerp_in_place,
    maximum_=_maximum_in_place,
    rsqrt_=lambda x: x.rsqrt_(),
    mul_=lambda x, y: x.mul_(y),
    add_scaled_=_add_scaled_in_place,
    mul_into_=lambda buffer, x, y: torch.mul(x, y, out=buffer),
)


class TorchMatrixOptimizer(torch.optim.Optimizer):
    """Base class: a per-tensor core optimizer on each parameter of its groups.

    Hyperparameters are keyword arguments named as in the core (scalars; each param group may
    set its own), plus ``nonfinite``.
    """

    core: ClassVar[type[MatrixOptimizer]]

    def __init__(self, params: Any, *, compile: bool = False, **hyperparameters: Any) -> None:
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        # compile=True: the rule compiled by torch.compile (inductor), built from the same
        # rule function (see _step_function); False: the rule run op by op
        self._compile = compile
        fields = {f.name for f in dataclasses.fields(self.core)} - {"nonfinite"}
        unknown = sorted(set(hyperparameters) - fields - {"nonfinite"})
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no hyperparameter {unknown}; "
                f"use {', '.join(sorted(fields | {'nonfinite'}))}"
            )
        defaults = {f.name: f.default for f in dataclasses.fields(self.core) if f.name in fields}
        defaults.update(hyperparameters)
        defaults.setdefault("nonfinite", "propagate")
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            core = self._core(group)
            names = group.get("param_names")
            for j, p in enumerate(group["params"]):
                name = names[j] if names else f"param_groups[{i}]['params'][{j}]"
                core.check_tensor(tuple(p.shape), f"parameter {name!r}")

    @classmethod
    def like(cls, preset: str, params: Any, **hyperparameters: Any) -> TorchMatrixOptimizer:
        """The optimizer as the core's ``preset`` defines it (``"torch"``, ``"optax"``, …)."""
        base = cls.core.like(preset)
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        values.pop("nonfinite")
        return cls(params, **{**values, **hyperparameters})

    def _step_function(self, core: MatrixOptimizer, p: torch.Tensor) -> Callable[..., Any]:
        """One parameter's step ``(θ, ĝ, {state}, t) -> (new θ, {new state})``: the
        protocol's prepare_step and apply_rule with the torch table, the configuration axis
        added and removed; with ``compile=True`` that function through torch.compile (t then
        arrives as a float64 0-d tensor, so a new step count never recompiles). Kept per core
        (one per set of group values) and dtype."""
        cache = self.__dict__.setdefault("_steps", {})
        key = (core, p.dtype, p.ndim)
        function = cache.get(key)
        if function is None:
            declared = {**core.declared_for(tuple(p.shape)),
                        "float_eps": float(torch.finfo(p.dtype).eps)}  # fmt: skip

            # eager: the in-place table, which writes θ and the state where they lie and works
            # in the rule's own temporaries (the pass count of torch.optim's hand-written
            # steps); compiled: the pure table, inductor fusing the passes itself
            ops = TORCH_MATRIX_OPS if self._compile else TORCH_MATRIX_OPS_IN_PLACE

            def one_step(theta: Any, grad: Any, arrays: dict, t: Any) -> tuple[Any, dict]:
                hp, _ = core.prepare_step(declared, t, arrays, ops)
                held = SimpleNamespace(**{k: v[None] for k, v in arrays.items()})
                new_theta, new = core.apply_rule(ops, hp, theta[None], grad[None], held)
                return new_theta[0], {k: v[0] for k, v in new.items()}

            function = torch.compile(one_step) if self._compile else one_step
            if len(cache) > 64:  # a scheduler's many lr values: keep the cache small
                cache.clear()
            cache[key] = function
        return function

    def _core(self, group: dict[str, Any]) -> MatrixOptimizer:
        """The core optimizer of ``group``'s current values (validated; one per set of values,
        kept: building and checking it at every step would cost more than a small step)."""
        key = tuple(
            (k, v.item() if torch.is_tensor(v) else v) for k, v in group.items() if k != "params"
        )
        cache = self.__dict__.setdefault("_cores", {})
        try:
            return cache[key]
        except TypeError:  # an unhashable value (a list in a user's group): no caching
            return self._build_core(group)
        except KeyError:
            if len(cache) > 64:  # a scheduler's many lr values: keep the cache small
                cache.clear()
            cache[key] = core = self._build_core(group)
            return core

    def _build_core(self, group: dict[str, Any]) -> MatrixOptimizer:
        if group.get("nonfinite") not in NONFINITE_POLICIES:
            raise ValueError(
                f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, "
                f"got {group.get('nonfinite')!r}"
            )
        values = {f.name: group[f.name] for f in dataclasses.fields(self.core)
                  if f.name != "nonfinite"}  # fmt: skip
        for name, value in values.items():
            if torch.is_tensor(value):
                values[name] = value.item()
        return self.core(**values)  # validates (a clear ValueError)

    def _expected(self, core: MatrixOptimizer, p: torch.Tensor) -> dict[str, tuple[int, ...]]:
        return core.state_shapes(tuple(p.shape))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step for every parameter with a gradient; the closure's loss if one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not passes_nonfinite_policy(self, _each_finite):
            return loss
        for group in self.param_groups:
            core = self._core(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                expected = self._expected(core, p)
                if "t" not in state:
                    state["t"] = 0
                    for key, shape in expected.items():
                        first = core.initial_state(key, shape, np.float64)  # zeros, or εI
                        state[key] = torch.as_tensor(first).to(dtype=p.dtype, device=p.device)
                self._check_state(state, expected, p)
                t = state["t"] + 1
                arrays = {key: state[key] for key in expected}
                step = self._step_function(core, p)
                count = torch.tensor(float(t), dtype=torch.float64) if self._compile else t
                new_p, new = step(p, p.grad, arrays, count)
                if not _same_memory(new_p, p):  # (the in-place table wrote p already)
                    p.copy_(new_p)
                for key, value in new.items():
                    old = state[key]
                    if _same_memory(value, old):
                        continue
                    if value.dtype == old.dtype and value.shape == old.shape:
                        state[key] = value  # the rule's fresh tensor: no pass to copy it back
                    else:
                        old.copy_(value)
                state["t"] = t
        return loss

    def _check_state(self, state: dict, expected: dict, p: torch.Tensor) -> None:
        held = sorted(k for k, v in state.items() if torch.is_tensor(v))
        if held != sorted(expected) or any(tuple(state[k].shape) != s for k, s in expected.items()):
            raise ValueError(
                f"{type(self).__name__}: the state of a parameter of shape {tuple(p.shape)} "
                f"holds {held}, but these options keep {sorted(expected)} of shapes "
                f"{list(expected.values())}: it comes from other options or another optimizer"
            )
        t = state.get("t")
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"{type(self).__name__}: a parameter's state has step t={t!r}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch.optim's, but refuses, before changing anything, a state whose arrays do not
        fit this optimizer's options (saved with other options, or by another optimizer)."""
        groups = state_dict.get("param_groups", [])
        saved = state_dict.get("state", {})
        for group, saved_group in zip(self.param_groups, groups, strict=False):
            core = self._core(group)
            for p, pid in zip(group["params"], saved_group.get("params", []), strict=False):
                if pid in saved:
                    self._check_state(saved[pid], self._expected(core, p), p)
        super().load_state_dict(state_dict)


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` is ``b``'s memory seen whole (a view the rule wrote in place)."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


_TWINS: dict[type, type[TorchMatrixOptimizer]] = {}


def _make(core_cls: type[MatrixOptimizer], doc: str) -> type[TorchMatrixOptimizer]:
    namespace = {"core": core_cls, "__doc__": doc, "__module__": __name__}
    cls = _TWINS[core_cls] = type(core_cls.__name__, (TorchMatrixOptimizer,), namespace)
    return cls


def twin(core: type[MatrixOptimizer]) -> type[TorchMatrixOptimizer]:
    """The torch.optim optimizer of the per-tensor core class ``core``: the one named here,
    else one made now from it (so every registered per-tensor optimizer has one)."""
    known = _TWINS.get(core)
    if known is not None:
        return known
    return _make(core, (core.__doc__ or core.name).strip().splitlines()[0])


Muon = _make(CoreMuon, "Muon on 2-D parameters (see steplab.optim.matrix.muon).")
Adafactor = _make(CoreAdafactor, "Adafactor (see steplab.optim.matrix.adafactor).")
Shampoo = _make(CoreShampoo, "Shampoo on 2-D parameters (see steplab.optim.matrix.shampoo).")
SOAP = _make(CoreSOAP, "SOAP on 2-D parameters (see steplab.optim.matrix.soap).")


def route(named_parameters: Iterable[tuple[str, torch.Tensor]],
          labels: dict[str, str] | None = None,
          predicate: Callable[[str, torch.Tensor], bool] | None = None,
          ) -> dict[str, list[tuple[str, torch.Tensor]]]:  # fmt: skip
    """Split ``model.named_parameters()`` into ``{"matrix": [...], "other": [...]}`` (named
    parameters, which torch.optim accepts): ``labels`` (name -> "matrix"/"other") first, then
    ``predicate(name, p)``, by default ``p.ndim == 2`` (torch's and optax's Muon examples;
    label the output layer and embeddings "other" to follow Keller Jordan's advice)."""
    labels = dict(labels or {})
    decide = predicate or (lambda name, p: p.ndim == 2)
    out: dict[str, list[tuple[str, torch.Tensor]]] = {"matrix": [], "other": []}
    seen = set()
    for name, p in named_parameters:
        seen.add(name)
        label = labels.get(name, "matrix" if decide(name, p) else "other")
        if label not in out:
            raise ValueError(f"label of {name} must be 'matrix' or 'other', got {label!r}")
        out[label].append((name, p))
    unknown = sorted(set(labels) - seen)
    if unknown:
        raise ValueError(f"labels name no parameter {unknown}")
    return out


class _Twins(Mapping[str, type[TorchMatrixOptimizer]]):
    """The registry's per-tensor optimizers seen through :func:`twin`, in its order."""

    def __getitem__(self, name: str) -> type[TorchMatrixOptimizer]:
        return twin(registered("per_tensor")[name])

    def __iter__(self) -> Iterator[str]:
        return iter(registered("per_tensor"))

    def __len__(self) -> int:
        return len(registered("per_tensor"))


#: Every per-tensor optimizer by the core's name (derived from steplab.optim's registry).
OPTIMIZERS: Mapping[str, type[TorchMatrixOptimizer]] = _Twins()


def make(name: str, params: Any, preset: str = "seed", **hyperparameters: Any) -> Any:
    """A per-tensor optimizer by name, e.g. ``make("muon", groups["matrix"], preset="torch")``;
    ValueError naming the per-tensor optimizers for any other name."""
    core = lookup(name)
    if core.KIND != "per_tensor":
        raise ValueError(
            f"{core.name} is element-wise: use steplab.torch.make; the per-tensor optimizers "
            f"are {', '.join(registered('per_tensor'))}"
        )
    return twin(core).like(preset, params, **hyperparameters)


__all__ = [
    "OPTIMIZERS",
    "TORCH_MATRIX_OPS",
    "TORCH_MATRIX_OPS_IN_PLACE",
    "Adafactor",
    "Muon",
    "SOAP",
    "Shampoo",
    "TorchMatrixOptimizer",
    "make",
    "route",
    "twin",
]
