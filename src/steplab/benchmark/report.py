"""What a benchmark prints and draws: the summary table (mean ± std per problem and
optimizer), a sensitivity plot per problem and a performance profile across problems."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from steplab.benchmark import profile
from steplab.benchmark.protocol import ProblemResult

COLUMNS = ("problem", "optimizer", "best α", "loss", "accuracy", "diverged")


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a)), float(np.std(a, ddof=1)) if a.size > 1 else 0.0


def summary_rows(results: list[ProblemResult]) -> list[dict]:
    """One row per problem and optimizer: the chosen α and the rerun seeds' final test
    metrics (mean and sample standard deviation)."""
    rows = []
    for result in results:
        m = result.metric
        for name in result.optimizers:
            runs = result.rows_of(result.reruns, name)
            loss = _mean_std([r[m.loss] for r in runs])
            row = {
                "problem": result.spec.label,
                "optimizer": name,
                "best_lr": result.best_lr[name],
                "selected_by": m.select,
                "loss_metric": m.loss,
                "loss_mean": loss[0],
                "loss_std": loss[1],
                "accuracy_mean": None,
                "accuracy_std": None,
                "diverged": sum(r["status"] == "diverged" for r in runs),
                "seeds": len(runs),
                "cost": result.cost(name),
            }
            if m.accuracy is not None:
                row["accuracy_mean"], row["accuracy_std"] = _mean_std([r[m.accuracy] for r in runs])
            rows.append(row)
    return rows


def _pm(mean, std, digits: int = 4) -> str:
    if mean is None:
        return "—"
    if not math.isfinite(mean):
        return str(mean)
    return f"{mean:.{digits}g} ± {std:.2g}"


def display_rows(rows: list[dict]) -> list[dict]:
    return [
        {
            "problem": r["problem"],
            "optimizer": r["optimizer"],
            "best α": f"{r['best_lr']:.3g}",
            "loss": f"{_pm(r['loss_mean'], r['loss_std'])} ({r['loss_metric']})",
            "accuracy": _pm(r["accuracy_mean"], r["accuracy_std"]),
            "diverged": f"{r['diverged']}/{r['seeds']}",
        }
        for r in rows
    ]


def format_table(rows: list[dict]) -> str:
    """The summary as aligned text (what ``steplab benchmark`` prints)."""
    shown = display_rows(rows)
    widths = {c: max(len(c), *(len(r[c]) for r in shown)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in shown]
    return "\n".join(line.rstrip() for line in lines)


def costs(results: list[ProblemResult]) -> tuple[np.ndarray, list[str]]:
    """The (problems, optimizers) cost matrix of the performance profile."""
    optimizers = results[0].optimizers
    return np.array([[r.cost(s) for s in optimizers] for r in results]), optimizers


def sensitivity_figure(result: ProblemResult):
    """The tuning sweep: the selection metric against α, one line per optimizer."""
    from steplab.viz import sweep_figure

    m = result.metric
    curves = {}
    for name in result.optimizers:
        runs = result.rows_of(result.tuning, name)
        values = np.array([m.score(r) for r in runs])
        curves[name] = (result.lr_grid, values, ~np.isfinite(values))
    finite = np.concatenate([v[np.isfinite(v)] for _, v, _ in curves.values()])
    budget = ", ".join(f"{k}={v}" for k, v in result.spec.options.items())
    return sweep_figure(
        curves,
        xlabel="step size α",
        ylabel=f"final {m.select.replace('_', ' ')}",
        title=f"{result.spec.label}: step-size sensitivity ({budget}, one seed)",
        logy=not m.maximize and finite.size > 0 and bool(np.all(finite > 0)),
    )


def profile_figure(results: list[ProblemResult]):
    """Dolan–Moré performance profile across the problems."""
    from steplab.viz import styles, subplots

    cost, optimizers = costs(results)
    taus = profile.tau_range(cost)
    rho = profile.profile(cost, taus)
    fig, axes = subplots(1, 1, width=6.4, height=4.4)
    ax = axes[0][0]
    for style, curve in zip(styles(optimizers).values(), rho, strict=True):
        ax.step(taus, curve, where="post", **style)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(1, taus[-1])
    ax.set_xlabel("τ: within a factor τ of the best optimizer's cost")
    ax.set_ylabel("fraction of problems ρ(τ)")
    ax.set_title(
        f"Performance profile over {len(results)} problems\n"
        "(cost: test error, else loss above the minimum; mean over seeds)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def write(results: list[ProblemResult], out: str | Path, config: dict) -> str:
    """Write summary.csv, summary.txt, the figures, config.json and index.html to ``out``;
    return the summary table as text."""
    from steplab.viz import save
    from steplab.viz.report import FigureEntry, write_index

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = format_table(rows)
    (out / "summary.txt").write_text(text + "\n")
    entries = []
    for result in results:
        name = f"sensitivity_{result.spec.label}"
        save(sensitivity_figure(result), out / name)
        entries.append(
            FigureEntry(
                f"{name}.png",
                f"{result.spec.label}: {result.info.get('description', '')}",
                f"Final {result.metric.select} after the tuning run (seed 42) for each step "
                "size; crosses: diverged.",
            )
        )
    if len(results) >= 2:
        save(profile_figure(results), out / "performance_profile")
        entries.insert(
            0,
            FigureEntry(
                "performance_profile.png",
                "Performance profile (Dolan & Moré)",
                "ρ(τ): fraction of problems on which an optimizer's cost is within a factor τ "
                "of the best one's; ρ(1) counts wins.",
            ),
        )
    (out / "config.json").write_text(json.dumps(config, indent=1, default=str))
    table_html = "<pre>" + text.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
    write_index(out, entries, title="steplab benchmark", table_html=table_html)
    return text
