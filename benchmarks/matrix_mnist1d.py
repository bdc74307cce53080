"""MNIST-1D MLP and CNN accuracy with Muon, SOAP, Shampoo and Adafactor against Adam.

    PYTHONPATH=src python benchmarks/matrix_mnist1d.py [--seeds 3] [--steps 400] [--out FILE]

The two MNIST-1D workloads of ``steplab.benchmark.workloads`` (built through their public
``get(name).build("small", seed)``: data, model, loss, validation accuracy), trained for the
small size's budget (400 steps of batches of 100) in float32 on one CPU thread. Per optimizer
a step-size grid of four values around its default (a best at the grid's
edge is flagged), the same seeds for every optimizer; the
table gives, for the step size with the best mean, the final validation accuracy as mean ±
standard deviation over the seeds (the same validation set picks the step size and reports
it: optimistic alike for every optimizer).

Who trains what:
- ``adam``: torch.optim.Adam on every parameter.
- ``adafactor``: steplab's Adafactor (the paper's defaults) on every parameter: vectors keep
  a full second moment, matrices are factored.
- ``muon``, ``shampoo``, ``soap``: steplab's optimizer on the hidden weight matrices, Adam
  (lr 1e-3) on biases and the output layer (Keller Jordan's advice).
- The CNN's convolution kernels (out, in, width) are seen as (out, in·width) matrices, as in
  Keller Jordan's Muon: a parametrization stores each kernel as that matrix (the model
  computes the same function; Adam is indifferent to the shape).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
from torch import nn
from torch.nn.utils import parametrize

import steplab.torch.matrix as stm
from steplab.benchmark.workloads import get

#: optimizer -> (step sizes tried, options): four, ×3 apart, around each default
GRIDS = {
    "adam": ([3e-4, 1e-3, 3e-3, 1e-2], {}),
    "adafactor": ([3e-3, 1e-2, 3e-2, 1e-1], {}),
    "muon": ([0.005, 0.02, 0.05, 0.15], {}),
    "shampoo": ([3e-4, 1e-3, 3e-3, 1e-2], {"graft": "rmsprop", "every": 10}),
    "soap": ([1e-3, 3e-3, 1e-2, 3e-2], {}),
}
OTHER_LR = 1e-3  # Adam on what the matrix optimizers do not take


class _AsMatrix(nn.Module):
    """A convolution kernel stored as an (out, in·width) matrix, unflattened for the model."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        return matrix.reshape(self.shape)

    def right_inverse(self, kernel: torch.Tensor) -> torch.Tensor:
        return kernel.reshape(kernel.shape[0], -1)


def _kernels_as_matrices(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv1d):
            parametrize.register_parametrization(module, "weight", _AsMatrix(module.weight.shape))


def _optimizers(name: str, lr: float, model: nn.Module, options: dict) -> list:
    named = list(model.named_parameters())
    if name == "adam":
        return [torch.optim.Adam([p for _, p in named], lr=lr)]
    if name == "adafactor":
        return [stm.Adafactor([p for _, p in named], lr=lr, **options)]
    output = named[-2][0]  # the last layer's weight (its bias is named[-1])
    groups = stm.route(named, labels={output: "other"})
    matrix = stm.make(name, [p for _, p in groups["matrix"]], lr=lr, **options)
    other = torch.optim.Adam([p for _, p in groups["other"]], lr=OTHER_LR)
    return [matrix, other]


def train(workload: str, name: str, lr: float, seed: int, steps: int) -> dict:
    """One run: final validation accuracy, final training loss (mean of the last 40 steps);
    a run whose step raises (an eigendecomposition that fails to converge) counts as failed:
    accuracy NaN, the error recorded."""
    try:
        return _train(workload, name, lr, seed, steps)
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        print(f"  {workload} {name} lr={lr:g} seed {seed} failed: {str(exc)[:120]}", flush=True)
        return {"accuracy": math.nan, "train_loss": math.nan, "seconds": math.nan,
                "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip


def _train(workload: str, name: str, lr: float, seed: int, steps: int) -> dict:
    work = get(workload)
    budget = work.budget("small")
    torch.manual_seed(seed)
    task = work.build("small", seed)
    model = task.model
    _kernels_as_matrices(model)
    optimizers = _optimizers(name, lr, model, GRIDS[name][1])
    order = torch.Generator().manual_seed(seed)
    n = task.x_train.shape[0]
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        index = torch.randint(0, n, (budget.batch_size,), generator=order)
        model.train()
        for opt in optimizers:
            opt.zero_grad()
        loss = task.loss(model, task.x_train[index], task.y_train[index])
        loss.backward()
        for opt in optimizers:
            opt.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = float(task.evaluate(model))
    tail = losses[-40:]
    return {"accuracy": accuracy if math.isfinite(tail[-1]) else math.nan,
            "train_loss": sum(tail) / len(tail), "seconds": seconds}  # fmt: skip


def state_bytes(workload: str, name: str) -> float:
    """Bytes of optimizer state per parameter of the workload's model, as this script trains
    it (routing and options above), read off the optimizers' state after one step (tensors
    with a shape; torch.optim.Adam's 0-d step counters left out)."""
    work = get(workload)
    torch.manual_seed(0)
    task = work.build("small", 0)
    model = task.model
    _kernels_as_matrices(model)
    optimizers = _optimizers(name, GRIDS[name][0][1], model, GRIDS[name][1])
    task.loss(model, task.x_train[:10], task.y_train[:10]).backward()
    for opt in optimizers:
        opt.step()
    held = sum(t.nbytes for opt in optimizers for state in opt.state.values()
               for t in state.values() if torch.is_tensor(t) and t.ndim > 0)  # fmt: skip
    return held / sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--workloads", nargs="+", default=["mnist1d_mlp", "mnist1d_cnn"])
    parser.add_argument("--optimizers", nargs="+", default=list(GRIDS))
    parser.add_argument("--out", help="write every run as JSON here")
    parser.add_argument("--bytes", action="store_true",
                        help="print the state bytes per parameter only")  # fmt: skip
    args = parser.parse_args()
    if args.bytes:
        for workload in args.workloads:
            for name in args.optimizers:
                print(f"{workload} {name}: {state_bytes(workload, name):.2f} bytes/parameter")
        return
    torch.set_num_threads(1)
    runs = []
    rows = []
    for workload in args.workloads:
        for name in args.optimizers:
            best = None
            for lr in GRIDS[name][0]:
                results = [train(workload, name, lr, seed, args.steps) for seed in
                           range(args.seeds)]  # fmt: skip
                runs += [{"workload": workload, "optimizer": name, "lr": lr, "seed": seed, **r}
                         for seed, r in enumerate(results)]  # fmt: skip
                accuracies = [r["accuracy"] for r in results]
                mean = statistics.fmean(accuracies)  # NaN if a run failed: never the best
                print(f"{workload} {name} lr={lr:g}: {mean:.3f} {accuracies}", flush=True)
                if not math.isnan(mean) and (best is None or mean > best[0]):
                    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
                    seconds = statistics.median(r["seconds"] for r in results)
                    best = (mean, spread, lr, seconds)
            if best is None:
                rows.append([workload, name, "-", "every run failed", "-"])
                continue
            edge = " (edge)" if best[2] in (GRIDS[name][0][0], GRIDS[name][0][-1]) else ""
            rows.append([workload, name, f"{best[2]:g}{edge}", f"{best[0]:.3f} ± {best[1]:.3f}",
                         f"{best[3]:.1f}"])  # fmt: skip
    header = ["workload", "optimizer", "best lr", f"val. accuracy ({args.seeds} seeds)",
              "train s (median)"]  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{args.steps} steps, batch 100, float32, 1 thread; mean ± std over seeds\n")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
