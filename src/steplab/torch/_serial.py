"""The multi-tensor step of CPU float32/float64 tensors as one compiled call (numba).

The traced program (:mod:`steplab.torch._traced`) runs a rule as one ``_foreach`` kernel per
operation, and keeps the NumPy core's rounding: ``θ + (−α·ĝ)`` is two kernels and two
passes, where torch.optim's SGD runs one fused multiply-add (one rounding, other bits). When
numba is installed (``steplab[fast]``), the same rule compiled per element by
:mod:`steplab.fast` runs every tensor of a bucket in one pass and one call, with the core's
bits (numba does not contract ``a + s·b``): :class:`SerialTable` hands it the tensors'
addresses (zero copy). It runs on the calling thread, never numba's thread pool, so it
cannot fight torch's OpenMP threads; so with more than one torch thread it takes only the
small tensors (which torch steps on one thread too), and leaves large ones to the
``_foreach`` kernels that torch spreads over its threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: A bucket takes the compiled route from this many elements on (below, compiling the
#: rule, about a second once per process, costs more than the step saves).
SERIAL_MIN_SIZE = 1 << 16
#: With more than one torch thread, only tensors below this size take it.
SERIAL_SMALL = 1 << 14

_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_DATA_PTR = torch.Tensor.data_ptr
_CONTIGUOUS = torch.Tensor.is_contiguous


def _serial_module() -> Any:
    """``steplab.fast.serial`` when numba is there, else None (imported on first use)."""
    try:
        import steplab.fast as fast
    except ImportError:  # pragma: no cover - steplab.fast imports without numba
        return None
    if not fast.available():
        return None
    from steplab.fast import serial

    return serial


class SerialTable:
    """The tensors of a planned bucket that one compiled call steps: θ, ĝ and the moments
    of each as one row of addresses. θ's and the moments' addresses are fixed for the
    plan (it is made again when a parameter's storage or a moment tensor changes); ĝ's
    are read at each step."""

    @classmethod
    def of(cls, configured: Any, params: list[torch.Tensor], held: list[tuple[str, list]],
           maximize: bool) -> SerialTable | None:  # fmt: skip
        """The table for the eligible tensors of a bucket, or None (see the module doc):
        CPU, float32/float64, ``maximize`` off, at least :data:`SERIAL_MIN_SIZE` elements,
        and numba available."""
        first = params[0]
        if maximize or first.device.type != "cpu" or first.dtype not in _DTYPES:
            return None
        if sum(map(torch.Tensor.numel, params)) < SERIAL_MIN_SIZE:
            return None
        one_thread = torch.get_num_threads() == 1
        indices = [
            i
            for i, p in enumerate(params)
            if (one_thread or p.numel() < SERIAL_SMALL)
            and p.is_contiguous()
            and all(m[i].is_contiguous() for _, m in held)
        ]
        if not indices:
            return None
        serial = _serial_module()
        if serial is None:
            return None
        return cls(serial, configured, params, held, indices)

    def __init__(self, serial: Any, configured: Any, params: list[torch.Tensor],
                 held: list[tuple[str, list]], indices: list[int]) -> None:  # fmt: skip
        self.serial = serial
        self.indices = indices
        self.every = indices == list(range(len(params)))  # the whole bucket
        by_name = dict(held)
        self.moments = tuple(n for n in configured.moment_names() if n in by_name)
        columns = [[params[i] for i in indices], [], *([by_name[n][i] for i in indices]
                                                      for n in self.moments)]  # fmt: skip
        self.addresses = np.zeros((len(indices), len(columns)), dtype=np.int64)
        for c, tensors in enumerate(columns):
            if tensors:
                self.addresses[:, c] = list(map(_DATA_PTR, tensors))
        self.sizes = np.array([params[i].numel() for i in indices], dtype=np.int64)
        self.dtype = _DTYPES[params[0].dtype]
        self.broken = False

    def step(self, configured: Any, step_values: Any, grads: list[torch.Tensor]) -> bool:
        """Step the table's tensors with ``grads`` (the bucket's, in its order); False,
        with nothing written, where this step cannot run here (a non-contiguous gradient,
        a rule numba cannot compile): the caller steps them its own way."""
        if self.broken:
            return False
        g = grads if self.every else [grads[i] for i in self.indices]
        if not all(map(_CONTIGUOUS, g)):
            return False
        self.addresses[:, 1] = np.fromiter(map(_DATA_PTR, g), np.int64, len(g))
        try:
            self.serial.step_table(
                configured, step_values, self.addresses, self.sizes, self.dtype, self.moments
            )
        except self.serial.CompileError:
            self.broken = True
            return False
        return True


# -- one read of every gradient, on the calling thread ------------------------------------

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _tables(tensors: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray, Any]] | None:
    """``tensors`` as address tables, one per dtype, for :mod:`steplab.fast.serial`'s
    reductions; None where one is not a plain, contiguous CPU float32/float64 tensor, or
    where they hold fewer than :data:`SERIAL_MIN_SIZE` elements in all (no compiling for
    that)."""
    if sum(map(torch.Tensor.numel, tensors)) < SERIAL_MIN_SIZE:
        return None
    by_dtype: dict[Any, list[torch.Tensor]] = {}
    for t in tensors:
        if type(t) not in _PLAIN or t.device.type != "cpu" or not t.is_contiguous():
            return None
        dtype = _DTYPES.get(t.dtype)
        if dtype is None:
            return None
        by_dtype.setdefault(dtype, []).append(t)
    return [
        (
            np.fromiter(map(_DATA_PTR, group), np.int64, len(group)),
            np.fromiter(map(torch.Tensor.numel, group), np.int64, len(group)),
            dtype,
        )
        for dtype, group in by_dtype.items()
    ]


def sum_of_squares(tensors: list[torch.Tensor]) -> float | None:
    """Σx² over every element of ``tensors``, summed in float64 in one read of each on the
    calling thread; None where the compiled reduction cannot take them (see :func:`_tables`;
    numba missing): the caller sums them its own way."""
    tables = _tables(tensors)
    serial = _serial_module() if tables else None
    if serial is None or tables is None:
        return None
    return sum(serial.sum_of_squares(*table) for table in tables)


def all_finite(tensors: list[torch.Tensor]) -> bool | None:
    """Whether no element of ``tensors`` is NaN or ±inf, in one read of each on the calling
    thread; None where the compiled check cannot take them (as :func:`sum_of_squares`)."""
    tables = _tables(tensors)
    serial = _serial_module() if tables else None
    if serial is None or tables is None:
        return None
    return all(serial.all_finite(*table) for table in tables)
