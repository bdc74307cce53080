"""What a PyTorch workload is and how one trial trains it.

A :class:`Workload` builds its data and model for a size ("small": seconds on a 2-core CPU;
"full": a GPU) and says how it is judged: a validation metric, higher or lower better, a
step budget and how often to evaluate. :func:`train` runs one trial through
``steplab.torch.make`` and returns its validation curve against steps and against wall
seconds of training (evaluation excluded), so the scoring can read the time to a target
off it. The same seed gives the same curve on the same machine (one thread, seeded
initialization and batch order).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SIZES = ("small", "full")
# Where each size trains: the small sizes on the CPU (one thread), the full ones on a GPU.
DEVICES = {"small": "cpu", "full": "cuda"}


def require_device(size: str) -> None:
    """Refuse, in one line, a size whose device this machine lacks (no CUDA for "full")."""
    if DEVICES.get(size) != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            f"size {size!r} trains on a CUDA GPU and torch sees none here "
            "(torch.cuda.is_available() is False); run it on a machine with one, or use "
            "the small size on this CPU (--suite small)"
        )


@dataclass(frozen=True)
class Budget:
    """How long a trial of one size trains: steps, batch size, evaluations every k steps."""

    steps: int
    batch_size: int
    eval_every: int


@dataclass
class Task:
    """A built workload: the model, training and validation tensors, the loss, and the
    validation metric ``evaluate(model) -> float`` (run under ``torch.no_grad``)."""

    model: Any
    x_train: Any
    y_train: Any
    loss: Callable[[Any, Any, Any], Any]  # (model, x, y) -> scalar tensor
    evaluate: Callable[[Any], float]


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: ``build(size, seed)`` gives a :class:`Task`; the budget and
    the validation metric (``metric``, ``maximize``) say how it is run and judged."""

    name: str
    description: str
    metric: str
    maximize: bool
    budgets: dict[str, Budget]
    build: Callable[[str, int], Task] = field(repr=False)
    needs: str = "steplab[torch,data]"

    def budget(self, size: str) -> Budget:
        if size not in self.budgets:
            raise ValueError(f"size must be one of {', '.join(self.budgets)}, got {size!r}")
        return self.budgets[size]


def train(
    workload: Workload,
    size: str,
    optimizer: str,
    hyperparameters: dict,
    seed: int,
    *,
    steps: int | None = None,
) -> dict:
    """Train one trial; returns its record: the validation ``values`` at ``steps`` and at
    ``seconds`` of training, the training loss there, and ``status`` ("ok", or "diverged"
    when the training loss became NaN/inf — the curve then stops)."""
    import torch

    import steplab.torch as st

    budget = workload.budget(size)
    total = budget.steps if steps is None else steps
    require_device(size)
    device = DEVICES[size]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic and polite on a shared machine
    # Off the CPU, build the data and the model on the device (a default-device context;
    # none on the CPU, where it would only add overhead to every call).
    placed = torch.device(device) if device != "cpu" else contextlib.nullcontext()
    try:
        torch.manual_seed(seed)
        with placed:
            task = workload.build(size, seed)
        model = task.model
        opt = st.make(optimizer, model.parameters(), **hyperparameters)
        order = torch.Generator().manual_seed(seed)
        n = task.x_train.shape[0]
        record: dict[str, Any] = {
            "steps": [0],
            "seconds": [0.0],
            "values": [_evaluate(task, model)],
            "train_loss": [math.nan],
            "status": "ok",
        }
        elapsed = 0.0
        running = 0.0
        for step in range(1, total + 1):
            start = time.perf_counter()
            index = torch.randint(0, n, (budget.batch_size,), generator=order).to(device)
            model.train()
            opt.zero_grad()
            loss = task.loss(model, task.x_train[index], task.y_train[index])
            loss.backward()
            opt.step()
            value = float(loss.detach())
            elapsed += time.perf_counter() - start
            running += value
            if not math.isfinite(value):
                record["status"] = "diverged"
                break
            if step % budget.eval_every == 0 or step == total:
                since = step - record["steps"][-1]
                record["steps"].append(step)
                record["seconds"].append(elapsed)
                record["values"].append(_evaluate(task, model))
                record["train_loss"].append(running / since)
                running = 0.0
        return record
    finally:
        torch.set_num_threads(threads)


def _evaluate(task: Task, model) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        value = float(task.evaluate(model))
    return value if math.isfinite(value) else math.nan


def classifier(model, x, y, x_val, y_val) -> Task:
    """A classification task (every classifier of the benchmark): trained on the
    cross-entropy of ``model(x)`` against labels ``y``, judged by the accuracy on
    ``(x_val, y_val)``."""
    import torch.nn.functional as F

    return Task(
        model,
        x,
        y,
        loss=lambda m, xb, yb: F.cross_entropy(m(xb), yb),
        evaluate=lambda m: accuracy(m, x_val, y_val),
    )


def accuracy(model, x, y, batch: int = 1000) -> float:
    """Fraction of ``x`` classified as ``y`` (in batches, under no_grad)."""
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += int((model(x[i : i + batch]).argmax(dim=-1) == y[i : i + batch]).sum())
    return correct / x.shape[0] if x.shape[0] else math.nan
