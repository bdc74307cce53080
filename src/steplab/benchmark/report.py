"""What a benchmark prints and draws: the summary table (mean ± std per problem and
optimizer, with a 95 % bootstrap interval over the rerun seeds), a sensitivity plot per
problem and a performance profile across problems."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from steplab.benchmark import profile, stats
from steplab.benchmark.protocol import ProblemResult

COLUMNS = ("problem", "optimizer", "best α", "loss", "accuracy", "diverged")


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a)), float(np.std(a, ddof=1)) if a.size > 1 else 0.0


def _stats(values: list[float]) -> tuple[float, float, float, float]:
    """Mean, sample std and the 95 % bootstrap interval of the mean."""
    mean, std = _mean_std(values)
    lo, hi = stats.bootstrap_ci(values)
    return mean, std, lo, hi


def tuning_scores(result: ProblemResult, optimizer: str) -> np.ndarray:
    """The selection metric of each tuning run (one per α; ±inf where it diverged)."""
    return np.array([result.metric.score(r) for r in result.rows_of(result.tuning, optimizer)])


def chosen_at_edge(result: ProblemResult, optimizer: str) -> bool:
    """Whether the chosen α is the grid's first or last value (higher is better for an
    accuracy): the best step size may lie outside the grid."""
    from steplab.run.records import best_at_edge

    scores = tuning_scores(result, optimizer)
    return bool(best_at_edge(scores, maximize=result.metric.maximize))


def summary_rows(results: list[ProblemResult]) -> list[dict]:
    """One row per problem and optimizer: the chosen α (and whether it is at the grid's
    edge) and the rerun seeds' final test metrics (mean, sample standard deviation and the
    95 % bootstrap interval of the mean over seeds)."""
    rows = []
    for result in results:
        m = result.metric
        for name in result.optimizers:
            runs = result.rows_of(result.reruns, name)
            loss = _stats([r[m.loss] for r in runs])
            row = {
                "problem": result.spec.label,
                "optimizer": name,
                "best_lr": result.best_lr[name],
                "lr_at_edge": chosen_at_edge(result, name),
                "selected_by": m.select,
                "loss_metric": m.loss,
                "loss_mean": loss[0],
                "loss_std": loss[1],
                "loss_ci_low": loss[2],
                "loss_ci_high": loss[3],
                "accuracy_mean": None,
                "accuracy_std": None,
                "accuracy_ci_low": None,
                "accuracy_ci_high": None,
                "diverged": sum(r["status"] == "diverged" for r in runs),
                "seeds": len(runs),
                "cost": result.cost(name),
            }
            if m.accuracy is not None:
                (
                    row["accuracy_mean"],
                    row["accuracy_std"],
                    row["accuracy_ci_low"],
                    row["accuracy_ci_high"],
                ) = _stats([r[m.accuracy] for r in runs])
            rows.append(row)
    return rows


def _ci(row: dict, key: str) -> str:
    mean = row[f"{key}_mean"]
    ci = None if mean is None else (row[f"{key}_ci_low"], row[f"{key}_ci_high"])
    return stats.format_ci(mean, ci)


def display_rows(rows: list[dict]) -> list[dict]:
    return [
        {
            "problem": r["problem"],
            "optimizer": r["optimizer"],
            "best α": f"{r['best_lr']:.3g}" + (" (edge)" if r["lr_at_edge"] else ""),
            "loss": f"{_ci(r, 'loss')} ({r['loss_metric']})",
            "accuracy": _ci(r, "accuracy"),
            "diverged": f"{r['diverged']}/{r['seeds']}",
        }
        for r in rows
    ]


def format_table(rows: list[dict]) -> str:
    """The summary as aligned text (what ``steplab benchmark`` prints): means with their
    95 % bootstrap interval over seeds, then a line naming the chosen step sizes that sit at
    the grid's edge."""
    shown = display_rows(rows)
    widths = {c: max(len(c), *(len(r[c]) for r in shown)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in shown]
    seeds = sorted({r["seeds"] for r in rows})
    lines.append(
        f"\n[lo, hi]: 95 % percentile-bootstrap interval of the mean over "
        f"{'/'.join(map(str, seeds))} seeds."
    )
    edges = [f"{r['problem']}/{r['optimizer']}" for r in rows if r["lr_at_edge"]]
    if edges:
        lines.append(
            f"{len(edges)} of {len(rows)} chosen step sizes are at the grid's edge "
            f"(widen the grid): {', '.join(edges)}"
        )
    else:
        lines.append(f"No chosen step size is at the grid's edge (0 of {len(rows)}).")
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
        values = tuning_scores(result, name)
        curves[name] = (result.lr_grid, values, ~np.isfinite(values))
    finite = np.concatenate([v[np.isfinite(v)] for _, v, _ in curves.values()])
    budget = ", ".join(f"{k}={v}" for k, v in result.spec.options.items())
    return sweep_figure(
        curves,
        xlabel="step size α",
        ylabel=metric_label(m.select),
        title=f"{result.spec.label}: step-size sensitivity ({budget}, one seed)",
        logy=not m.maximize and finite.size > 0 and bool(np.all(finite > 0)),
        maximize=m.maximize,
    )


def metric_label(key: str) -> str:
    """``val_accuracy`` → "final val accuracy"; ``final_loss`` → "final loss" (not twice)."""
    words = key.replace("_", " ")
    return words if words.startswith("final ") else f"final {words}"


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
                f"{metric_label(result.metric.select).capitalize()} after the tuning run "
                "(seed 42) for each step size; crosses: diverged; a legend entry says when "
                "the best step size is at the grid's edge.",
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
