"""What the AlgoPerf-style benchmark writes: the time-to-target table (text and CSV), the
learning curves per workload (median over studies and the band between the studies'
extremes), performance profiles up to τ = 4 with their integrated scores, step-size
sensitivity per workload (with the edge flag right for accuracies), config.json, and one
index.html with all of them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from steplab.benchmark import profile
from steplab.benchmark.algoperf import (
    Settings,
    WorkloadResult,
    format_table,
    markdown_table,
    table_rows,
)

READABLE = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss (nats/char)",
    "val_mse": "validation reconstruction MSE",
}


def curves_figure(result: WorkloadResult):
    """Validation metric against steps: per optimizer the median over studies of each
    study's chosen trial, and a band from the lowest to the highest study."""
    from steplab.viz import styles, subplots

    fig, axes = subplots(1, 1, width=7.0, height=4.4, layout="constrained")
    ax = axes[0][0]
    for opt, style in styles(result.optimizers).items():
        chosen = [result.best_trial(opt, m) for m in range(len(result.trials[opt]))]
        length = min(len(r["values"]) for r in chosen)
        steps = np.asarray(chosen[0]["steps"][:length])
        values = np.array([r["values"][:length] for r in chosen], dtype=np.float64)
        with np.errstate(invalid="ignore"), _quiet():
            median = np.nanmedian(values, axis=0)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        ax.plot(steps, median, **style)
        ax.fill_between(steps, low, high, color=style["color"], alpha=0.15, lw=0)
    ax.axhline(result.target, color="black", ls="--", lw=1, label=f"target {result.target}")
    shown = np.concatenate([line.get_ydata() for line in ax.get_lines()]).astype(float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if not result.maximize and shown.size and shown.max() > 10 * shown.min():
        ax.set_yscale("log")  # a loss falling over decades (reconstruction error)
    ax.set_xlabel("training step")
    ax.set_ylabel(READABLE.get(result.metric, result.metric))
    ax.set_title(f"{result.name}: {result.description}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)
    return fig


class _quiet:
    """Silence NumPy's 'All-NaN slice' warning (a diverged study is NaN everywhere)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def scores(results: list[WorkloadResult], unit: str) -> tuple[np.ndarray, list[str]]:
    """The (workloads, optimizers) matrix of median times to target."""
    optimizers = results[0].optimizers
    return np.array([[r.score(o, unit) for o in optimizers] for r in results]), optimizers


def profile_figure(results: list[WorkloadResult]):
    """AlgoPerf performance profiles (steps and wall seconds), τ from 1 to 4; the legend
    gives each optimizer's integrated score ∫₁⁴ ρ dτ / 3."""
    from steplab.viz import styles, subplots

    fig, axes = subplots(1, 2, width=5.6, height=4.2, layout="constrained")
    taus = np.linspace(1.0, profile.TAU_MAX, 601)
    for ax, unit in zip(axes[0], ("steps", "seconds"), strict=True):
        times, optimizers = scores(results, unit)
        rho = profile.profile(times, taus)
        integral = profile.integrated_score(times)
        for style, curve, s in zip(styles(optimizers).values(), rho, integral, strict=True):
            label = f"{style['label']} ({s:.2f})"
            ax.step(taus, curve, where="post", **{**style, "label": label})
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(1, profile.TAU_MAX)
        ax.set_xlabel(f"τ: time to target within a factor τ of the fastest ({unit})")
        ax.set_ylabel("fraction of workloads ρ(τ)")
        ax.set_title(f"time in {unit} — legend: integrated score", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    return fig


def sensitivity_figure(result: WorkloadResult):
    """Each trial's final validation metric against its step size, all studies pooled;
    ``None`` when no trial finished."""
    from steplab.viz import sweep_figure

    curves = {}
    finished = []
    for opt in result.optimizers:
        runs = [r for study in result.trials[opt] for r in study]
        lrs = np.array([r["hyperparameters"].get("lr", math.nan) for r in runs])
        finals = np.array(
            [r["values"][-1] if r["status"] == "ok" else math.nan for r in runs], dtype=float
        )
        order = np.argsort(lrs)
        curves[opt] = (lrs[order], finals[order], ~np.isfinite(finals[order]))
        finished.extend(finals[np.isfinite(finals)])
    if not finished:
        return None
    return sweep_figure(
        curves,
        xlabel="step size α (drawn trials, all studies)",
        ylabel=f"final {READABLE.get(result.metric, result.metric)}",
        title=f"{result.name}: sensitivity to α",
        logy=not result.maximize and min(finished) > 0,
        maximize=result.maximize,
    )


def write(results: list[WorkloadResult], out: str | Path, settings: Settings, config: dict) -> str:
    """Write table.txt/table.csv/table.md, the figures, config.json and index.html; return the
    table (with the tuning budget) as text."""
    from steplab.benchmark import tuning
    from steplab.viz import save
    from steplab.viz.report import FigureEntry, write_index

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results, settings)
    budget = tuning.budget_text(
        settings.mode, settings.trials, settings.studies, results[0].optimizers
    )
    text = format_table(rows, budget)
    (out / "table.txt").write_text(text + "\n")
    (out / "table.md").write_text(markdown_table(results, budget) + "\n")
    with (out / "table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    entries = []
    if len(results) >= 1:
        save(profile_figure(results), out / "profiles")
        entries.append(
            FigureEntry(
                "profiles.png",
                "Performance profiles (AlgoPerf, τ ≤ 4)",
                "ρ(τ): fraction of workloads on which an optimizer's median time to target "
                "is within a factor τ of the fastest; a target never reached counts as "
                "never within. Legend: the integrated score ∫₁⁴ ρ(τ) dτ / 3 (1 = fastest "
                f"everywhere). {budget}.",
            )
        )
    for r in results:
        save(curves_figure(r), out / f"curves_{r.name}")
        entries.append(
            FigureEntry(
                f"curves_{r.name}.png",
                f"{r.name}: learning curves",
                f"{READABLE.get(r.metric, r.metric)} against steps: median over "
                f"{settings.studies} studies of each study's chosen trial (fastest to the "
                "target, else best final value), band from the lowest to the highest study; "
                "dashed: the target.",
                section="Learning curves",
            )
        )
    for r in results if settings.mode == "external" else []:  # self-tuning draws no α
        figure = sensitivity_figure(r)
        if figure is None:
            continue
        save(figure, out / f"sensitivity_{r.name}")
        entries.append(
            FigureEntry(
                f"sensitivity_{r.name}.png",
                f"{r.name}: sensitivity",
                "Final validation metric of every trial against its drawn step size; a "
                "legend entry says when the best trial's α is at the edge of the drawn range.",
                section="Step-size sensitivity",
            )
        )
    (out / "config.json").write_text(json.dumps(config, indent=1, default=str))
    escaped = text.replace("&", "&amp;").replace("<", "&lt;")
    cfg = json.dumps(config, indent=1, default=str).replace("&", "&amp;").replace("<", "&lt;")
    write_index(
        out,
        entries,
        title="steplab benchmark (AlgoPerf-style, PyTorch workloads)",
        table_html=f"<pre>{escaped}</pre><h3>Configuration</h3><pre>{cfg}</pre>",
    )
    return text
