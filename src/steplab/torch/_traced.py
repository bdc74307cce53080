"""The rule traced once into a program of in-place multi-tensor operations.

The multi-tensor step runs the core's element-wise rule on lists of tensors. Run directly
(:class:`~steplab.torch._tensorlist.TensorList`), every operation of the rule allocates its
result and the results are copied into θ and the moments at the end: on CPU a fresh
allocation of megabytes costs page faults, and the copies are extra passes over memory.

So the rule is *traced* once per (rule, switches, moments kept): :func:`trace` calls the
core's ``apply_rule`` on symbolic operands (:class:`_Array` for θ, ĝ and the moments,
:class:`_Scalar` for the step values) and records each operation, in the rule's order. A
liveness pass then gives every intermediate a place: in the storage of an operand that
dies there (the operation runs in place, ``torch._foreach_mul_``), else in a kept scratch
buffer. The new θ and moments end in the parameters' and the state's own tensors. The
numbers are those of the direct run: the same torch kernels on the same operands in the
same order (in place or not, a kernel computes the same bits), and the scalars are
computed by the same Python arithmetic, re-evaluated from each step's values.

A branch of the rule on a step value (``where`` with a scalar condition, such as RAdam's
ρₜ > 5, or ``if`` on one) is recorded as a *guard*: the program is valid while the
condition comes out as it did when traced, and a second program is traced for the other
outcome. A rule the tracer cannot follow (it converts a step value to a float, or calls
something outside its ``Ops``) raises :class:`TraceError`; the caller then runs it
directly on TensorLists.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from typing import Any

import torch

from steplab.optim.ops import Ops, exact_pow
from steplab.torch._tensorlist import FUNCTIONS


class TraceError(Exception):
    """The rule did something the tracer cannot record (see the module docstring)."""


# A reference to an operand of a recorded operation: ("v", k) the k-th array value,
# ("s", k) the k-th scalar register, ("c", x) the constant x.
Ref = tuple[str, Any]


class _Trace:
    """What tracing records: scalar code, array code and guards."""

    def __init__(self, n_step_values: int, trace_values: list[Any]) -> None:
        self.scalar_code: list[tuple[Callable, tuple[Ref, ...]]] = []
        self.scalar_values: list[Any] = list(trace_values)  # registers' values when traced
        self.n_inputs = n_step_values
        self.code: list[tuple[str, tuple[Ref, ...]]] = []
        self.is_bool: list[bool] = []
        self.guards: list[tuple[int, bool]] = []

    def array(self, is_bool: bool = False) -> _Array:
        self.is_bool.append(is_bool)
        return _Array(self, len(self.is_bool) - 1)

    def emit(self, op: str, *args: Any) -> _Array:
        if op in ("maximum", "minimum") and not isinstance(args[0], _Array):
            args = args[::-1]  # the array first (as TensorList: clamp_min(array, scalar))
        refs = tuple(self.ref(a) for a in args)
        self.code.append((op, refs))
        return self.array(is_bool=op in _COMPARISONS)

    def scalar(self, fn: Callable, *args: Any) -> _Scalar:
        refs = tuple(self.ref(a) for a in args)
        values = [a.value if isinstance(a, _Scalar) else a for a in args]
        self.scalar_code.append((fn, refs))
        self.scalar_values.append(fn(*values))
        return _Scalar(self, len(self.scalar_values) - 1)

    def ref(self, x: Any) -> Ref:
        if isinstance(x, _Array):
            return ("v", x.index)
        if isinstance(x, _Scalar):
            return ("s", x.index)
        if isinstance(x, bool):
            return ("c", x)
        if isinstance(x, numbers.Number):
            return ("c", x.item() if hasattr(x, "item") else x)  # NumPy scalars: Python's
        raise TraceError(f"the rule combined an array with {type(x).__name__}")


class _Array:
    """A symbolic list of tensors: each operation is recorded, in the rule's order."""

    __slots__ = ("index", "trace")

    def __init__(self, trace: _Trace, index: int) -> None:
        self.trace = trace
        self.index = index

    def __add__(self, other: Any) -> _Array:
        return self.trace.emit("add", self, other)

    __radd__ = __add__  # as TensorList: the list is the first operand

    def __sub__(self, other: Any) -> _Array:
        return self.trace.emit("sub", self, other)

    def __rsub__(self, other: Any) -> _Array:
        return self.trace.emit("rsub", self, other)

    def __mul__(self, other: Any) -> _Array:
        return self.trace.emit("mul", self, other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> _Array:
        return self.trace.emit("div", self, other)

    def __rtruediv__(self, other: Any) -> _Array:
        return self.trace.emit("rdiv", self, other)

    def __pow__(self, other: Any) -> _Array:
        return self.trace.emit("pow", self, other)

    def __neg__(self) -> _Array:
        return self.trace.emit("neg", self)

    def __gt__(self, other: Any) -> _Array:
        return self.trace.emit("gt", self, other)

    def __lt__(self, other: Any) -> _Array:
        return self.trace.emit("lt", self, other)

    def __ge__(self, other: Any) -> _Array:
        return self.trace.emit("ge", self, other)

    def __le__(self, other: Any) -> _Array:
        return self.trace.emit("le", self, other)

    def __bool__(self) -> bool:
        raise TypeError(
            "an array has no truth value: a rule must not branch on array values (use ops.where)"
        )


def _scalar_method(fn: Callable, reflected: bool = False) -> Callable:
    def method(self: _Scalar, other: Any) -> Any:
        if isinstance(other, _Array):
            return NotImplemented
        if not isinstance(other, (_Scalar, numbers.Number)):
            raise TraceError(f"a step value was combined with {type(other).__name__}")
        return self.trace.scalar(fn, *((other, self) if reflected else (self, other)))

    return method


class _Scalar:
    """A symbolic step value (or a function of step values): recorded, and evaluated with
    the value it has when traced (for guards)."""

    __slots__ = ("index", "trace", "value")

    def __init__(self, trace: _Trace, index: int) -> None:
        self.trace = trace
        self.index = index
        self.value = trace.scalar_values[index]

    __add__ = _scalar_method(operator.add)
    __radd__ = _scalar_method(operator.add, reflected=True)
    __sub__ = _scalar_method(operator.sub)
    __rsub__ = _scalar_method(operator.sub, reflected=True)
    __mul__ = _scalar_method(operator.mul)
    __rmul__ = _scalar_method(operator.mul, reflected=True)
    __truediv__ = _scalar_method(operator.truediv)
    __rtruediv__ = _scalar_method(operator.truediv, reflected=True)
    __pow__ = _scalar_method(operator.pow)
    __rpow__ = _scalar_method(operator.pow, reflected=True)
    __gt__ = _scalar_method(operator.gt)
    __lt__ = _scalar_method(operator.lt)
    __ge__ = _scalar_method(operator.ge)
    __le__ = _scalar_method(operator.le)
    __eq__ = _scalar_method(operator.eq)
    __ne__ = _scalar_method(operator.ne)
    __hash__ = None  # type: ignore[assignment]

    def __neg__(self) -> _Scalar:
        return self.trace.scalar(operator.neg, self)

    def __abs__(self) -> _Scalar:
        return self.trace.scalar(operator.abs, self)

    def __bool__(self) -> bool:
        """A branch on a step value: a guard (see the module docstring)."""
        outcome = bool(self.value)
        self.trace.guards.append((self.index, outcome))
        return outcome

    def __float__(self) -> float:
        raise TraceError("the rule converts a step value to a float")


def _traced_function(name: str) -> Callable:
    """The ``Ops`` function ``name`` for traced operands: an array operation if an operand
    is an array, else a scalar one computed with torch's own scalar function."""
    scalar_fn = FUNCTIONS[name]

    def fn(*args: Any) -> Any:
        if name == "where" and isinstance(args[0], _Scalar):
            return args[1] if args[0] else args[2]  # a guard
        arrays = [a for a in args if isinstance(a, _Array)]
        if arrays:
            if name == "pow":
                raise TraceError("ops.pow is for per-step scalars only")
            return arrays[0].trace.emit(name, *args)
        scalars = [a for a in args if isinstance(a, _Scalar)]
        if scalars:
            return scalars[0].trace.scalar(exact_pow if name == "pow" else scalar_fn, *args)
        return scalar_fn(*args)

    return fn


#: The Ops table the rules are traced with.
TRACE_OPS = Ops(**{name: _traced_function(name) for name in Ops._fields})

_COMPARISONS = {"gt", "lt", "ge", "le"}


# ----------------------------------------------------------------------------------------
# Tracing a rule, and the program it gives
# ----------------------------------------------------------------------------------------


def trace(configured: Any, hp: Any, names: tuple[str, ...]) -> Program:
    """The rule of ``configured`` (a core optimizer) for step values like ``hp`` (a
    NamedTuple; its numbers are symbolic, its switches fixed) and the moments ``names``."""
    tr = _Trace(len(hp), list(hp))
    symbolic = [
        v if isinstance(v, bool) or not isinstance(v, numbers.Number) else _Scalar(tr, i)
        for i, v in enumerate(hp)
    ]
    inputs = [tr.array() for _ in range(2 + len(names))]
    state = _State(dict(zip(names, inputs[2:], strict=True)))
    new_theta, new_moments = configured.apply_rule(
        TRACE_OPS, type(hp)(*symbolic), inputs[0], inputs[1], state
    )
    outputs = [new_theta, *(new_moments[k] for k in names)]
    if not all(isinstance(x, _Array) for x in outputs):
        raise TraceError("the rule returned a moment that is not an array")
    return Program(tr, [x.index for x in outputs])


class _State:
    """The traced moments as attributes (what ``apply_rule`` reads)."""

    def __init__(self, moments: dict[str, _Array]) -> None:
        self.__dict__.update(moments)


#: A compiled operation: (the slots' tensor lists, the scalar registers) -> None.
Step = Callable[[list, list], None]

_READ_ONLY = 1  # ĝ's slot: the caller's gradients (or their packed copy)
_COMMUTATIVE = {"add", "mul", "maximum", "minimum"}
_IN_PLACE_OPS = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "rsub", "rdiv",
    "neg", "sqrt", "abs", "sign", "exp", "log",
}  # fmt: skip


class Program:
    """A traced rule with a place for every value (see the module docstring).

    Slots: 0 θ, 1 ĝ (read only), 2… the moments, then scratch buffers. Each operation
    writes into the slot of its first operand if that operand dies there (the in-place
    ``_foreach`` op), else into a free slot; at the end the new θ and moments are in
    slots 0, 2, … (copied there if the allocation left one elsewhere).
    """

    def __init__(self, tr: _Trace, outputs: list[int]) -> None:
        self.scalar_code = tr.scalar_code
        self.n_inputs = tr.n_inputs
        self.guards = tr.guards
        n_roles = len(outputs) + 1  # θ, ĝ, the moments
        last_use = [-1] * len(tr.is_bool)
        for i, (_, refs) in enumerate(tr.code):
            for kind, x in refs:
                if kind == "v":
                    last_use[x] = i
        for x in outputs:
            last_use[x] = len(tr.code)  # outputs live to the end
        slot_of = list(range(n_roles)) + [-1] * len(tr.code)
        occupant: list[int | None] = list(range(n_roles))
        self.scratch_is_bool: list[bool] = []
        self.steps: list[Step] = []
        result = n_roles
        for i, (op, refs) in enumerate(tr.code):
            is_bool = tr.is_bool[result]
            arrays = [x for kind, x in refs if kind == "v"]
            dying = [x for x in set(arrays) if last_use[x] == i]
            refs, dest = self._in_place(op, refs, dying, slot_of)
            in_place = dest is not None
            if dest is None:
                busy = {slot_of[x] for x in arrays}
                dest = self._free_slot(occupant, busy, is_bool, n_roles)
            for x in dying:
                occupant[slot_of[x]] = None
            occupant[dest] = result if last_use[result] > i else None  # unused: free at once
            slot_of[result] = dest
            where = tuple(("slot", slot_of[x]) if k == "v" else (k, x) for k, x in refs)
            self.steps.append(_compile(op, dest, where, in_place))
            result += 1
        last = len(tr.code) - 1
        #: Whether θ is read only by the last operation, which adds into θ's storage in
        #: place: then a caller may run that one on θ's own tensors and the rest packed.
        self.theta_last = (
            last >= 0
            and slot_of[outputs[0]] == 0
            and outputs[0] == n_roles + last
            and all(("v", 0) not in refs for _, refs in tr.code[:last])
            and ("v", 0) in tr.code[last][1]
            and outputs[0] not in outputs[1:]
        )
        self.last = last
        self.steps += self._placing_outputs(outputs, slot_of, occupant, n_roles)
        self.n_scratch = len(self.scratch_is_bool)

    @staticmethod
    def _in_place(op: str, refs: tuple, dying: list[int], slot_of: list[int]) -> tuple:
        """The operands (first one swapped in for a commutative op) and the slot of the
        first operand if the operation can run in place there, else None."""
        if op not in _IN_PLACE_OPS:
            return refs, None
        candidates = [0, 1] if op in _COMMUTATIVE and len(refs) == 2 else [0]
        for position in candidates:
            kind, x = refs[position]
            if kind == "v" and x in dying and slot_of[x] != _READ_ONLY:
                if position == 1:
                    if refs[0][0] != "v":
                        continue
                    refs = (refs[1], refs[0])
                return refs, slot_of[x]
        return refs, None

    def _free_slot(self, occupant: list, busy: set, is_bool: bool, n_roles: int) -> int:
        """A slot with no live value, not an operand's: a scratch buffer of the kind first,
        then θ's or a moment's storage, else a new scratch buffer."""
        for s in range(n_roles, len(occupant)):
            free = occupant[s] is None and s not in busy
            if free and self.scratch_is_bool[s - n_roles] == is_bool:
                return s
        if not is_bool:
            for s in range(n_roles):
                if s != _READ_ONLY and occupant[s] is None and s not in busy:
                    return s
        occupant.append(None)
        self.scratch_is_bool.append(is_bool)
        return len(occupant) - 1

    def _placing_outputs(self, outputs: list[int], slot_of: list[int], occupant: list,
                         n_roles: int) -> list[Step]:  # fmt: skip
        """Copies that put each new θ and moment into its own slot."""
        targets = [0, *range(2, n_roles)]
        wrong = [(x, d) for x, d in zip(outputs, targets, strict=True) if slot_of[x] != d]
        steps: list[Step] = []
        sources = []
        for x, d in wrong:  # a source that is another output's slot is saved first
            source = slot_of[x]
            if source in targets:
                occupant.append(x)  # a new scratch buffer: every free slot may be a target
                self.scratch_is_bool.append(False)
                saved = len(occupant) - 1
                steps.append(_copy(saved, source))
                source = saved
            sources.append((d, source))
        steps += [_copy(d, source) for d, source in sources]
        return steps

    def scalars(self, hp: Any) -> list[Any] | None:
        """The scalar registers for step values ``hp``, or None if a guard fails."""
        registers = list(hp)
        for fn, refs in self.scalar_code:
            registers.append(fn(*(registers[x] if k == "s" else x for k, x in refs)))
        for k, outcome in self.guards:
            if bool(registers[k]) != outcome:
                return None
        return registers

    def run(self, registers: list[Any], roles: list[list[torch.Tensor]], scratch: list) -> None:
        """One batch: ``roles`` θ, ĝ and the moments (lists of tensors, θ and the moments
        updated in place), ``scratch`` this batch's scratch buffers."""
        slots = [*roles, *scratch]
        for step in self.steps:
            step(slots, registers)

    def run_split_last(self, registers: list[Any], slots: list, split: list) -> None:
        """Every operation on ``slots`` but the last, which runs on ``split`` (the same
        operands as other tensors: θ's own where ``slots`` has packed copies); see
        :attr:`theta_last`."""
        steps = self.steps
        for step in steps[: self.last]:
            step(slots, registers)
        steps[self.last](split, registers)
        for step in steps[self.last + 1 :]:
            step(slots, registers)

    def new_scratch(self, like: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Scratch buffers for a batch whose θ is ``like``."""
        return [
            [torch.empty_like(t, dtype=torch.bool if is_bool else t.dtype) for t in like]
            for is_bool in self.scratch_is_bool
        ]


def _copy(dest: int, source: int) -> Step:
    def step(slots: list, registers: list) -> None:
        torch._foreach_copy_(slots[dest], slots[source])

    return step


def _getter(ref: tuple) -> Callable[[list, list], Any]:
    kind, x = ref
    if kind == "slot":
        return lambda slots, registers: slots[x]
    if kind == "s":
        return lambda slots, registers: registers[x]
    return lambda slots, registers: x


#: At most this many tensors in a batch: an out-of-place operation runs tensor by tensor
#: into its buffer (``out=``); more, and it copies its first operand there and runs in place.
_OUT_LOOP_MAX = 4

_UNARY = {"neg", "sqrt", "abs", "sign", "exp", "log"}
_PER_TENSOR = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "neg": torch.neg, "sqrt": torch.sqrt, "abs": torch.abs, "sign": torch.sign,
    "exp": torch.exp, "log": torch.log, "gt": torch.gt, "lt": torch.lt, "ge": torch.ge,
    "le": torch.le, "where": torch.where,
}  # fmt: skip


def _in_place_fn(op: str, scalar_operand: bool) -> Callable:
    if op == "maximum":
        return torch._foreach_clamp_min_ if scalar_operand else torch._foreach_maximum_
    if op == "minimum":
        return torch._foreach_clamp_max_ if scalar_operand else torch._foreach_minimum_
    return getattr(torch, f"_foreach_{op}_")


def _per_tensor_fn(op: str, scalar_operand: bool) -> Any:
    if op == "maximum":
        return torch.clamp_min if scalar_operand else torch.maximum
    if op == "minimum":
        return torch.clamp_max if scalar_operand else torch.minimum
    return _PER_TENSOR[op]


def _compile(op: str, dest: int, refs: tuple, in_place: bool) -> Step:
    """One operation as a function of the slots and registers, as TensorList runs it:
    ``s − x`` is −x then + s, ``s / x`` is 1/x then × s (unless s is the constant 1)."""
    get = [_getter(r) for r in refs]
    scalar_second = len(refs) > 1 and refs[1][0] != "slot"
    if op in ("rsub", "rdiv"):
        first = "neg" if op == "rsub" else "reciprocal"
        then = torch._foreach_add_ if op == "rsub" else torch._foreach_mul_
        skip = op == "rdiv" and refs[1] == ("c", 1)
        plain = _compile(first, dest, refs[:1], in_place)

        def reflected(slots: list, registers: list) -> None:
            plain(slots, registers)
            if not skip:
                then(slots[dest], get[1](slots, registers))

        return reflected
    if op in ("gt", "lt", "ge", "le", "where"):  # other dtypes, or three operands: per tensor
        fn: Any = _PER_TENSOR[op]

        def per_tensor(slots: list, registers: list) -> None:
            out = slots[dest]
            args = [g(slots, registers) for g in get]
            columns = [a if isinstance(a, list) else [a] * len(out) for a in args]
            for row, o in zip(zip(*columns), out):  # noqa: B905 - equal lengths
                fn(*row, out=o)

        return per_tensor
    unary = op in _UNARY or op == "reciprocal"
    inplace_fn = _in_place_fn(op, scalar_second)
    if in_place:
        if unary:
            return lambda slots, registers: inplace_fn(slots[dest])
        second = get[1]
        return lambda slots, registers: inplace_fn(slots[dest], second(slots, registers))
    out_fn: Any = torch.reciprocal if op == "reciprocal" else _per_tensor_fn(op, scalar_second)

    def out_of_place(slots: list, registers: list) -> None:
        out = slots[dest]
        x = get[0](slots, registers)
        if len(out) <= _OUT_LOOP_MAX:
            if unary:
                for xi, o in zip(x, out):  # noqa: B905 - equal lengths
                    out_fn(xi, out=o)
            else:
                y = get[1](slots, registers)
                ys = y if isinstance(y, list) else [y] * len(out)
                for xi, yi, o in zip(x, ys, out):  # noqa: B905 - equal lengths
                    out_fn(xi, yi, out=o)
        else:
            torch._foreach_copy_(out, x)
            if unary:
                inplace_fn(out)
            else:
                inplace_fn(out, get[1](slots, registers))

    return out_of_place


class Programs:
    """The traced programs of one torch optimizer, by (core optimizer, step values' fields
    and switches, moments); several per key when the rule has guards."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, list[Program] | None] = {}

    def get(self, configured: Any, hp: Any, names: tuple[str, ...]) -> tuple | None:
        """``(program, registers)`` for this step, tracing the rule if no program's guards
        hold; None if the rule cannot be traced (then run it directly)."""
        fixed = tuple(v for v in hp if isinstance(v, bool) or not isinstance(v, numbers.Number))
        key = (configured, type(hp), fixed, names)
        programs = self.by_key.get(key, [])
        if programs is None:
            return None
        for program in programs:
            registers = program.scalars(hp)
            if registers is not None:
                return program, registers
        try:
            program = trace(configured, hp, names)
        except TraceError:
            self.by_key[key] = None
            return None
        registers = program.scalars(hp)
        if registers is None:  # a guard that does not hold for its own values: not traceable
            self.by_key[key] = None
            return None
        self.by_key[key] = [*programs, program]
        return program, registers
