"""The bridge: a ``torch.optim.Optimizer`` whose hyperparameters and step come from a NumPy
core class.

Each torch optimizer names its NumPy twin in ``core`` (``steplab.torch.Adam.core is
steplab.optim.Adam``). Names, defaults, allowed intervals and presets are read from
that class, never written twice: a param group's hyperparameters are validated by
constructing the core optimizer from them. So is the step: the core's element-wise
``rule`` runs on torch tensors, with no second copy of its math.

The step works on *buckets*: the parameters of one param group that share a device, a
dtype, a step counter ``t`` (and any scalar state). A bucket is stepped by one of two
routes built from the same rule:

- the **multi-tensor** step (default): the rule traced once into a program of in-place
  ``torch._foreach_*`` operations over the whole bucket, with kept scratch buffers
  (:mod:`steplab.torch._traced`; a rule it cannot trace is evaluated on
  :class:`~steplab.torch._tensorlist.TensorList` s, every intermediate allocated). On CPU
  small tensors are packed into one flat tensor per operand first and large ones run in
  cache-sized batches (:class:`_PlannedMultiTensorBucket`, :func:`_batches`);
- the **single-pass** step (``fused=True``): the rule compiled by ``torch.compile`` into one
  kernel per tensor (small tensors packed into one), reading and writing memory once
  (:mod:`steplab.torch._single_pass`). The first step compiles (seconds; see docs/torch.md).

Low-precision parameters (bfloat16, float16) keep their state in float32: the step is
computed in float32 and the result is rounded into the parameter once.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import itertools
import math
import operator
from collections.abc import Callable
from itertools import compress, repeat
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch

from steplab.optim.base import Optimizer as CoreOptimizer
from steplab.optim.base import initial_value
from steplab.torch import _serial, validation
from steplab.torch._serial import SerialTable
from steplab.torch._single_pass import SinglePass
from steplab.torch._tensorlist import TORCH_OPS, TensorList
from steplab.torch._traced import Program, Programs

#: Options every steplab torch optimizer takes besides the core's hyperparameters.
TORCH_OPTIONS = {"maximize": False, "nonfinite": "propagate", "fused": False}

#: torch.optim's names for steplab's hyperparameters, for helpful error messages.
TORCH_NAMES = {
    "betas": "rho1 and rho2",
    "alpha": "rho (RMSProp's decay rate)",
    "initial_accumulator_value": "r0",
    "lr_decay": "a learning-rate scheduler",
    "momentum_decay": "momentum_decay",
    "decoupled_weight_decay": "AdamW",
    "dampening": "Momentum (dampening 0)",
    "nesterov": "Nesterov",
}

# Parameters stored in these dtypes keep their state (and compute their step) in float32.
_LOW_PRECISION = (torch.bfloat16, torch.float16)


class TorchOptimizer(torch.optim.Optimizer):
    """Base class of steplab's torch optimizers (see the module docstring).

    ``params`` are what torch.optim takes (tensors or param-group dicts); the
    hyperparameters are keyword arguments named as in the NumPy core, plus:

    - ``maximize``: ascend instead of descend (the gradient's sign is flipped);
    - ``nonfinite``: ``"propagate"`` (default, torch.optim's behaviour, no device sync),
      ``"raise"`` (``FloatingPointError``, parameters and state untouched) or ``"skip"``
      (the whole step is skipped and counted in ``state["skipped"]``). Both checks
      synchronise with the device once per step;
    - ``fused``: ``False`` (default) for the multi-tensor step, ``True`` for the single-pass
      step (the rule compiled by ``torch.compile``; the first step compiles).
    """

    #: The NumPy core class this class mirrors (a class; the instances a step runs,
    #: configured with a group's switches, are called ``configured``).
    core: ClassVar[type[CoreOptimizer]]
    #: Options besides the core's hyperparameters (name -> default), kept in each group.
    OPTIONS: ClassVar[dict[str, Any]] = TORCH_OPTIONS
    #: torch.optim option names this class refuses (see :meth:`_foreign_options`).
    _FOREIGN: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give each class the core's signature and hyperparameter docs, for help() and IDEs,
        and make it the twin of its core class (:func:`twin`)."""
        super().__init_subclass__(**kwargs)
        if "core" not in vars(cls):
            return
        _TWINS.setdefault(cls.core, cls)
        cls._FOREIGN = cls._foreign_options()  # checked at each step
        keyword = inspect.Parameter.KEYWORD_ONLY
        fields = cls.core.hyperparameters()
        cls.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                *(inspect.Parameter(n, keyword, default=f.default) for n, f in fields.items()),
                *(inspect.Parameter(n, keyword, default=v) for n, v in cls.OPTIONS.items()),
            ]
        )
        lines = [
            f"    {n} = {f.default!r} in {f.metadata['interval']}: {f.metadata['doc']}"
            for n, f in fields.items()
        ]
        presets = ", ".join(["seed", *cls.core.PRESETS])
        cls.__doc__ = (
            f"{cls.__doc__ or ''}\n\nThe torch.optim twin of "
            f":class:`steplab.optim.{cls.core.__name__}` (presets for ``like``: {presets}). "
            "Hyperparameters:\n\n"
            + "\n".join(lines)
            + "\n\nplus ``maximize``, ``nonfinite`` and ``fused`` (see :class:`TorchOptimizer`)."
        )

    def __init__(self, params, **hyperparameters: Any) -> None:
        if self.core.KIND != "elementwise":
            raise NotImplementedError(
                f"{type(self).__name__}: steplab.torch runs element-wise rules; "
                f"{self.core.name}'s is {self.core.KIND}"
            )
        options = {k: hyperparameters.pop(k, v) for k, v in self.OPTIONS.items()}
        defaults = {**self._validated(hyperparameters), **options}
        super().__init__(params, defaults)

    # -- construction ------------------------------------------------------------------

    @classmethod
    def hyperparameters(cls) -> dict[str, dataclasses.Field]:
        """The core's tunable fields (name -> dataclass field with ``interval`` and ``doc``)."""
        return cls.core.hyperparameters()

    @classmethod
    def _hyperparameter_names(cls) -> tuple[str, ...]:
        """The names of :meth:`hyperparameters`, computed once per class (every step reads
        them; the core rebuilds its field list on each call)."""
        names = cls.__dict__.get("_names")
        if names is None:
            names = tuple(cls.hyperparameters())
            cls._names = names  # type: ignore[attr-defined]
        return names

    @classmethod
    def like(cls, preset: str, params, **overrides: Any) -> TorchOptimizer:
        """The optimizer as ``preset`` defines it (``"seed"``, ``"torch"``, ``"optax"``, …),
        e.g. ``Adam.like("torch", model.parameters(), lr=3e-4)``."""
        options = {k: overrides.pop(k) for k in cls.OPTIONS if k in overrides}
        cls._reject_unknown(overrides)
        configured = cls.core.like(preset, **overrides)  # raises naming the presets
        return cls(params, **_hyperparameters_of(configured), **options)

    @classmethod
    def _reject_unknown(cls, hyperparameters: dict[str, Any]) -> None:
        unknown = sorted(set(hyperparameters) - set(cls.hyperparameters()))
        if unknown:
            hints = [f"{k} -> {TORCH_NAMES[k]}" for k in unknown if k in TORCH_NAMES]
            allowed = ", ".join([*cls.hyperparameters(), *cls.OPTIONS])
            raise ValueError(
                f"{cls.__name__} has no hyperparameter {', '.join(unknown)}; its "
                f"hyperparameters are: {allowed}"
                + (f" (steplab names: {'; '.join(hints)})" if hints else "")
            )

    @classmethod
    def _validated(cls, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Every hyperparameter (defaults filled in) as checked by the NumPy core."""
        cls._reject_unknown(hyperparameters)
        configured = cls.core(**hyperparameters)  # ValueError naming the allowed interval
        values = _hyperparameters_of(configured)
        arrays = [k for k, v in values.items() if isinstance(v, np.ndarray)]
        if arrays:
            raise ValueError(
                f"{cls.__name__}: {', '.join(arrays)} must be a scalar; for different values "
                "per parameter use param groups"
            )
        return values

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch.optim's ``add_param_group``, all or nothing: the group's hyperparameters,
        options and parameters validated (:mod:`steplab.torch.validation`); if one is
        refused, the group is not added."""
        name = type(self).__name__
        if isinstance(param_group, dict) and not torch.is_tensor(param_group.get("params")):
            param_group["params"] = list(param_group.get("params", ()))  # once, if an iterator
            validation.check_new_params(name, param_group["params"], self.param_groups)
        count = len(self.param_groups)
        super().add_param_group(param_group)
        try:
            group = self.param_groups[-1]
            names = self.hyperparameters()
            group.update(self._validated({k: group[k] for k in names}))
            validation.check_options(name, group, "", self._foreign_options())
            validation.check_new_params(name, group["params"], ())
        except BaseException:
            del self.param_groups[count:]  # all or nothing
            raise

    @classmethod
    def _foreign_options(cls) -> dict[str, str]:
        """torch.optim's names that this class does not take -> what to use instead."""
        foreign = {**TORCH_NAMES, **validation.TORCH_ONLY_OPTIONS}
        return {k: v for k, v in foreign.items() if k not in cls.hyperparameters()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's ``load_state_dict``, checked first and exact for low precision.

        The whole state dict is checked before anything changes: it must come from this
        class (its per-parameter entries are exactly those this optimizer makes, so a
        ``torch.optim.Adam`` state dict is refused) and its ``state`` may only hold the
        parameters its param groups list; otherwise ``ValueError`` says what is wrong.
        Moments of bfloat16/float16 parameters stay float32, bit for bit: torch's base
        class would round them through the parameter's dtype.
        """
        saved_ids = self._check_state_dict(state_dict)
        super().load_state_dict(state_dict)
        # Put back copies of the saved tensors, in the working dtype (float32 for
        # low-precision parameters, so a float32 moment is copied exactly); copies, so the
        # optimizer that made the state dict and this one never share a moment tensor.
        current = [p for group in self.param_groups for p in group["params"]]
        for pid, p in zip(saved_ids, current, strict=True):
            for key, value in state_dict["state"].get(pid, {}).items():
                if torch.is_tensor(value) and value.is_floating_point():
                    self.state[p][key] = value.to(p.device, _work_dtype(p), copy=True)

    def _check_state_dict(self, state_dict: Any) -> list:
        """The saved parameter ids in param-group order; ``ValueError`` if the state dict
        is not one this optimizer can resume from."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(
                f"{name}.load_state_dict needs a dict with 'state' and 'param_groups' "
                "(from state_dict()), got "
                + (
                    f"keys {sorted(map(str, state_dict))}"
                    if isinstance(state_dict, dict)
                    else type(state_dict).__name__
                )
            )
        groups, states = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, list) or len(groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has "
                f"{len(groups) if isinstance(groups, list) else 'no list of'} param groups, "
                f"this optimizer {len(self.param_groups)}"
            )
        validation.check_saved_params(name, groups)
        if not isinstance(states, dict):
            raise ValueError(f"{name}.load_state_dict: 'state' must be a dict")
        saved_ids = []
        for number, (saved, group) in enumerate(zip(groups, self.param_groups, strict=True)):
            missing = [
                k for k in [*self.hyperparameters(), *self.OPTIONS, "params"] if k not in saved
            ]
            if missing:
                raise ValueError(
                    f"{name}.load_state_dict: param group {number} lacks {', '.join(missing)}; "
                    f"this is not a steplab.torch.{name} state dict (torch.optim state dicts "
                    "have other names and moments and cannot be resumed)"
                )
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: param group {number} has {len(saved['params'])} "
                    f"parameters in the state dict and {len(group['params'])} here"
                )
            self._validated({k: saved[k] for k in self.hyperparameters()})
            where = f"param group {number}: "
            validation.check_options(name, saved, where, self._foreign_options())
            configured, declared = self._configured_and_declared(saved)
            for index, (pid, p) in enumerate(zip(saved["params"], group["params"], strict=True)):
                saved_ids.append(pid)
                if pid in states:
                    kept = tuple(configured.kept_moments(SimpleNamespace(**declared)))
                    at = f"{where}parameter {index} (id {pid!r})"
                    validation.check_param_state(name, at, states[pid], p, configured, kept)
        unknown = [k for k in states if k not in saved_ids]
        if unknown:
            raise ValueError(
                f"{name}.load_state_dict: 'state' has entries for {unknown[:5]}, which no "
                "param group lists (only parameters' states can be loaded)"
            )
        return saved_ids

    # -- the step ------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure=None):
        """One optimizer step for every parameter that has a gradient; returns the
        closure's loss if a closure (re-evaluating the model) is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        validation.check_step_options(type(self).__name__, self.param_groups, self._FOREIGN)
        grad_norm = None
        if self.core.NEEDS_GRAD_NORM:  # one reduction over every ĝ, before anything is written
            grad_norm = self._global_grad_norm()
        # a finite ‖ĝ‖ means every ĝ is finite: the policy need not read them again
        if not (grad_norm is not None and math.isfinite(grad_norm)) and (
            not passes_nonfinite_policy(self)
        ):
            return loss
        for group in self.param_groups:
            self._step_group(group, grad_norm)
        return loss

    def _global_grad_norm(self) -> float:
        """‖ĝ‖ over every parameter the step moves (all groups), summed in float64: the
        norm a chain that clips by global norm reads (``prepare_step(grad_norm=...)``).
        One device sync; ``maximize`` does not change it."""
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]  # fmt: skip
        if not grads:
            return 0.0
        total = _serial.sum_of_squares(grads)  # CPU, numba: one read, no float64 copies
        if total is not None:
            return math.sqrt(total)
        device = grads[0].device
        squares = [part.to(device) for g in grads for part in _squares_in_float64(g)]
        return math.sqrt(float(torch.stack(squares).sum()))

    # -- the step from the core's rule ----------------------------------------------------

    def _step_group(self, group: dict[str, Any], grad_norm: float | None = None) -> None:
        """The step of one group; ``grad_norm``: ‖ĝ‖ over all groups, for an optimizer
        with ``NEEDS_GRAD_NORM`` (others ignore it)."""
        configured, declared = self._configured_and_declared(group)
        if group["fused"]:
            self._step_group_single_pass(group, configured, declared, grad_norm)
            return
        if _plannable(group["params"]):
            self._step_group_planned(group, configured, declared, _MultiTensorPlan, grad_norm)
            return
        for bucket in self._buckets(group, configured, declared):
            bucket.prepare_gradients(group)
            t = bucket.state.t + 1
            before = SimpleNamespace(
                **{k: getattr(bucket.state, k) for k in configured.SCALAR_STATE}
            )
            # The hyperparameters of this step, with its per-step scalars (1 − ρᵗ, …) and
            # the new scalar state, in Python floats: the same numbers for both routes.
            step_values, scalars = configured.prepare_step(
                declared, t, before, TORCH_OPS, grad_norm=grad_norm
            )
            names = bucket.moment_names
            roles = [bucket.theta, bucket.g, *(getattr(bucket.state, k) for k in names)]
            packing = _Packing(roles, self.__dict__.setdefault("_packing_buffers", {}))
            programs = self.__dict__.setdefault("_programs", Programs())
            traced = programs.get(configured, step_values, names)
            scratch = self.__dict__.setdefault("_scratch", {})
            for batch in _batches(packing.lists):
                if traced is None:  # a rule the tracer cannot follow: run it on TensorLists
                    _step_batch(configured, step_values, batch, names)
                else:
                    program, registers = traced
                    program.run(registers, batch, _scratch_for(scratch, program, batch[0]))
            packing.unpack(written=[0, *range(2, len(roles))])
            bucket.state.t = t
            for k, v in scalars.items():
                setattr(bucket.state, k, v)
            bucket.write_back()

    def _step_group_single_pass(
        self,
        group: dict[str, Any],
        configured: CoreOptimizer,
        declared: dict[str, Any],
        grad_norm: float | None = None,
    ) -> None:
        """The single-pass step of a group. Its buckets, with their compiled kernels and
        prepared tensors, are kept from step to step (:class:`_SinglePassPlan`) while the
        group's parameters, gradients' presence, states and switches stay the same: a step
        then costs little Python besides the kernels."""
        self._step_group_planned(group, configured, declared, _SinglePassPlan, grad_norm)

    def _step_group_planned(
        self,
        group: dict[str, Any],
        configured: CoreOptimizer,
        declared: dict[str, Any],
        kind: type,
        grad_norm: float | None = None,
    ) -> None:
        """The step of a group through its plan of ``kind`` (made again when stale)."""
        plans = self.__dict__.setdefault(f"_plans_{kind.__name__}", {})
        plan = plans.get(id(group))
        if plan is None or not plan.is_current(self.state, group, configured, declared):
            current = {id(g) for g in self.param_groups}
            for key in [k for k in plans if k not in current]:  # groups gone (load_state_dict)
                del plans[key]
            plan = plans[id(group)] = kind(self, group, configured, declared)
        plan.step(group, configured, declared, grad_norm)

    def _configured_and_declared(
        self, group: dict[str, Any]
    ) -> tuple[CoreOptimizer, dict[str, Any]]:
        """The core optimizer of the group's switches (cached), and the hyperparameters
        the rule reads: the group's current numbers (which an LR scheduler may have set to
        values the constructor refuses, such as lr=0 at the start of a warm-up)."""
        names = self._hyperparameter_names()
        numbers = tuple(group[name] for name in names)
        known = self.__dict__.setdefault("_hyper_of_group", {})
        last = known.get(id(group))
        if last is not None and last[0] == numbers and last[1] is group:  # as last time
            return last[2], last[3]
        values = dict(zip(names, numbers, strict=True))
        switches = tuple((k, v) for k, v in values.items() if isinstance(v, bool))
        cache = self.__dict__.setdefault("_configured_by_switches", {})
        if switches not in cache:
            options: dict[str, Any] = {**dict(switches), "nonfinite": "propagate"}
            cache[switches] = self.core(**options)
        configured = cache[switches]
        declared = dict(configured.declared_for(()))
        declared.update(values)
        for name in self.core.OFF_WHEN_ZERO:
            declared[f"{name}_on"] = bool(values[name])
        if len(known) > 2 * len(self.param_groups):  # forget groups that are gone
            known.clear()
        known[id(group)] = (
            numbers,
            group,
            configured,
            declared,
        )  # declared is only read, never changed
        return configured, declared

    def _buckets(
        self, group: dict[str, Any], configured: CoreOptimizer, declared: dict[str, Any]
    ) -> list[_Bucket]:
        """The group's parameters with a gradient, split by device, dtype, step counter and
        scalar state. A parameter's first step creates its state: ``t = 0``, the core's
        scalar state and the moments the core keeps for ``declared``, at their initial values."""
        buckets: dict[tuple, _Bucket] = {}
        new_states = []
        stepped = []
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients (torch.sparse "
                    "layouts); use dense gradients, e.g. nn.Embedding(sparse=False)"
                )
            state = self.state[p]
            if "t" not in state:
                work = p.detach().to(_work_dtype(p))
                state.update(
                    t=0,
                    **dict(configured.SCALAR_STATE),
                    **_initial_moments(configured, declared, work),
                )
                new_states.append((p, state))
            stepped.append((p, state))
        _place_back_to_back(new_states)
        for p, state in stepped:
            key = (p.device, p.dtype, state["t"], *(state[k] for k in configured.SCALAR_STATE))
            if key not in buckets:
                buckets[key] = _Bucket(self._tensor_state_names(state))
            buckets[key].add(p, state)
        return list(buckets.values())

    def _tensor_state_names(self, state: dict[str, Any]) -> list[str]:
        return [k for k, v in state.items() if torch.is_tensor(v)]


#: elements of a low-precision tensor cast to float64 at a time by _squares_in_float64
SQUARES_CHUNK = 1 << 15


def _squares_in_float64(g: torch.Tensor) -> list[torch.Tensor]:
    """Σg² in float64 as 0-d tensors (no device sync): one dot product for a float64
    tensor; others cast in chunks that stay in cache (casting the whole tensor first writes
    and reads a float64 copy: ~8x slower at 10⁷ float32 elements, one CPU thread)."""
    flat = g.reshape(-1)
    if flat.dtype == torch.float64:
        return [torch.dot(flat, flat)]
    wide = (part.to(torch.float64) for part in flat.split(SQUARES_CHUNK))  # one at a time
    return [torch.dot(part, part) for part in wide]


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether no tensor holds NaN or ±inf, reading each once (one device sync).

    Large CPU float32/float64 sets, with numba installed, are checked by one compiled read
    on the calling thread (``steplab.torch._serial``: Σx·0 is 0 exactly when all are
    finite). Elsewhere: the sum of all elements is finite exactly when no element is NaN or
    ±inf, unless finite elements overflow it: only then (a non-finite sum) is each tensor
    checked element by element. (``torch.isfinite`` writes a mask through temporaries: many
    times slower; ``benchmarks/bench_torch_optim.py --check-pass`` times these against a
    read anchor.)
    """
    finite = _serial.all_finite(tensors)  # CPU, numba: one compiled read of every tensor
    if finite is not None:
        return finite
    if bool(torch.stack(list(map(torch.sum, tensors))).sum().isfinite()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def passes_nonfinite_policy(
    optimizer: torch.optim.Optimizer, finite: Callable[[list[torch.Tensor]], bool] = all_finite
) -> bool:
    """The ``nonfinite`` policy of every steplab.torch optimizer, before its step writes
    anything: True if the step may go on; False if it must be skipped (``"skip"``: each
    checked parameter's ``state["skipped"]`` counts it); raises under ``"raise"``. Only the
    gradients of groups that are not ``"propagate"`` are read, by ``finite``."""
    checked = [g for g in optimizer.param_groups if g["nonfinite"] != "propagate"]
    grads = [p.grad for group in checked for p in group["params"] if p.grad is not None]
    if not grads or finite(grads):
        return True
    if any(group["nonfinite"] == "raise" for group in checked):
        raise FloatingPointError(
            f"{type(optimizer).__name__}: a gradient holds NaN or inf; parameters and state "
            "are unchanged (nonfinite='skip' skips such steps, 'propagate' applies them)"
        )
    for group in checked:
        for p in group["params"]:
            if p.grad is not None:
                optimizer.state[p]["skipped"] = optimizer.state[p].get("skipped", 0) + 1
    return False


#: core class -> its torch class (written in steplab/torch/*.py, or made by :func:`twin`)
_TWINS: dict[type[CoreOptimizer], type[TorchOptimizer]] = {}


def twin(core_class: type[CoreOptimizer]) -> type[TorchOptimizer]:
    """The torch.optim optimizer of ``core_class``: the one written for it in
    ``steplab.torch`` (for its docstring), else one made now, named as the core class and
    documented from it. Every registered core optimizer has one, with no code of its own."""
    cls = _TWINS.get(core_class)
    if cls is None:
        summary = (core_class.__doc__ or core_class.name).strip().splitlines()[0]
        namespace = {"core": core_class, "__doc__": summary, "__module__": "steplab.torch"}
        cls = type(core_class.__name__, (TorchOptimizer,), namespace)  # __init_subclass__ keeps it
    return cls


class _Bucket:
    """Parameters stepped together: θ, ĝ and each state entry as lists of tensors.

    ``state`` is a namespace like the core's State: ``state.t`` is the shared step
    counter, ``state.s`` the list of first moments, and so on.
    """

    def __init__(self, tensor_names: list[str]) -> None:
        self.params: list[torch.Tensor] = []
        self.states: list[dict[str, Any]] = []
        self.moment_names = tuple(tensor_names)
        self.state = SimpleNamespace(**{name: [] for name in tensor_names})

    def add(self, p: torch.Tensor, state: dict[str, Any]) -> None:
        self.params.append(p)
        self.states.append(state)
        for name in self.moment_names:
            getattr(self.state, name).append(state[name])

    def prepare_gradients(self, group: dict[str, Any], work_copies: bool = True) -> None:
        """The scalar state, θ and ĝ (in the state's dtype with ``work_copies``, else as
        stored); ĝ negated for ``maximize`` (the rule adds weight decay itself)."""
        first = self.states[0]
        for name in ("t", *(k for k, v in first.items() if not torch.is_tensor(v))):
            if name != "skipped":
                setattr(self.state, name, first[name])
        self.work = _work_dtype(self.params[0])
        self.low_precision = work_copies and self.params[0].dtype in _LOW_PRECISION
        # FSDP2 shards parameters as DTensors: an element-wise step on each local shard is
        # the step, so the routes see the local tensors (views of the same storage).
        self.local_params = [_local(p.detach()) for p in self.params]
        for name in self.moment_names:
            setattr(self.state, name, [_local(m) for m in getattr(self.state, name)])
        if self.low_precision:
            self.theta = [p.float() for p in self.local_params]
            g = [_local(_grad(p)).float() for p in self.params]
        else:
            self.theta = self.local_params
            g = [_local(_grad(p)) for p in self.params]
        if group["maximize"]:
            g = list(torch._foreach_neg(g))
        self.g = g

    def write_back(self) -> None:
        """Store the new scalars in every parameter's state and round θ into the parameter
        (low precision: the multi-tensor step computed on float32 copies)."""
        scalars = {k: v for k, v in vars(self.state).items() if not isinstance(v, list)}
        for state in self.states:
            state.update(scalars)
        if self.low_precision:
            torch._foreach_copy_(self.local_params, self.theta)


class _SinglePassPlan:
    """A group's buckets for the single-pass step, kept from step to step.

    Made from :meth:`TorchOptimizer._buckets` (which creates the states of new parameters);
    each bucket gets a :class:`~steplab.torch._single_pass.SinglePass` (its kernel and the
    flat views of its moments). :meth:`is_current` checks that the plan still describes the
    group: the same parameters have a gradient (dense), each state is the same dict holding
    the same moment tensors at the expected step count and scalar state, and the switches
    and torch's CPU thread count are the same (else a new plan is made). The checks run as
    ``map`` over the parameters (C loops): a step of a large model costs little Python
    besides its kernels.
    """

    def __init__(
        self,
        optimizer: TorchOptimizer,
        group: dict[str, Any],
        configured: CoreOptimizer,
        declared: dict,
    ) -> None:
        self.group = group
        self.configured = configured
        self.declared = (
            declared  # the cached dict of the group's values (see _configured_and_declared)
        )
        self.switches = _switches(declared, group)
        self.threads = torch.get_num_threads()  # CPU kernels are compiled for a thread count
        self.params = list(group["params"])
        self.has_grad = [p.grad is not None for p in self.params]
        self.buckets = []
        for bucket in optimizer._buckets(group, configured, declared):
            bucket.prepare_gradients(group, work_copies=False)
            self.buckets.append(self._planned_bucket(optimizer, configured, declared, bucket))

    def _planned_bucket(
        self, optimizer: TorchOptimizer, configured: CoreOptimizer, declared: dict, bucket: _Bucket
    ) -> Any:
        return _PlannedBucket(configured, declared, bucket)

    def is_current(
        self, states: Any, group: dict[str, Any], configured: CoreOptimizer, declared: dict
    ) -> bool:
        """Whether the plan still describes the group (see the class docstring)."""
        if group is not self.group or configured is not self.configured:
            return False
        params = group["params"]
        if len(params) != len(self.params) or torch.get_num_threads() != self.threads:
            return False
        if (declared is not self.declared or group["maximize"] != self.switches[-1]) and (
            self.switches != _switches(declared, group)
        ):
            return False
        if not all(map(operator.is_, params, self.params)):
            return False
        grads = list(map(_GRAD, params))
        if list(map(operator.is_not, grads, repeat(None))) != self.has_grad:
            return False
        if any(map(_IS_SPARSE, compress(grads, self.has_grad))):
            return False
        for bucket in self.buckets:
            if not bucket.is_current(states):
                return False
        return True

    def step(
        self,
        group: dict[str, Any],
        configured: CoreOptimizer,
        declared: dict,
        grad_norm: float | None = None,
    ) -> None:
        maximize = group["maximize"]
        for bucket in self.buckets:
            bucket.step(configured, declared, maximize, grad_norm)


class _PlannedBucket:
    """One bucket of a :class:`_SinglePassPlan`: its parameters and states, the step count
    and scalar state they share, and their :class:`SinglePass`."""

    def __init__(self, configured: CoreOptimizer, declared: dict, bucket: _Bucket) -> None:
        self._hold(configured, bucket)
        self.plain = all(type(p) in _PLAIN for p in self.params)  # no DTensor: no _local
        # a step's hyperparameters: their switches and fields select the kernel (a stand-in
        # ‖ĝ‖ for a chain that clips by global norm: only its type matters here)
        step_values, _ = configured.prepare_step(
            declared, self.t + 1, SimpleNamespace(**self.scalars), TORCH_OPS, grad_norm=0.0
        )
        moments = {k: getattr(bucket.state, k) for k in bucket.moment_names}
        params = bucket.local_params
        self.packed = _SmallPacked.of(params, moments) if self.plain else None
        if self.packed is not None:
            params, moments = self.packed.operands(params, moments)
        self.single = SinglePass(configured, step_values, params, moments, bucket.work)

    def _hold(self, configured: CoreOptimizer, bucket: _Bucket) -> None:
        """What the plan keeps of the bucket: its tensors, states, step count and scalar
        state (what :meth:`is_current` checks are still theirs)."""
        self.t = bucket.state.t
        self.scalars = {k: getattr(bucket.state, k) for k in configured.SCALAR_STATE}
        self.params = bucket.params
        self.states = bucket.states
        self.names = bucket.moment_names
        self.held = [(k, [state[k] for state in self.states]) for k in self.names]

    def _prepare(self, configured: CoreOptimizer, declared: dict,
                 grad_norm: float | None) -> tuple[int, Any, dict]:  # fmt: skip
        """Step t's number, values and new scalar state (the protocol's prepare_step)."""
        t = self.t + 1
        step_values, scalars = configured.prepare_step(
            declared, t, SimpleNamespace(**self.scalars), TORCH_OPS, grad_norm=grad_norm
        )
        return t, step_values, scalars

    def _commit(self, t: int, scalars: dict) -> None:
        """The step is done: t and the scalar state, here and in every parameter's state."""
        self.t = t
        self.scalars = scalars
        _set_in_all(self.states, "t", t)
        for name, value in scalars.items():
            _set_in_all(self.states, name, value)

    def is_current(self, states: Any) -> bool:
        mine = self.states
        if not all(map(operator.is_, map(states.get, self.params), mine)):
            return False
        if not all(map(operator.eq, map(dict.get, mine, repeat("t")), repeat(self.t))):
            return False
        for name, tensors in self.held:
            if not all(map(operator.is_, map(dict.get, mine, repeat(name)), tensors)):
                return False
        for name, value in self.scalars.items():
            if not all(map(operator.eq, map(dict.get, mine, repeat(name)), repeat(value))):
                return False
        return True

    def step(
        self,
        configured: CoreOptimizer,
        declared: dict,
        maximize: bool,
        grad_norm: float | None = None,
    ) -> None:
        t, step_values, scalars = self._prepare(configured, declared, grad_norm)
        params = self.params
        if self.plain:  # the parameters themselves (the step runs under no_grad)
            thetas = params
            grads = list(map(_GRAD, params))
        else:
            thetas = [_local(p.detach()) for p in params]
            grads = [_local(_grad(p)) for p in params]
        if maximize:
            grads = list(torch._foreach_neg(grads))
        packed = self.packed
        if packed is None:
            self.single.step(step_values, thetas, grads)
        else:
            self.single.step(step_values, *packed.pack(thetas, grads))
            packed.unpack(thetas)
        self._commit(t, scalars)


class _SmallPacked:
    """A single-pass bucket's small CPU tensors as one flat tensor per operand, so that the
    compiled kernel steps them in one call: each moment a view of the storage its tensors
    share (:func:`_place_back_to_back`), θ and ĝ copied into kept buffers before the call
    and θ copied back after it. (Left to itself, the single pass would copy each moment
    in and out too.)"""

    @classmethod
    def of(cls, params: list, moments: dict[str, list]) -> _SmallPacked | None:
        """The packing of ``params``, or None where there is nothing to gain: not on the
        CPU, fewer than two small tensors, or moments that do not lie back to back."""
        if params[0].device.type != "cpu":
            return None
        small = [i for i, p in enumerate(params) if p.numel() < PACK_BELOW and p.is_contiguous()]
        if len(small) < 2:
            return None
        flats = {}
        for name, tensors in moments.items():
            flat = _adjacent_view([tensors[i] for i in small])
            if flat is None:
                return None
            flats[name] = flat
        return cls(params, small, flats)

    def __init__(self, params: list, small: list[int], flats: dict) -> None:
        self.small = small
        chosen = set(small)
        self.large = [i for i in range(len(params)) if i not in chosen]
        self.pick_small = operator.itemgetter(*small)
        self.flats = flats
        parts = [params[i] for i in small]
        unflatten = torch._C._nn.unflatten_dense_tensors
        self.theta = torch.empty(sum(p.numel() for p in parts), dtype=parts[0].dtype)
        self.theta_views = list(unflatten(self.theta, parts))
        self.g = torch.empty_like(self.theta)
        self.g_views = list(unflatten(self.g, parts))

    def operands(self, params: list, moments: dict[str, list]) -> tuple[list, dict]:
        """The single pass's operands: the flat tensors first, then the large tensors."""
        large = [params[i] for i in self.large]
        flat_moments = {k: [self.flats[k], *(m[i] for i in self.large)] for k, m in moments.items()}
        return [self.theta, *large], flat_moments

    def pack(self, thetas: list, grads: list) -> tuple[list, list]:
        torch._foreach_copy_(self.theta_views, list(self.pick_small(thetas)))
        torch._foreach_copy_(self.g_views, list(self.pick_small(grads)))
        large = self.large
        return [self.theta, *(thetas[i] for i in large)], [self.g, *(grads[i] for i in large)]

    def unpack(self, thetas: list) -> None:
        torch._foreach_copy_(list(self.pick_small(thetas)), self.theta_views)


class _MultiTensorPlan(_SinglePassPlan):
    """A group's buckets for the multi-tensor step, kept from step to step (the checks of
    :class:`_SinglePassPlan`, and that the parameters' storages did not move)."""

    def _planned_bucket(
        self, optimizer: TorchOptimizer, configured: CoreOptimizer, declared: dict, bucket: _Bucket
    ) -> Any:
        caches = optimizer.__dict__
        return _PlannedMultiTensorBucket(
            configured,
            declared,
            bucket,
            caches.setdefault("_programs", Programs()),
            caches.setdefault("_packing_buffers", {}),
            caches.setdefault("_scratch", {}),
            self.group["maximize"],
        )


class _PlannedMultiTensorBucket(_PlannedBucket):
    """One bucket of a :class:`_MultiTensorPlan`.

    On CPU its small tensors (fewer than :data:`PACK_BELOW` elements, contiguous) are
    stepped as one flat tensor per operand: ĝ copied into a kept buffer, each moment a view
    of the storage its tensors share (:func:`_place_back_to_back`) or a packed copy, and θ
    either a packed copy or, when the rule reads θ only in its last operation
    (``θ + Δθ``), not copied at all: that operation runs on the parameters themselves and
    per-tensor views of the packed Δθ. The other tensors run in batches (:func:`_batches`).
    Where numba is installed, CPU float32/float64 tensors are instead stepped by one
    compiled call (:class:`~steplab.torch._serial.SerialTable`; with several torch threads
    only the small ones).
    """

    def __init__(
        self,
        configured: CoreOptimizer,
        declared: dict,
        bucket: _Bucket,
        programs: Programs,
        buffers: dict,
        scratch: dict,
        maximize: bool = False,
    ) -> None:
        self._hold(configured, bucket)
        self.plain = True
        self.programs, self.buffers, self.scratch = programs, buffers, scratch
        self.pointers = list(map(torch.Tensor.data_ptr, self.params))
        moments = [tensors for _, tensors in self.held]
        # tensors stepped by one compiled call (CPU, numba installed): see _serial
        self.serial = SerialTable.of(configured, self.params, self.held, maximize)
        compiled = set(self.serial.indices if self.serial is not None else ())
        rest = [i for i in range(len(self.params)) if i not in compiled]
        small: list[int] = []
        if self.params[0].device.type == "cpu":
            for i in rest:
                p = self.params[i]
                if p.numel() < PACK_BELOW and all(
                    t.is_contiguous() for t in (p, *(m[i] for m in moments))
                ):
                    small.append(i)
        if len(small) < 2:
            small = []
        chosen = set(small)
        self.large = [i for i in rest if i not in chosen]
        self.small = small
        self.pick_small: Any = operator.itemgetter(*small) if small else None
        self.theta_small = [self.params[i] for i in small]
        self.theta_large = [self.params[i] for i in self.large]
        self.moments_small = [[m[i] for i in small] for m in moments]
        self.moments_large = [[m[i] for i in self.large] for m in moments]
        self.shapes = shapes = tuple(p.shape for p in self.theta_small)
        # the moments as flat tensors: views where they lie back to back, else packed
        self.moment_flats: list[tuple[torch.Tensor, list | None]] = []
        for k, parts in enumerate(self.moments_small if small else []):
            flat = _adjacent_view(parts)
            if flat is not None:
                self.moment_flats.append((flat, None))
            else:
                key = ("moment", k, parts[0].dtype, parts[0].device, shapes)
                self.moment_flats.append(_buffer(buffers, key, parts))
        if small:
            g_key = ("g", self.theta_small[0].dtype, self.theta_small[0].device, shapes)
            self.g_flat, self.g_views = _buffer(buffers, g_key, self.theta_small)

    def is_current(self, states: Any) -> bool:
        return super().is_current(states) and (
            list(map(torch.Tensor.data_ptr, self.params)) == self.pointers
        )

    def step(
        self,
        configured: CoreOptimizer,
        declared: dict,
        maximize: bool,
        grad_norm: float | None = None,
    ) -> None:
        t, step_values, scalars = self._prepare(configured, declared, grad_norm)
        grads = list(map(_GRAD, self.params))
        serial = self.serial
        traced = None
        if serial is not None and not serial.step(configured, step_values, grads):
            # this step's gradients (or the rule) do not fit the compiled call
            traced = self.programs.get(configured, step_values, self.names)
            self._step_lists(configured, step_values, traced, serial.indices, grads, maximize)
        if self.small or self.large:
            traced = traced or self.programs.get(configured, step_values, self.names)
        if self.small:
            self._step_small(
                configured, step_values, traced, list(self.pick_small(grads)), maximize
            )
        if self.large:
            self._step_lists(configured, step_values, traced, self.large, grads, maximize)
        self._commit(t, scalars)

    def _step_lists(self, configured: CoreOptimizer, step_values: Any, traced: Any,
                    indices: list[int], grads: list, maximize: bool) -> None:  # fmt: skip
        """The tensors at ``indices`` stepped by the traced program (or the rule on
        TensorLists), in cache-sized batches."""
        g = [grads[i] for i in indices]
        if maximize:
            g = list(torch._foreach_neg(g))
        thetas = self.theta_large if indices is self.large else [self.params[i] for i in indices]
        held = (
            self.moments_large
            if indices is self.large
            else [[m[i] for i in indices] for _, m in self.held]
        )
        for batch in _batches([thetas, g, *held]):
            if traced is None:
                _step_batch(configured, step_values, batch, self.names)
            else:
                program, registers = traced
                program.run(registers, batch, _scratch_for(self.scratch, program, batch[0]))

    def _step_small(
        self, configured: CoreOptimizer, step_values: Any, traced: Any, g: list, maximize: bool
    ) -> None:
        """The small tensors, packed (see the class docstring)."""
        torch._foreach_copy_(self.g_views, g)
        if maximize:
            self.g_flat.neg_()
        for (_, views), parts in zip(self.moment_flats, self.moments_small, strict=True):
            if views is not None:
                torch._foreach_copy_(views, parts)
        moments = [[flat] for flat, _ in self.moment_flats]
        if traced is not None and traced[0].theta_last:
            program, registers = traced
            flat_scratch, split_scratch = self._scratch_of(program)
            slots = [[], [self.g_flat], *moments, *flat_scratch]
            split = [self.theta_small, self.g_views, *self.moments_small, *split_scratch]
            program.run_split_last(registers, slots, split)
        else:
            key = ("theta", self.theta_small[0].dtype, self.theta_small[0].device, self.shapes)
            theta_flat, theta_views = _buffer(self.buffers, key, self.theta_small)
            torch._foreach_copy_(theta_views, self.theta_small)
            batch = [[theta_flat], [self.g_flat], *moments]
            if traced is None:
                _step_batch(configured, step_values, batch, self.names)
            else:
                program, registers = traced
                program.run(registers, batch, _scratch_for(self.scratch, program, batch[0]))
            torch._foreach_copy_(self.theta_small, theta_views)
        for (_, views), parts in zip(self.moment_flats, self.moments_small, strict=True):
            if views is not None:
                torch._foreach_copy_(parts, views)

    def _scratch_of(self, program: Program) -> tuple[list, list]:
        """``program``'s scratch buffers for the packed small tensors, flat and as views
        shaped as the parameters (kept)."""
        key = ("small", id(program), self.g_flat.dtype, self.g_flat.device, self.shapes)
        kept = self.scratch.get(key)
        if kept is None:
            flat = program.new_scratch([self.g_flat])
            unflatten = torch._C._nn.unflatten_dense_tensors
            split = [list(unflatten(f[0], self.theta_small)) for f in flat]
            kept = self.scratch[key] = (flat, split)
        return kept


def _plannable(params: list) -> bool:
    """Whether the multi-tensor step of these parameters can be planned: plain tensors (no
    DTensor) in a dtype that computes in itself (not bfloat16/float16)."""
    if not set(map(type, params)) <= _PLAIN_SET:
        return False
    return not set(map(_DTYPE, params)) & _LOW_PRECISION_SET


_DTYPE = operator.attrgetter("dtype")
_GRAD = operator.attrgetter("grad")
_IS_SPARSE = operator.attrgetter("is_sparse")


def _set_in_all(dicts: list[dict], key: str, value: Any) -> None:
    """``d[key] = value`` for every dict of ``dicts`` (a C loop)."""
    collections.deque(map(dict.__setitem__, dicts, repeat(key), repeat(value)), maxlen=0)


def _switches(declared: dict[str, Any], group: dict[str, Any]) -> tuple:
    """What selects a group's kernels besides the configured: flags such as ``weight_decay_on``,
    and ``maximize``."""
    return (*(v for v in declared.values() if isinstance(v, bool)), group["maximize"])


def _initial_moments(
    configured: CoreOptimizer, declared: dict[str, Any], work: torch.Tensor
) -> dict:
    """The moments ``core`` keeps for ``declared``, each filled with its initial value."""
    declared_ns = SimpleNamespace(**declared)
    moments = {}
    for name in configured.kept_moments(declared_ns):
        value = initial_value(configured, name, declared_ns, work)  # a constant, or θ₀ itself
        moments[name] = value.clone() if value is work else torch.full_like(work, float(value))
    return moments


#: On CPU the multi-tensor route runs the rule on batches of about this many elements.
CPU_BATCH = 1 << 18


def _batches(roles: list[list[torch.Tensor]]) -> list[list[list[torch.Tensor]]]:
    """The bucket's operands (θ, ĝ, each moment: lists of tensors) in batches for the
    multi-tensor route.

    On CPU the rule runs on slices of the flattened tensors, ≈ ``CPU_BATCH`` elements at a
    time: the traced program's scratch buffers for a batch stay in the core's cache from
    one operation to the next, so each operation reads and writes cache, not memory (and
    the untraced route's temporaries are reused by the heap instead of being page-faulted
    in). The rule is element-wise, so slices are stepped exactly as whole tensors.
    """
    if roles[0][0].device.type != "cpu":
        return [roles]
    batches: list[list[list[torch.Tensor]]] = []
    current: list[list[torch.Tensor]] = [[] for _ in roles]
    size = 0
    for i, x in enumerate(roles[0]):
        tensors = [r[i] for r in roles]
        if all(t.is_contiguous() for t in tensors):
            flat = [t.view(-1) for t in tensors]
            pieces = (
                [f.split(CPU_BATCH) for f in flat] if x.numel() > CPU_BATCH else [[f] for f in flat]
            )
        else:
            pieces = [[t] for t in tensors]
        for parts in zip(*pieces, strict=True):
            for column, part in zip(current, parts, strict=True):
                column.append(part)
            size += parts[0].numel()
            if size >= CPU_BATCH:
                batches.append(current)
                current, size = [[] for _ in roles], 0
    if current[0]:
        batches.append(current)
    return batches


def _scratch_for(kept: dict, program: Program, like: list[torch.Tensor]) -> list:
    """The scratch buffers of ``program`` for a batch whose θ is ``like``: on CPU kept from
    step to step (a fresh allocation of megabytes costs page faults on every step; CPU
    batches are small), elsewhere made for the step (a whole bucket is one batch there, and
    the device's caching allocator hands back the same blocks without holding them)."""
    if like[0].device.type != "cpu":
        return program.new_scratch(like)
    key = (id(program), like[0].dtype, like[0].device, *(t.shape for t in like))
    buffers = kept.get(key)
    if buffers is None:
        if len(kept) >= 64:  # layouts of past steps
            kept.clear()
        buffers = kept[key] = program.new_scratch(like)
    return buffers


#: On CPU, tensors with fewer elements than this are stepped packed into one flat tensor.
PACK_BELOW = 1 << 14


class _Packing:
    """A bucket's small tensors as one flat tensor per operand, for the CPU multi-tensor step.

    On CPU a multi-tensor operation is a loop of per-tensor kernels, each costing a few
    microseconds of dispatch: for many small tensors that, not the arithmetic, is the step's
    time. So the small tensors of each operand (θ, ĝ, each moment) become one flat tensor:
    a view where they already lie back to back in one storage (the moments steplab makes,
    see :func:`_place_back_to_back`), else a packed copy, copied back by :meth:`unpack`. The
    rule is element-wise, so each element is computed exactly as in its own tensor.
    """

    def __init__(self, roles: list[list[torch.Tensor]], buffers: dict) -> None:
        first = roles[0]
        self.small: list[int] = []
        if first and first[0].device.type == "cpu":
            numels = map(torch.Tensor.numel, first)
            self.small = [i for i, n in enumerate(numels) if n < PACK_BELOW]
        self.parts = [[r[i] for i in self.small] for r in roles]
        if not all(all(map(torch.Tensor.is_contiguous, parts)) for parts in self.parts):
            self.small = [i for i in self.small if all(r[i].is_contiguous() for r in roles)]
            self.parts = [[r[i] for i in self.small] for r in roles]
        if len(self.small) < 2:
            self.small = []
            self.lists = roles
            return
        chosen = set(self.small)
        rest = [i for i in range(len(first)) if i not in chosen]
        self.flats = []
        self.views: list[list[torch.Tensor] | None] = []
        shapes = tuple(x.shape for x in self.parts[0])
        for k, parts in enumerate(self.parts):
            flat = _adjacent_view(parts)
            views = None
            if flat is None:
                flat, views = _buffer(buffers, (k, parts[0].dtype, parts[0].device, shapes), parts)
                torch._foreach_copy_(views, parts)
            self.flats.append(flat)
            self.views.append(views)
        self.lists = [[f, *(r[i] for i in rest)] for f, r in zip(self.flats, roles, strict=True)]

    def unpack(self, written: list[int]) -> None:
        """Copy the packed copies of the operands ``written`` (indices) into their tensors."""
        if not self.small:
            return
        for k in written:
            views = self.views[k]
            if views is not None:
                torch._foreach_copy_(self.parts[k], views)


def _buffer(buffers: dict, key: tuple, parts: list[torch.Tensor]) -> tuple:
    """A flat tensor for ``parts`` and its views shaped as they are, kept in ``buffers``
    from step to step: a fresh allocation of megabytes costs page faults on every step,
    and making the views costs a microsecond or two per tensor."""
    kept = buffers.get(key)
    if kept is None:
        if len(buffers) >= 16:  # shapes of past steps (parameters without a gradient, …)
            buffers.clear()
        flat = torch.empty(
            sum(x.numel() for x in parts), dtype=parts[0].dtype, device=parts[0].device
        )
        kept = buffers[key] = (flat, list(torch._C._nn.unflatten_dense_tensors(flat, parts)))
    return kept


def _adjacent_view(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """One flat view of ``tensors`` if they are contiguous views of one tensor lying back
    to back, in order; else None. (Checked with ``map``, C loops: this runs every step.)"""
    first = tensors[0]
    base = first._base
    if base is None or not all(map(operator.is_, map(_BASE, tensors), repeat(base))):
        return None
    if not all(map(torch.Tensor.is_contiguous, tensors)):
        return None
    numels = list(map(torch.Tensor.numel, tensors))
    ends = itertools.accumulate(numels, initial=first.data_ptr() // first.element_size())
    starts = [p // first.element_size() for p in map(torch.Tensor.data_ptr, tensors)]
    if not all(map(operator.eq, starts, ends)) or any(t.dtype != first.dtype for t in tensors):
        return None
    flat = torch.empty((0,), dtype=first.dtype, device=first.device)
    return flat.set_(first.untyped_storage(), first.storage_offset(), (sum(numels),), (1,))


_BASE = operator.attrgetter("_base")


def _place_back_to_back(new_states: list[tuple[torch.Tensor, dict[str, Any]]]) -> None:
    """Store the new moments of small CPU parameters back to back, one storage per moment
    and dtype, so that the multi-tensor step reads them as one flat tensor with no copy."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for p, state in new_states:
        if type(p) in _PLAIN and p.device.type == "cpu" and p.numel() < PACK_BELOW:
            groups.setdefault((p.dtype, tuple(state)), []).append(state)
    for states in groups.values():
        if len(states) < 2:
            continue
        for name, value in states[0].items():
            if torch.is_tensor(value) and value.is_contiguous():
                tensors = [s[name] for s in states]
                same = (type(t) is torch.Tensor and t.dtype == value.dtype for t in tensors)
                if all(same) and all(t.is_contiguous() for t in tensors):
                    flat = torch._C._nn.flatten_dense_tensors(tensors)
                    views = torch._C._nn.unflatten_dense_tensors(flat, tensors)
                    for s, view in zip(states, views, strict=True):
                        s[name] = view


def _step_batch(configured: CoreOptimizer, step_values: Any, roles: list, names: tuple) -> None:
    """The rule run directly on TensorLists for one batch of :func:`_batches`, results
    copied into θ and the moments."""
    theta, g, *held = roles
    state = SimpleNamespace(**{k: TensorList(m) for k, m in zip(names, held, strict=True)})
    new_theta, new_moments = configured.apply_rule(
        TORCH_OPS, step_values, TensorList(theta), TensorList(g), state
    )
    torch._foreach_copy_(theta, new_theta.tensors)
    for k, m in zip(names, held, strict=True):
        torch._foreach_copy_(m, new_moments[k].tensors)


def _grad(p: torch.Tensor) -> torch.Tensor:
    assert p.grad is not None  # buckets hold parameters with a gradient only
    return p.grad


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (a view of its storage); any other tensor itself."""
    if type(t) in _PLAIN:  # the common case, without a failing attribute lookup
        return t
    to_local = getattr(t, "to_local", None)
    return to_local() if to_local is not None else t


_PLAIN = (torch.Tensor, torch.nn.Parameter)
_PLAIN_SET = frozenset(_PLAIN)
_LOW_PRECISION_SET = frozenset(_LOW_PRECISION)


def _work_dtype(p: torch.Tensor) -> torch.dtype:
    return torch.float32 if p.dtype in _LOW_PRECISION else p.dtype


def _hyperparameters_of(configured: CoreOptimizer) -> dict[str, Any]:
    return {name: getattr(configured, name) for name in configured.hyperparameters()}
