"""The single-pass step (``fused=True``): the core's rule compiled by ``torch.compile``.

The rule of ``steplab.optim`` is element-wise, so compiling it over a tensor gives one kernel
that reads θ, ĝ and the moments once and writes the new θ and moments once — the "fused"
step torch writes by hand for a few optimizers, here for every optimizer and option. The
compiled function is the rule itself (through the core's ``apply_rule``, which runs the
optimizer's element-wise pieces around it: weight decay, a fused chain's clipping), with
the per-step numbers (α, ρ, 1/(1 − ρᵗ), …) computed beforehand in Python and handed in as
tensors: their values are inputs, not constants, so one compilation serves
every value of the hyperparameters and of t.

**One compilation** per optimizer class, switch setting (``amsgrad``, ``centered``, a
switched-off weight decay), moments, dtype, device and CPU thread count serves every tensor
size (``dynamic=True``). It is made on first use from small example tensors, so the first
parameter's size is never baked in.

**What runs per call.** From dynamo's graph of the rule, :func:`_compile_split` takes out
the part that depends on the per-step numbers alone (1 − ρ, −α, …): it is evaluated once per
step in Python floats (the same IEEE double arithmetic), and its results reach the kernel
in one small tensor per dtype, already rounded to the working dtype wherever the operation
that reads them computes in that dtype anyway (exactly as torch's type promotion would
round them inside the kernel). The C++ loop then broadcasts a few ready numbers instead of
reloading, converting and recombining float64 scalars every iteration (its vector stores
may alias them, so the compiler cannot hoist those loads). The compiled graph is called
directly, once per tensor — not through ``torch.compile``'s frame evaluation and guards,
which cost tens of microseconds per call: the example inputs already fix everything the
guards would check (1-D contiguous tensors of these dtypes on this device), and inductor's
own size and stride checks still run. Where inductor's entry point can be found it is
called without the AOT-autograd wrappers too (the parameters' version counters are bumped
here instead; :mod:`steplab.torch._inductor` holds that reach into inductor's internals,
fenced to the torch version it was written for);
otherwise, or if the graph's inputs cannot be matched to ours, the public callables are
used, down to the ``torch.compile``'d function itself, guards and all.

**Tensors.** Tensors of at least ``PACK_BELOW`` elements are stepped one call each, in
place; smaller ones are copied into flat buffers kept from step to step (a call costs more
than their data), stepped by one call, and copied back. bfloat16/float16 parameters: the
kernel reads them, computes in float32 (their state's dtype) and rounds the new θ into the
parameter once, in the same pass.
"""

from __future__ import annotations

import collections
import math
import numbers
import operator
import types
from typing import Any, NamedTuple

import torch

from steplab.torch import _inductor as inductor
from steplab.torch._tensorlist import TORCH_OPS

#: Tensors with fewer elements than this are packed into one flat call. A call of the
#: compiled kernel costs ~5 µs of Python; packing a tensor copies it in and out, which
#: costs as much at about 4000 float32 elements (measured on the 2-core CPU box:
#: benchmarks/bench_torch_optim.py --sets many-small runs 1.4× faster than with 1 << 16).
PACK_BELOW = 1 << 12

#: Size of the example tensors a kernel is compiled with: not 0 or 1 (which torch.compile
#: specialises), and odd, so that the kernel's vector loop and its tail are both traced.
EXAMPLE_SIZE = 1031

#: inductor options for the kernel: its defaults. (Contracting a·b + c into fused
#: multiply-adds, ``cpp.enable_floating_point_contract_flag``, was no faster once the
#: scalars are precomputed, and moves centered RMSProp's state by ~1e-11 relative.)
INDUCTOR_OPTIONS: dict[str, Any] = {}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------
# The compiled step of one key
# --------------------------------------------------------------------------------------


def _step_source(runner, hp_type, static, numbers_, names, state_type, work):
    """The function ``torch.compile`` traces: ``(θ, ĝ, *moments, *numbers)`` -> None, the
    rule applied in place (θ and ĝ in the parameter's dtype, the moments in ``work``)."""
    count = len(names)

    def step(theta, g, *rest):
        moments = dict(zip(names, rest[:count], strict=True))
        hp = hp_type(**static, **dict(zip(numbers_, rest[count:], strict=True)))
        state = state_type(**{name: moments.get(name) for name in state_type._fields})
        new_theta, new_moments = runner.apply_rule(TORCH_OPS, hp, theta.to(work), g.to(work), state)
        theta.copy_(new_theta)
        for name, tensor in moments.items():
            tensor.copy_(new_moments[name])

    return step


class _Kernel:
    """The compiled step of one key (core class, switches, moments, dtypes, device,
    threads): :meth:`scalars` once per step, then :meth:`run` on the tensors."""

    def __init__(self, key: tuple, runner: Any, hp: Any, names: tuple, dtype, work, device):
        fields = hp._asdict()
        self.numbers = tuple(k for k, v in fields.items() if _is_number(v))
        self.numbers_of = operator.attrgetter(*self.numbers) if self.numbers else tuple
        static = {k: v for k, v in fields.items() if k not in self.numbers}
        cls = type(runner)
        state_type = collections.namedtuple("MomentState", cls.moment_names())  # type: ignore[misc]
        source = _step_source(runner, type(hp), static, self.numbers, names, state_type, work)
        # torch.compile keeps compiled variants per code object: each key gets its own copy
        # of the code, so that many optimizers and options never crowd one code object.
        name = "".join(c if c.isalnum() else "_" for c in "_".join(["_step", *map(str, key)]))
        code = source.__code__.replace(co_name=name)
        function = types.FunctionType(
            code, source.__globals__, name, source.__defaults__, source.__closure__
        )
        examples = [
            torch.zeros(EXAMPLE_SIZE, dtype=dtype, device=device),
            torch.zeros(EXAMPLE_SIZE, dtype=dtype, device=device),
            *(torch.ones(EXAMPLE_SIZE, dtype=work, device=device) for _ in names),
            *_scalars([0.5] * len(self.numbers), device),
        ]
        built: list = []

        def backend(gm, example_inputs):
            if not built:
                built.append(_compile_split(gm, list(example_inputs), examples, len(names), work))
            return built[0].for_dynamo

        self.traced = torch.compile(function, backend=backend, dynamic=True, fullgraph=True)
        with torch.no_grad():
            self.traced(*examples)
        self.step = built[0] if built and isinstance(built[0], _CompiledStep) else None

    def numbers_in(self, hp: Any) -> tuple:
        """The step's numbers (the kernel's inputs that are not tensors) from ``hp``."""
        return self.numbers_of(hp) if len(self.numbers) > 1 else (self.numbers_of(hp),)

    def scalars(self, hp: Any, device: torch.device) -> list:
        """This step's numbers as the kernel's scalar inputs (computed once per step)."""
        values = self.numbers_in(hp)
        if self.step is None:
            return _scalars([float(v) for v in values], device)
        return self.step.kernel_scalars(values, device)

    def run(self, calls: list, scalars: list, may_be_tiny: bool = True) -> None:
        """Step each ``(n, θ, ĝ, *moments)`` of ``calls`` in place (1-D contiguous tensors of
        ``n`` elements); ``scalars`` from :meth:`scalars`; ``may_be_tiny=False``: every n is
        at least 2. The arguments are assembled before the first kernel runs, so that the
        kernels follow each other closely."""
        padded: list[tuple[Any, Any]] = []
        for k, tensors in enumerate(calls if may_be_tiny else ()):
            if tensors[0] < 2:  # torch.compile specialises sizes 0 and 1: give it 2 elements
                if not padded:
                    calls = list(calls)
                pair = (2, *(torch.cat([x, x]) for x in tensors[1:]))
                padded.append((tensors, pair))
                calls[k] = pair if tensors[0] else None
        if padded:
            calls = [c for c in calls if c is not None]
        step = self.step
        if step is None:  # the dynamo-wrapped function: guards and all
            for tensors in calls:
                self.traced(*tensors[1:], *scalars)
        else:
            build = step.arguments
            arguments = [build(tensors, scalars) for tensors in calls]
            call = step.call
            for args in arguments:
                call(args)
            if step.bumps_versions:  # as any in-place update of the parameters does
                torch.autograd.graph.increment_version([tensors[1] for tensors in calls])
        for tensors, pair in padded:
            if tensors[0]:
                for x, y in zip(tensors[1:2] + tensors[3:], pair[1:2] + pair[3:], strict=True):
                    x.copy_(y[:1])


class _CompiledStep(NamedTuple):
    """The compiled kernel of a traced step and how to call it directly.

    ``call`` takes a list, which ``arguments(call, scalars)`` makes from a call of
    :meth:`_Kernel.run`: the graph's tensor inputs in ``order`` (indices into
    (θ, ĝ, *moments); -1: their common size), then the kernel's scalars, one 1-D tensor per
    dtype. Those are computed from the step's numbers by ``function`` on Python floats, or
    by ``scalar_graph`` on 0-d float64 tensors (its inputs: the numbers in
    ``scalar_order``) where the function cannot (an operation it does not know, a division
    by zero), and stored in one tensor per dtype: ``dtypes`` holds each value's,
    ``buffer_dtypes`` the distinct ones, in the order of the kernel's inputs.
    ``bumps_versions``: ``call`` is inductor's entry point, without the AOT-autograd
    wrapper that bumps the version counters of the tensors it updates, so
    :meth:`_Kernel.run` bumps the parameters' (nothing differentiates through the
    moments). ``for_dynamo`` is the whole computation behind torch.compile's calling
    convention.
    """

    call: Any
    bumps_versions: bool
    arguments: Any
    order: list
    scalar_graph: Any
    scalar_order: list
    function: Any
    dtypes: list
    buffer_dtypes: list
    for_dynamo: Any

    def scalar_values(self, values: Any) -> list:
        """The values the kernel reads (Python numbers, in ``dtypes``' order) from the
        step's numbers ``values``."""
        if self.function is not None:
            try:
                return self.function(*values)
            except (ArithmeticError, ValueError):  # torch gives inf or nan: let it
                pass
        inputs = [float(values[i]) for i in self.scalar_order]
        tensors = self.scalar_graph(*_scalars(inputs, torch.device("cpu")))
        return [value.item() for value in tensors]

    def kernel_scalars(self, values: Any, device: torch.device) -> list:
        """The kernel's scalar inputs from the step's numbers ``values``: new tensors."""
        return list(_as_buffers(self.scalar_values(values), self.dtypes, device).values())


class _Whole(NamedTuple):
    """The graph compiled whole (it is not of the form :func:`_compile_split` expects)."""

    for_dynamo: Any


#: Operations whose result is computed in the dtype of their (1-D) result whatever the dtype
#: of a 0-d operand: a float64 scalar that only such operations read may be rounded to
#: that dtype beforehand, with the same result.
_ROUNDING_SAFE = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.neg,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.maximum,
    torch.minimum,
    torch.clamp_min,
    torch.clamp_max,
    torch.where,
}


def _compile_split(gm, inputs: list, examples: list, moments: int, work) -> Any:
    """Compile dynamo's graph of the step with its scalar-only part taken out.

    ``inputs`` are the graph's example inputs (the tensors of ``examples``, and sizes);
    ``examples`` are (θ, ĝ, *moments, *numbers), ``moments`` of them moments. The nodes
    that depend on the 0-d number inputs alone become a graph of their own, evaluated
    once per step (see the module docstring); the kernel graph reads its results from one
    1-D input per dtype. Returns a :class:`_CompiledStep`, or, if the graph is not of the
    expected form, the whole graph compiled as it is (:class:`_Whole`).
    """
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    where = [_index_of(value, examples) for value in inputs]
    if len(placeholders) != len(inputs) or any(i is None for i in where):
        return _Whole(inductor.compile_graph(gm, inputs, INDUCTOR_OPTIONS))
    first_number = 2 + moments
    positions = dict(zip(placeholders, where, strict=True))
    number_inputs = [n for n in placeholders if (positions[n] or 0) >= first_number]
    scalar = set(number_inputs)
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method") and node.all_input_nodes:
            if all(x in scalar for x in node.all_input_nodes):
                scalar.add(node)
    boundary = []  # (scalar node the kernel reads, whether it may be rounded to ``work``)
    for node in gm.graph.nodes:
        if node not in scalar:
            continue
        value = node.meta.get("example_value")
        users = [u for u in node.users if u not in scalar]
        if not (torch.is_tensor(value) and value.dim() == 0) or any(
            u.op == "output" for u in users
        ):
            return _Whole(inductor.compile_graph(gm, inputs, INDUCTOR_OPTIONS))
        if users:
            rounded = value.is_floating_point() and all(_computes_in(u, work) for u in users)
            boundary.append((node, rounded))
    # The scalar graph: the step's numbers -> the values the kernel reads.
    scalar_graph = torch.fx.Graph()
    env: dict = {node: scalar_graph.placeholder(node.name) for node in number_inputs}
    for node in gm.graph.nodes:
        if node in scalar and node.op != "placeholder":
            env[node] = scalar_graph.node_copy(node, lambda x: env[x])
    outputs = []
    for node, rounded in boundary:
        value = env[node]
        outputs.append(scalar_graph.call_method("to", (value, work)) if rounded else value)
    scalar_graph.output(tuple(outputs))
    scalar_module = torch.fx.GraphModule(gm, scalar_graph)
    scalar_order = [positions[n] - first_number for n in number_inputs]
    function = _as_function(
        scalar_graph,
        [env[node] for node in number_inputs],
        scalar_order,
        len(examples) - first_number,
    )
    example_values = scalar_module(*[inputs[placeholders.index(n)] for n in number_inputs])
    dtypes = [value.dtype for value in example_values]
    device = examples[0].device
    buffers = _as_buffers([v.item() for v in example_values], dtypes, device)
    # The kernel graph: the tensors (and their size), then one buffer of scalars per dtype.
    kernel_graph = torch.fx.Graph()
    env = {}
    kept = [i for i, node in enumerate(placeholders) if node not in scalar]
    for i in kept:
        env[placeholders[i]] = kernel_graph.node_copy(placeholders[i])
    buffer_inputs = {
        dtype: kernel_graph.placeholder(f"scalars_{k}") for k, dtype in enumerate(buffers)
    }
    for (node, _), dtype, slot in zip(boundary, dtypes, _slots(dtypes), strict=True):
        env[node] = kernel_graph.call_function(operator.getitem, (buffer_inputs[dtype], slot))
    for node in gm.graph.nodes:
        if node not in scalar and node.op != "placeholder":
            env[node] = kernel_graph.node_copy(node, lambda x: env[x])
    kernel_module = torch.fx.GraphModule(gm, kernel_graph)
    kernel_inputs = [inputs[i] for i in kept] + list(buffers.values())
    kernel = inductor.compile_graph(kernel_module, kernel_inputs, INDUCTOR_OPTIONS)
    order = [where[i] for i in kept]
    number_positions = [placeholders.index(n) for n in number_inputs]

    def for_dynamo(*args):
        values = scalar_module(*[args[i] for i in number_positions])
        scalars = _as_buffers([v.item() for v in values], dtypes, device)
        return kernel(*[args[i] for i in kept], *scalars.values())

    mutated = [k for k, i in enumerate(order) if i == 0 or (i is not None and i >= 2)]
    direct = inductor.direct_entry(kernel, kernel_inputs, mutated, EXAMPLE_SIZE)
    call = direct if direct is not None else (lambda args: kernel(*args))
    return _CompiledStep(
        call,
        direct is not None,
        _argument_builder(order),
        order,
        scalar_module,
        scalar_order,
        function,
        dtypes,
        list(dict.fromkeys(dtypes)),
        for_dynamo,
    )


def _argument_builder(order: list) -> Any:
    """``build(call, scalars)``: the list ``call`` takes, from ``(n, θ, ĝ, *moments)`` and
    the scalar buffers (straight-line code: it runs once per tensor)."""
    items = ", ".join(f"t[{i + 1}]" for i in order)  # -1, the size, is t[0]
    namespace: dict[str, Any] = {}
    source = f"def build(t, s):\n    return [{items}, *s]"
    exec(compile(source, "<steplab arguments>", "exec"), namespace)  # noqa: S102 — our text
    return namespace["build"]


def _computes_in(node, work) -> bool:
    """Whether ``node`` is an operation of :data:`_ROUNDING_SAFE` with a 1-D result in
    ``work``."""
    value = node.meta.get("example_value")
    return (
        node.op == "call_function"
        and node.target in _ROUNDING_SAFE
        and torch.is_tensor(value)
        and value.dtype == work
        and value.dim() >= 1
    )


def _index_of(value: Any, examples: list) -> int | None:
    """Which example ``value`` is (-1: a size); None if none."""
    if isinstance(value, (int, torch.SymInt)):
        return -1  # only sizes are symbolic: every tensor is 1-D of one size
    return next((i for i, x in enumerate(examples) if x is value), None)


# --------------------------------------------------------------------------------------
# The per-step numbers, evaluated on Python floats
# --------------------------------------------------------------------------------------


def _scalars(values: list[float], device: torch.device) -> list[torch.Tensor]:
    """The numbers as 0-d float64 tensors on ``device`` (views of one buffer: one copy)."""
    if not values:
        return []
    return list(torch.tensor(values, dtype=torch.float64).to(device, non_blocking=True).unbind())


def _slots(dtypes: list) -> list[int]:
    """Each value's index in the buffer of its dtype."""
    seen: dict = {}
    slots = []
    for dtype in dtypes:
        slots.append(seen.get(dtype, 0))
        seen[dtype] = slots[-1] + 1
    return slots


def _as_buffers(values: list, dtypes: list, device: torch.device) -> dict:
    """dtype -> a 1-D tensor on ``device`` of the ``values`` of that dtype, in order."""
    buffers = {}
    for dtype in dict.fromkeys(dtypes):
        chosen = [v for v, d in zip(values, dtypes, strict=True) if d == dtype]
        buffers[dtype] = torch.tensor(chosen, dtype=dtype).to(device, non_blocking=True)
    return buffers


def _float_sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan  # torch.sqrt's nan for x < 0 (and nan)


#: The scalar operations :func:`_as_function` writes as Python expressions on floats: each
#: is the IEEE double operation torch does on 0-d float64 tensors (the same result).
_FLOAT_EXPRESSIONS: dict[Any, str] = {
    operator.add: "({} + {})",
    operator.sub: "({} - {})",
    operator.mul: "({} * {})",
    operator.truediv: "({} / {})",
    operator.neg: "(-{})",
    operator.gt: "({} > {})",
    operator.lt: "({} < {})",
    operator.ge: "({} >= {})",
    operator.le: "({} <= {})",
    torch.sqrt: "_sqrt({})",
}


def _as_function(graph: torch.fx.Graph, inputs: list, order: list[int], count: int) -> Any:
    """The scalar graph as one Python function of the step's ``count`` numbers (input k of
    the graph is number ``order[k]``), straight-line code on floats that returns the list
    of the graph's outputs; None if an operation is not in :data:`_FLOAT_EXPRESSIONS` (the
    graph then runs on tensors). Python raises where torch would give inf or nan (a
    division by zero): the caller then runs the graph."""
    names = {node: f"n{order[k]}" for k, node in enumerate(inputs)}
    lines = []
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            lines.append("    return [" + ", ".join(names[x] for x in node.args[0]) + "]")
            continue
        if node.kwargs:
            return None
        if node.op == "call_method" and node.target == "to":
            names[node] = names[node.args[0]]  # the rounding is the dtype of the buffer
            continue
        if node.op != "call_function" or node.target not in _FLOAT_EXPRESSIONS:
            return None
        args = []
        for arg in node.args:
            if isinstance(arg, torch.fx.Node):
                args.append(names[arg])
            elif isinstance(arg, (int, float)) and math.isfinite(arg):  # bool included
                args.append(repr(arg))
            else:
                return None
        names[node] = f"v{len(lines)}"
        lines.append(f"    {names[node]} = " + _FLOAT_EXPRESSIONS[node.target].format(*args))
    source = f"def scalars({', '.join(f'n{k}' for k in range(count))}):\n" + "\n".join(lines)
    namespace: dict[str, Any] = {"_sqrt": _float_sqrt}
    exec(compile(source, "<steplab scalars>", "exec"), namespace)  # noqa: S102 — our own text
    return namespace["scalars"]


# --------------------------------------------------------------------------------------
# Stepping a bucket
# --------------------------------------------------------------------------------------

_kernels: dict[tuple, _Kernel] = {}


def _kernel(runner: Any, hp: Any, names: tuple, dtype, work, device) -> _Kernel:
    switches = tuple(v if isinstance(v, bool) or v is None else "x" for v in hp)
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    key = (type(runner).__name__, *switches, *names, dtype, work, device, threads)
    kernel = _kernels.get(key)
    if kernel is None:
        kernel = _kernels[key] = _Kernel(key, runner, hp, names, dtype, work, device)
    return kernel


class SinglePass:
    """The single-pass step of one bucket: parameters of one device and dtype with their
    moments (``moments``: name -> one tensor per parameter, in ``work`` dtype), prepared
    once and stepped by :meth:`step` for as long as these tensors are the bucket's.

    ``runner`` is an instance of the core class (its ``apply_rule`` runs the rule; the
    values all come from the step's hyperparameters), ``hp`` a step's hyperparameters
    (their switches select the kernel; the caller keeps them fixed). θ and ĝ are viewed
    afresh at each step (a parameter's data may be replaced, its gradient usually is);
    the moments must stay the same tensors (the caller checks).
    """

    def __init__(self, runner: Any, hp: Any, params: list, moments: dict[str, list], work):
        self.names = tuple(moments)
        self.moments = [moments[k] for k in self.names]
        self.device = params[0].device
        self.kernel = _kernel(runner, hp, self.names, params[0].dtype, work, self.device)
        self.scalar_buffers: list | None = None
        # inductor's entry point runs no autograd: a parameter's own view will do
        self.direct = self.kernel.step is not None and self.kernel.step.bumps_versions
        # Large tensors: one call each, with their size and their moments' flat views kept.
        self.large: list[tuple[int, int, list | None]] = []
        self.small: list[int] = []
        for i, p in enumerate(params):
            n = p.numel()
            if n < PACK_BELOW:
                self.small.append(i)
            else:
                ms = [m[i] for m in self.moments]
                flat = [m.view(-1) for m in ms] if all(m.is_contiguous() for m in ms) else None
                self.large.append((i, n, flat))
        # Small tensors: flat buffers for θ, ĝ and each moment, kept from step to step, and
        # their views shaped like each tensor (so that one _foreach_copy_ fills or empties a
        # buffer, whatever the number of tensors).
        sizes = [params[i].numel() for i in self.small]
        self.packed_size = sum(sizes)
        self.packed: list[torch.Tensor] = []
        self.packed_views: list[list[torch.Tensor]] = []
        if self.small:
            shapes = [params[i].shape for i in self.small]
            dtypes = [params[0].dtype, params[0].dtype, *(work for _ in self.moments)]
            for dtype in dtypes:
                buffer = torch.empty(self.packed_size, dtype=dtype, device=self.device)
                parts = torch.split(buffer, sizes)
                self.packed.append(buffer)
                self.packed_views.append(
                    [x.view(shape) for x, shape in zip(parts, shapes, strict=True)]
                )

    def _scalars(self, hp: Any) -> list:
        """The kernel's scalar inputs for this step. On the CPU they are written into
        buffers kept by the bucket (through NumPy views: no tensor is made per step)."""
        kernel = self.kernel
        step = kernel.step
        if step is None or self.device.type != "cpu":
            return kernel.scalars(hp, self.device)
        values = step.scalar_values(kernel.numbers_in(hp))
        buffers = self.scalar_buffers
        if buffers is None:
            buffers = self.scalar_buffers = []
            for dtype in step.buffer_dtypes:
                where = [i for i, d in enumerate(step.dtypes) if d == dtype]
                tensor = torch.empty(len(where), dtype=dtype)
                buffers.append((tensor, tensor.numpy(), where, len(where) == len(values)))
        for _, view, where, every in buffers:
            view[:] = values if every else [values[i] for i in where]
        return [tensor for tensor, *_ in buffers]

    def step(self, hp: Any, params: list, grads: list) -> None:
        """One step of the parameters ``params`` (the tensors the bucket was made with, or
        their current data: the same shapes; under ``torch.no_grad``) with the gradients
        ``grads`` (ĝ: ``maximize`` applied) and the step's hyperparameters ``hp``."""
        kernel = self.kernel
        scalars = self._scalars(hp)
        moments = self.moments
        calls = []
        copies = []
        direct = self.direct
        for i, n, flat in self.large:
            p, g = params[i], grads[i]
            if flat is not None and p.is_contiguous() and g.is_contiguous():
                calls.append((n, (p if direct else p.detach()).view(-1), g.view(-1), *flat))
            else:  # rare: step contiguous copies and copy back
                tensors = [p, g, *(m[i] for m in moments)]
                clones = [x.reshape(-1).clone() for x in tensors]
                calls.append((n, *clones))
                copies.append((tensors, clones))
        small = self.small
        if small:  # one flat call for all small tensors, through the kept buffers
            sources: list[list[torch.Tensor]]
            if len(small) == len(params):
                sources = [params, grads, *moments]
            else:
                sources = [[x[i] for i in small] for x in (params, grads, *moments)]
            for packed_views, source in zip(self.packed_views, sources, strict=True):
                torch._foreach_copy_(packed_views, source)
            calls.append((self.packed_size, *self.packed))
        kernel.run(calls, scalars, may_be_tiny=bool(small) and self.packed_size < 2)
        for tensors, clones in copies:  # θ and the moments (ĝ was only read)
            for x, c in zip(tensors[:1] + tensors[2:], clones[:1] + clones[2:], strict=True):
                x.copy_(c.view_as(x))
        if small:  # θ and the moments back
            kept = self.packed_views
            for target, packed_views in zip(
                sources[:1] + sources[2:], kept[:1] + kept[2:], strict=True
            ):
                torch._foreach_copy_(target, packed_views)
