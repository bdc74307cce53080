"""Bias correction matters (Kingma & Ba, 2015, section 6.4, in small).

Without bias correction Adam's moments start at zero and stay biased towards it: after
the first step ``s = (1 − ρ₁)ĝ`` and ``r = (1 − ρ₂)ĝ²``, so the step is
``α·(1 − ρ₁)/√(1 − ρ₂)`` per coordinate instead of α — 1×, 3.2× and 10× α for
ρ₂ = 0.99, 0.999, 0.9999 with ρ₁ = 0.9. Since s debiases within ~1/(1 − ρ₁) steps but r
only within ~1/(1 − ρ₂), the steps stay too large for thousands of steps when ρ₂ is close
to 1: the paper's section 6.4 (a VAE) shows the resulting instability at large step sizes
and how bias correction removes it. Its second claim: "The best results were achieved with
small values of (1−β₂) and bias correction". It sweeps β₁ ∈ {0, 0.9}, β₂ ∈ {0.99, 0.999,
0.9999} and log₁₀ α ∈ {−5, …, −1}; so do we, on a small MLP on MNIST-1D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steplab.reproductions._common import Result, eval_curve, fmt, save_figure, seeds_list
from steplab.reproductions.registry import reproduction

SOURCE = (
    "D. P. Kingma, J. Ba, 'Adam: A Method for Stochastic Optimization', ICLR 2015, "
    "section 6.4 and Figure 4 (VAE loss with and without bias correction)"
)
RHO1, RHO2S, BATCH = 0.9, (0.99, 0.999, 0.9999), 128
RHO1S = (0.0, 0.9)  # the paper's β₁ values
HIDDEN = (32,)


def first_step_ratio(rho2: float, rho1: float = RHO1, *, corrections=(False, True)) -> float:
    """Measured |Δθ| of Adam's first step without bias correction over the one with it
    (``corrections``: the settings compared; a test passes (False, False) to break it)."""
    import steplab as sl

    g = np.array([0.3, -2.0, 5.0])
    steps = []
    for corrected in corrections:
        theta = np.zeros(3)
        opt = sl.Adam(lr=1e-3, rho1=rho1, rho2=rho2, bias_correction=corrected, eps_root=0.0)
        opt.step(theta, g, opt.init(theta))
        steps.append(np.abs(theta))
    return float(np.mean(steps[0] / steps[1]))


def compute(
    *, quick: bool = False, seeds=(0, 1), progress: bool = False, correction: bool = True
) -> dict:
    """Train the MLP for every step size × ρ₁ × ρ₂ × seed, with and without bias correction.

    ``correction=False`` breaks the setup for the tests: the runs labelled "with
    correction" run without it too, so every claim about correction must fail.
    """
    import steplab as sl
    from steplab import problems
    from steplab.problems import datasets

    data = datasets.load("mnist1d", val_fraction=0.0)
    problem = problems.mlp(data, hidden=HIDDEN)
    lrs = np.array([1e-3, 1e-1]) if quick else np.logspace(-5, -1, 5)  # log₁₀ α = −5…−1
    rho1s = (RHO1,) if quick else RHO1S
    epochs = 3 if quick else 10
    seeds = list(seeds)
    # One call per setting of bias correction: rows run over (lr, ρ₁, ρ₂, seed).
    LR, R1, R2, S = (a.ravel() for a in np.meshgrid(lrs, rho1s, RHO2S, seeds, indexing="ij"))
    out: dict[str | bool, Any] = {"lrs": lrs, "rho1s": rho1s, "epochs": epochs, "seeds": seeds}
    for corrected in (True, False):
        runs = sl.minimize(
            problem,
            sl.Adam(
                lr=LR,  # type: ignore[arg-type]  # arrays: one configuration per row
                rho1=R1,  # type: ignore[arg-type]
                rho2=R2,  # type: ignore[arg-type]
                bias_correction=corrected and correction,
            ),
            epochs=epochs,
            batch_size=BATCH,
            seed=[int(s) for s in S],
            record_every=16,
            progress=progress,
        )
        curves = np.array([eval_curve(r, "train_loss")[1] for r in runs])
        diverged = np.array([r.status == "diverged" for r in runs])
        curves[diverged] = np.nan
        shape = (len(lrs), len(rho1s), len(RHO2S), len(seeds))
        out[corrected] = {  # (α, ρ₁, ρ₂), mean over seeds
            "first_epoch": np.nanmean(curves[:, 1].reshape(shape), axis=3),
            "final": np.nanmean(curves[:, -1].reshape(shape), axis=3),
        }
    return out


def figure(measured: dict, out):
    """Kingma & Ba's Figure 4 in small: loss vs step size, with and without correction,
    for each (ρ₁, ρ₂); after one epoch (top) and at the end (bottom)."""
    from steplab.viz import color, subplots

    columns = [
        (i, r1, j, r2) for i, r1 in enumerate(measured["rho1s"]) for j, r2 in enumerate(RHO2S)
    ]
    fig, axes = subplots(2, len(columns), width=2.9, height=2.8, sharey="row")
    lrs = measured["lrs"]
    for row, (key, when) in enumerate(
        (("first_epoch", "1 epoch"), ("final", f"{measured['epochs']} epochs"))
    ):
        for col, (i, rho1, j, rho2) in enumerate(columns):
            ax = axes[row, col]
            for corrected, style in ((True, "-"), (False, "--")):
                values = measured[corrected][key][:, i, j]
                label = "with correction" if corrected else "without"
                c = color("adam") if corrected else color("sgd")
                ax.plot(lrs, values, style, marker="o", ms=3, color=c, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"ρ₁ = {rho1:g}, ρ₂ = {rho2}", fontsize=9)
            if row == 1:
                ax.set_xlabel("step size α")
            if col == 0:
                ax.set_ylabel(f"training loss, {when}")
                ax.legend(fontsize=7)
    fig.suptitle(
        "Adam with and without bias correction, MLP on MNIST-1D (after Kingma & Ba's Fig. 4)"
    )
    fig.tight_layout()
    return save_figure(fig, out, "repro-bias-correction")


def first_step_table(corrections=(False, True)) -> list[dict]:
    """The first step's uncorrected/corrected ratio for each ρ₂, beside (1−ρ₁)/√(1−ρ₂)."""
    return [
        {
            "ρ₂": str(rho2),
            "(1−ρ₁)/√(1−ρ₂)": fmt((1 - RHO1) / np.sqrt(1 - rho2), 4),
            "measured first-step ratio": fmt(first_step_ratio(rho2, corrections=corrections), 4),
        }
        for rho2 in RHO2S
    ]


# "ρ₂ barely matters with correction" is judged after 1 epoch at the largest α: there the
# corrected losses over ρ₂ lie within 6 % of each other and the uncorrected ones up to 5.5×
# apart (2 seeds, `steplab reproduce bias_correction`). The final losses are not used: their
# spread over ρ₂ moves between 12 % and 32 % with the seeds (issue 25), so no fixed bound
# on it could be a claim.
RHO2_SPREAD = 1.25
BEST_CLAIM = "the best result of the whole sweep has bias correction and small 1 − ρ₂ (ρ₂ ≥ 0.999)"
# The paper's second claim is refuted here (the sweep's best run is uncorrected): a verdict.
EXPECTED = {BEST_CLAIM: False}


def check(measured: dict, ratios: list[dict]) -> dict[str, bool]:
    """The paper's claims on ``measured`` (see :func:`compute`) and the first-step ratios."""
    rho1s = measured["rho1s"]
    first_with, first_without = measured[True]["first_epoch"], measured[False]["first_epoch"]
    top = -1  # the largest step size: where the uncorrected steps hurt

    def spread(values):
        return np.nanmax(values) / np.nanmin(values) if np.all(np.isfinite(values)) else np.inf

    claims = {
        "first uncorrected step is (1−ρ₁)/√(1−ρ₂) times the corrected one": all(
            np.isclose(float(r["measured first-step ratio"]), float(r["(1−ρ₁)/√(1−ρ₂)"]), rtol=1e-3)
            for r in ratios
        ),
        "instability: at the largest α, after 1 epoch, without correction every ρ₂ close to "
        "1 (0.999, 0.9999) ends ≥ 1.3× above the corrected run, for every ρ₁": all(
            not first_without[top, i, j] < 1.3 * first_with[top, i, j]  # NaN counts
            for i in range(len(rho1s))
            for j in (1, 2)
        ),
        f"with correction, ρ₂ barely matters at the largest α: after 1 epoch the losses over "
        f"ρ₂ lie within {RHO2_SPREAD}× of each other, for every ρ₁": all(
            spread(first_with[top, i]) <= RHO2_SPREAD for i in range(len(rho1s))
        ),
    }
    if "overall_best" in measured:
        best = measured["overall_best"]
        claims[BEST_CLAIM] = bool(best["corrected"] and best["rho2"] >= 0.999)
    return claims


@reproduction("bias_correction", "Kingma & Ba (2015) §6.4: Adam's bias correction", SOURCE)
def run(out, *, quick: bool = False, seeds: int | None = None, progress: bool = False) -> Result:
    seed_list = seeds_list(seeds, 1 if quick else 2)
    measured = compute(quick=quick, seeds=seed_list, progress=progress)
    lrs, rho1s = measured["lrs"], measured["rho1s"]
    with_bc, without = measured[True]["final"], measured[False]["final"]
    tables = {}
    for i, rho1 in enumerate(rho1s):
        rows = []
        for k, lr in enumerate(lrs):
            row = {"α": fmt(lr, 3)}
            for j, rho2 in enumerate(RHO2S):
                row[f"ρ₂={rho2} with"] = fmt(with_bc[k, i, j], 3)
                row[f"ρ₂={rho2} without"] = fmt(without[k, i, j], 3)
            rows.append(row)
        tables[f"Final training loss, ρ₁ = {rho1:g} (mean over seeds)"] = rows

    def best(values, i, j):
        column = np.where(np.isfinite(values[:, i, j]), values[:, i, j], np.inf)
        k = int(np.argmin(column))
        return column[k], lrs[k]

    best_rows = []
    for i, rho1 in enumerate(rho1s):
        for j, rho2 in enumerate(RHO2S):
            (lw, aw), (lo, ao) = best(with_bc, i, j), best(without, i, j)
            best_rows.append(
                {
                    "ρ₁": f"{rho1:g}",
                    "ρ₂": str(rho2),
                    "best with correction (α)": f"{fmt(lw, 3)} ({fmt(aw, 2)})",
                    "best without (α)": f"{fmt(lo, 3)} ({fmt(ao, 2)})",
                }
            )
    tables["Best final loss over α"] = best_rows
    first_with, first_without = measured[True]["first_epoch"], measured[False]["first_epoch"]
    tables[f"Loss after 1 epoch at the largest α = {fmt(lrs[-1], 2)}"] = [
        {
            "ρ₁": f"{rho1:g}",
            **{
                f"ρ₂={rho2} {label}": fmt(values[-1, i, j], 3)
                for j, rho2 in enumerate(RHO2S)
                for label, values in (("with", first_with), ("without", first_without))
            },
        }
        for i, rho1 in enumerate(rho1s)
    ]
    ratios = first_step_table()
    tables["First step: uncorrected / corrected (ρ₁ = 0.9)"] = ratios
    if not quick:
        everything = np.stack([with_bc, without])  # (corrected?, α, ρ₁, ρ₂)
        c, k, i, j = (
            int(n)
            for n in np.unravel_index(
                np.argmin(np.where(np.isfinite(everything), everything, np.inf)), everything.shape
            )
        )
        measured["overall_best"] = {
            "corrected": c == 0,
            "lr": float(lrs[k]),
            "rho1": float(rho1s[i]),
            "rho2": RHO2S[j],
            "loss": float(everything[c, k, i, j]),
        }
    claims = check(measured, ratios)
    return Result(
        name="bias_correction",
        title="Kingma & Ba (2015) §6.4: bias correction matters",
        source=SOURCE,
        setup=(
            f"MLP 40→{HIDDEN[0]}→10 (ReLU) on MNIST-1D (4000 training signals), minibatches "
            f"of {BATCH}, {measured['epochs']} epochs; Adam with ρ₁ ∈ {tuple(rho1s)}, ρ₂ ∈ "
            f"{RHO2S}, step sizes {', '.join(fmt(a, 2) for a in lrs)}, with and without bias "
            f"correction, {len(seed_list)} seed(s) each (seeds "
            f"{', '.join(map(str, seed_list))}); full training loss (mean over seeds) after "
            "1 epoch and at the end."
        ),
        differences=(
            "The paper trains a variational auto-encoder (500 softplus hidden units, 50-D "
            "latent) and reports the loss after 10 and 100 epochs; we use a small MLP "
            f"classifier and report it after 1 and {measured['epochs']} epochs. The paper "
            "gives no numbers, only Figure 4, so only its qualitative claims are compared."
        ),
        tables=tables,
        claims=claims,
        expected={c: v for c, v in EXPECTED.items() if c in claims},
        numbers={k: measured[k] for k in ("overall_best",) if k in measured},
        quick=quick,
        figures=[figure(measured, out)],
    )
