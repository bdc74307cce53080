"""Set the workloads' validation targets from a tuned AdamW baseline, as AlgoPerf does, and
record them with how they were obtained (``workloads/targets.json``)::

    python -m steplab.benchmark.targets --size small

Rule: AdamW (the seed's defaults otherwise) is tuned over the step sizes in ``LR_GRID`` with
seed 0, choosing the best final validation metric; the chosen α is rerun with seeds 0, 1, 2;
the target is the median over those seeds of the validation metric at the evaluation
nearest half the step budget (rounded to 3 significant digits). So tuned AdamW reaches the
target at about half its budget, and an optimizer up to twice as slow still can.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np

LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SEEDS = (0, 1, 2)
BASELINE = "adamw"


def set_target(name: str, size: str, log=print) -> dict:
    from steplab.benchmark import workloads

    w = workloads.get(name)
    finals = []
    for lr in LR_GRID:
        record = workloads.train(w, size, BASELINE, {"lr": lr}, SEEDS[0])
        value = record["values"][-1] if record["status"] == "ok" else np.nan
        finals.append(value)
        log(f"{name}: adamw lr={lr:g} final {w.metric}={value:.4g}")
    finite = np.where(np.isfinite(finals), finals, -np.inf if w.maximize else np.inf)
    pick = int(np.argmax(finite) if w.maximize else np.argmin(finite))
    lr = LR_GRID[pick]
    if pick in (0, len(LR_GRID) - 1):
        log(f"{name}: warning: the best AdamW step size {lr:g} is at the grid's edge")
    runs = [workloads.train(w, size, BASELINE, {"lr": lr}, s) for s in SEEDS]
    steps = np.asarray(runs[0]["steps"])
    at = int(np.argmin(np.abs(steps - w.budget(size).steps / 2)))
    value = float(np.median([r["values"][at] for r in runs]))
    target = float(f"{value:.3g}")
    log(f"{name}: target {w.metric} {target} (adamw lr={lr:g}, step {steps[at]})")
    return {
        "metric": w.metric,
        "maximize": w.maximize,
        "target": target,
        "adamw_lr": lr,
        "lr_grid": list(LR_GRID),
        "at_step": int(steps[at]),
        "median_final": float(np.median([r["values"][-1] for r in runs])),
    }


def main(argv=None) -> int:
    from steplab.benchmark import workloads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--size", default="small", choices=workloads.SIZES)
    parser.add_argument("--workloads", nargs="+", default=list(workloads.NAMES))
    parser.add_argument("--out", help="where to write (default: the package's targets.json)")
    args = parser.parse_args(argv)
    try:
        workloads.require_device(args.size)  # the full sizes need a CUDA GPU
    except ValueError as exc:
        print(f"steplab.benchmark.targets: error: {exc}", file=sys.stderr)
        return 2
    path = (
        Path(args.out)
        if args.out
        else Path(str(resources.files("steplab.benchmark.workloads") / "targets.json"))
    )
    recorded = json.loads(path.read_text()) if path.exists() else {}
    table = recorded.setdefault(args.size, {})
    for name in args.workloads:
        table[name] = set_target(name, args.size, log=lambda s: print(s, file=sys.stderr))
    recorded["how"] = __doc__.split("\n\n")[2].replace("\n", " ")
    recorded.setdefault("commands", {})[args.size] = (
        f"python -m steplab.benchmark.targets --size {args.size} "
        f"({datetime.date.today().isoformat()}, 1 CPU thread)"
    )
    path.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
