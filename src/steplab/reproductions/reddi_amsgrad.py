"""Reddi, Kale & Kumar (2018): Adam converges to the worst point of a 1-D convex problem.

The online problem of their §5 ("Synthetic Experiments", Figure 1) on F = [−1, 1]:
``f_t(x) = 1010·x`` when ``t mod 101 = 1`` and ``−10·x`` otherwise. Over one period of
101 steps the gradients sum to 1010 − 100·10 = 10 > 0, so x = −1 is optimal. In the
stochastic version ``f_t(x) = 1010·x`` with probability 0.01 and ``−10·x`` otherwise:
E[g] = 10.1 − 9.9 = 0.2 > 0, again x = −1. Adam (β₁ = 0.9, β₂ = 0.99) forgets the rare
large gradient within ~1/(1 − β₂) = 100 steps, so the frequent small ones, each divided
by a small √v, push it to x = +1, the worst point; AMSGrad divides by the running maximum
of v and goes to −1. At x = +1 each period costs regret 2·10 = 20, so Adam's average
regret tends to 20/101 ≈ 0.198 while AMSGrad's tends to 0.

Also the example of their §3 (Theorem 1): ``f_t(x) = C·x`` for ``t mod 3 = 1`` and
``−x`` otherwise, C > 2, with β₁ = 0 and β₂ = 1/(1 + C²), where Adam converges to +1.

Both are optimized here with steplab's :class:`~steplab.optim.Adam` (``amsgrad`` off and
on), without bias correction as in the paper's Algorithm 1 and 2, and with the projection
onto [−1, 1] (in one dimension the √V-weighted projection is clipping).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steplab.reproductions._common import Result, mean_std, pm, save_figure, seeds_list
from steplab.reproductions.registry import reproduction

SOURCE = (
    "S. J. Reddi, S. Kale, S. Kumar, 'On the Convergence of Adam and Beyond', ICLR 2018: "
    "§3 (the example before Theorem 1), §5 'Synthetic Experiments' and Figure 1"
)
BIG, SMALL, PERIOD, P_BIG = 1010.0, -10.0, 101, 0.01  # §5
RHO1, RHO2 = 0.9, 0.99  # §5: "we set β1 = 0.9 and β2 = 0.99 for ADAM and AMSGRAD"
C_THEOREM = 3.0  # §3 asks only C > 2
# The paper does not state Figure 1's step size; its §2 says α_t is typically α/√t, which
# its theory assumes. We use α_t = ALPHA/√t.
ALPHA = 1.0
ADAM_LIMIT = 2 * (BIG + (PERIOD - 1) * SMALL) / PERIOD  # regret of x = +1 per step, 20/101
EXPECTED_GRAD = P_BIG * BIG + (1 - P_BIG) * SMALL  # stochastic: E[g] = 0.2


def gradients(setting: str, T: int, seed: int = 0) -> np.ndarray:
    """The gradients g_t = f_t'(x) for t = 1…T (linear losses: the same for every x)."""
    t = np.arange(1, T + 1)
    if setting == "online":
        return np.where(t % PERIOD == 1, BIG, SMALL)
    if setting == "stochastic":
        return np.where(np.random.default_rng(seed).random(T) < P_BIG, BIG, SMALL)
    if setting == "theorem":
        return np.where(t % 3 == 1, C_THEOREM, -1.0)
    raise ValueError(f"setting must be online, stochastic or theorem, got {setting!r}")


def optimize(g: np.ndarray, rho1, rho2, *, amsgrad: bool, alpha: float = ALPHA, progress=False):
    """Projected Adam or AMSGrad with α_t = α/√t from x₁ = 0, one column of ``g (T, K)``
    (and of ``rho1``, ``rho2``) per run; returns the iterates x_t (T, K), before each step.

    Each step is steplab's Adam with ``lr = inverse_sqrt_schedule(α)``, then the projection
    onto [−1, 1] (clipping).
    """
    import steplab as sl
    from steplab.run.loop import _progress_bar

    T, K = g.shape
    rho1, rho2 = (np.asarray(v, dtype=float)[:, None] for v in (rho1, rho2))
    lr = sl.schedules.inverse_sqrt_schedule(alpha)  # α_t = α/√t
    opt = sl.Adam(
        lr=lr,  # type: ignore[arg-type]  # a schedule (the fields are typed float)
        rho1=rho1,
        rho2=rho2,
        bias_correction=False,
        amsgrad=amsgrad,
    )
    x = np.zeros((K, 1))
    state = opt.init(x)
    xs = np.empty((T, K))
    bar = _progress_bar(T, progress)
    for t in range(T):
        xs[t] = x[:, 0]
        opt.step(x, g[t][:, None], state)
        np.clip(x, -1.0, 1.0, out=x)  # the projection Π_F onto [−1, 1]
        if bar is not None and t % 1000 == 0:
            bar.update(1000)
    if bar is not None:
        bar.close()
    return xs


def average_regret(g: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """R_t/t against x = −1: (1/t) Σ_s f_s(x_s) − f_s(−1) = (1/t) Σ_s g_s·(x_s + 1)."""
    return np.cumsum(g * (xs + 1.0), axis=0) / np.arange(1, len(xs) + 1)[:, None]


METHODS = {"Adam": False, "AMSGrad": True}  # name → amsgrad


def compute(
    *,
    quick: bool = False,
    seeds=(0, 1, 2, 3, 4),
    progress: bool = False,
    methods: dict | None = None,
) -> dict:
    """Every setting as columns of one run per method: online, each stochastic seed, §3.

    ``methods`` (name → amsgrad flag, default :data:`METHODS`) is the setup a test breaks,
    e.g. ``{"Adam": True, "AMSGrad": True}``: the claims about Adam must then fail.
    """
    T = 20_000 if quick else 1_000_000
    columns = [("online", 0)] + [("stochastic", s) for s in seeds] + [("theorem", 0)]
    g = np.stack([gradients(setting, T, seed) for setting, seed in columns], axis=1)
    theorem = [setting == "theorem" for setting, _ in columns]
    rho1 = np.where(theorem, 0.0, RHO1)
    rho2 = np.where(theorem, 1.0 / (1.0 + C_THEOREM**2), RHO2)
    out: dict[str, Any] = {"T": T, "runs": {}}
    for name, ams in (METHODS if methods is None else methods).items():
        xs = optimize(g, rho1, rho2, amsgrad=ams, progress=progress)
        regret = average_regret(g, xs)
        # the stochastic problem's regret in expectation: E f(x) = 0.2·x
        expected = average_regret(np.full_like(g, EXPECTED_GRAD), xs)
        for setting in ("online", "stochastic", "theorem"):
            cols = [i for i, (s, _) in enumerate(columns) if s == setting]
            avg = expected if setting == "stochastic" else regret
            out["runs"][setting, name] = {"x": xs[:, cols], "avg_regret": avg[:, cols]}
    return out


def _tail(values: np.ndarray) -> np.ndarray:
    """Mean over the last tenth of the run, per column (smooths the periodic wiggle)."""
    return values[-max(1, len(values) // 10) :].mean(axis=0)


def figure(measured: dict, out):
    """Figure 1's three panels: online average regret and iterate, stochastic iterate."""
    from steplab.viz import subplots

    fig, axes = subplots(1, 3, width=4.4, height=3.6)
    colors = {"Adam": "#d62728", "AMSGrad": "#1f77b4"}
    T = measured["T"]
    idx = np.unique(np.geomspace(1, T, 1500).astype(int)) - 1  # even on the log t axis
    t = idx + 1
    for name, color in colors.items():
        run = measured["runs"]["online", name]
        axes[0, 0].plot(t, run["avg_regret"][idx, 0], color=color, label=name)
        axes[0, 1].plot(t, run["x"][idx, 0], color=color, label=name)
        stoch = measured["runs"]["stochastic", name]["x"][idx]
        axes[0, 2].plot(t, stoch.mean(axis=1), color=color, label=f"{name} (mean)")
        axes[0, 2].fill_between(t, stoch.min(axis=1), stoch.max(axis=1), color=color, alpha=0.2)
    axes[0, 0].axhline(ADAM_LIMIT, color="grey", ls=":", lw=1.2, label="20/101: regret of x = +1")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_title("online: average regret R_t/t")
    axes[0, 1].set_title("online: iterate x_t")
    axes[0, 2].set_title(f"stochastic: iterate x_t ({measured['n_seeds']} seeds, min–max)")
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.legend(fontsize=8, loc="lower left")
    for ax in axes[0, 1:]:
        ax.set_ylim(-1.05, 1.05)
    fig.suptitle(
        f"Reddi et al. (2018), Figure 1 problems: steplab's Adam and AMSGrad, α_t = {ALPHA:g}/√t"
    )
    fig.tight_layout()
    return save_figure(fig, out, "repro-reddi-amsgrad")


def check(measured: dict, *, quick: bool = False) -> dict[str, bool]:
    """Figure 1's statements (and §3's) on ``measured`` (:func:`compute`)."""
    runs = measured["runs"]
    final = {key: float(np.mean(_tail(r["x"]))) for key, r in runs.items()}
    regret = {key: float(mean_std(r["avg_regret"][-1])[0]) for key, r in runs.items()}
    T = measured["T"]
    half = {key: float(np.mean(r["avg_regret"][T // 2 - 1])) for key, r in runs.items()}
    stoch_tail = {name: _tail(runs["stochastic", name]["x"]) for name in ("Adam", "AMSGrad")}
    claims = {
        "online: Adam's iterate goes to +1 (last 10 % mean > 0.9)": final["online", "Adam"] > 0.9,
        "§3 example: Adam's iterate goes to +1, AMSGrad's to −1 (beyond ±0.9)": final[
            "theorem", "Adam"
        ]
        > 0.9
        and final["theorem", "AMSGrad"] < -0.9,
    }
    if quick:  # 20 000 steps: AMSGrad is on its way, not there
        claims["online: AMSGrad's iterate is below −0.5"] = final["online", "AMSGrad"] < -0.5
        claims["stochastic: AMSGrad's iterate ends at least 0.5 below Adam's"] = (
            final["stochastic", "AMSGrad"] < final["stochastic", "Adam"] - 0.5
        )
    else:
        claims.update(
            {
                "online: AMSGrad's iterate goes to −1 (last 10 % mean < −0.9)": final[
                    "online", "AMSGrad"
                ]
                < -0.9,
                "online: Adam's average regret does not go to 0 (≥ 0.9·20/101 over the "
                "second half)": bool(
                    np.all(runs["online", "Adam"]["avg_regret"][T // 2 :] >= 0.9 * ADAM_LIMIT)
                ),
                "online: AMSGrad's average regret falls over the second half, to below half "
                "of Adam's": regret["online", "AMSGrad"] < half["online", "AMSGrad"]
                and regret["online", "AMSGrad"] < 0.5 * regret["online", "Adam"],
                "stochastic: Adam's iterate goes to +1 (every seed's last 10 % mean > 0.8)": bool(
                    np.all(stoch_tail["Adam"] > 0.8)
                ),
                "stochastic: AMSGrad's iterate heads to −1 (every seed below 0, mean below "
                "−0.5)": bool(np.all(stoch_tail["AMSGrad"] < 0))
                and final["stochastic", "AMSGrad"] < -0.5,
            }
        )
    return claims


@reproduction("reddi_amsgrad", "Reddi et al. (2018) §3/§5: Adam vs AMSGrad on [−1, 1]", SOURCE)
def run(out, *, quick: bool = False, seeds: int | None = None, progress: bool = False) -> Result:
    seed_list = seeds_list(seeds, 3 if quick else 5)
    measured = compute(quick=quick, seeds=seed_list, progress=progress)
    measured["n_seeds"] = len(seed_list)
    runs = measured["runs"]
    rows = []
    labels = {
        "online": "§5 online (1010x every 101st step, else −10x)",
        "stochastic": "§5 stochastic (1010x w.p. 0.01, else −10x)",
        "theorem": f"§3 example (C = {C_THEOREM:g}, β₁ = 0, β₂ = 1/(1+C²))",
    }
    for setting, label in labels.items():
        for name in ("Adam", "AMSGrad"):
            run_ = runs[setting, name]
            rows.append(
                {
                    "problem": label,
                    "method": name,
                    "published": "x → +1" if name == "Adam" else "x → −1",
                    "final x_T (mean over last 10 %)": pm(_tail(run_["x"]), 3),
                    "average regret R_T/T": pm(run_["avg_regret"][-1], 3),
                }
            )
    claims = check(measured, quick=quick)
    return Result(
        name="reddi_amsgrad",
        title="Reddi, Kale & Kumar (2018): Adam vs AMSGrad on a 1-D convex problem",
        source=SOURCE,
        setup=(
            f"steplab's Adam with ρ₁ = {RHO1}, ρ₂ = {RHO2} (§5), amsgrad off/on, no bias "
            f"correction (the paper's Algorithms 1-2), β = 1e-8 inside the root, step size "
            f"α_t = {ALPHA:g}/√t, x₁ = 0, projection onto [−1, 1] by clipping, "
            f"T = {measured['T']:,} steps; stochastic setting: {len(seed_list)} seeds "
            f"({', '.join(map(str, seed_list))}) drawing the 1 % events. Average regret "
            "R_t/t against x = −1 (stochastic: in expectation, E f_t(x) = 0.2·x)."
        ),
        differences=(
            "The paper states neither the step size nor the start nor the horizon of "
            "Figure 1 (its §2 says α_t is typically α/√t, which its theory assumes); ours "
            f"are α_t = {ALPHA:g}/√t, x₁ = 0, T = {measured['T']:,}. The paper's analysis "
            "has no ε; we keep "
            "steplab's β = 1e-8 inside the root (immaterial: v ≥ 1 after the first step). "
            "The §3 example is our addition to Figure 1 (the paper proves it, Theorem 1)."
        ),
        tables={"Final iterate and average regret": rows},
        claims=claims,
        quick=quick,
        figures=[figure(measured, out)],
    )
