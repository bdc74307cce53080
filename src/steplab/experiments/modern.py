"""The runs behind the figures on Schedule-Free training, weight averaging and the
cautious mask (docs/modern.md, notebook 06): data only, drawn by :mod:`steplab.viz.modern`.

- :func:`schedule_free_vs_cosine`: a noisy least-squares problem, heavy-ball SGD with a
  constant step, the same with a cosine schedule that must know the horizon, and
  Schedule-Free SGD (evaluated at x) that does not; loss per step over seeds.
- :func:`ema_on_noisy_quadratic`: SGD with a constant step on a noisy 2-D quadratic ends in
  a cloud around the minimum; the EMA of its iterates sits near the centre.
- :func:`cautious_saddle`: momentum methods with and without the cautious mask on the
  lecture's saddle x² − y², from (1, 10⁻³).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from steplab.optim import Adam, Momentum
from steplab.optim.averaging import EMA
from steplab.optim.modifiers import Cautious
from steplab.optim.schedule_free import ScheduleFreeSGD
from steplab.optim.schedules import CosineDecay


@dataclass
class Curves:
    steps: np.ndarray  # 1 … T
    losses: dict[str, np.ndarray]  # label -> (seeds, T): loss at the point one evaluates


def _least_squares(seed: int, dim: int = 20, rows: int = 200):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, dim)) * np.geomspace(1, 0.05, dim)  # ill-conditioned
    b = a @ rng.standard_normal(dim) + 0.5 * rng.standard_normal(rows)
    x_star = np.linalg.lstsq(a, b, rcond=None)[0]
    floor = 0.5 * np.mean((a @ x_star - b) ** 2)

    def loss(x):
        return 0.5 * np.mean((a @ x - b) ** 2) - floor  # excess loss, 0 at the optimum

    def minibatch_gradient(x, t):
        idx = np.random.default_rng(10_000 * seed + t).integers(0, rows, 8)
        return a[idx].T @ (a[idx] @ x - b[idx]) / len(idx)

    return loss, minibatch_gradient, np.zeros(dim)


def schedule_free_vs_cosine(seeds: int = 5, steps: int = 400, lr: float = 0.05) -> Curves:
    """Excess loss per step: heavy-ball momentum (α = ``lr``, ρ = 0.9) with a constant
    step, the same with a cosine decay to 0 at ``steps``, and Schedule-Free SGD
    (γ = α/(1 − ρ), β = 0.9, evaluated at x), each over ``seeds`` seeds."""
    methods = {
        "momentum, constant α": lambda: Momentum(lr=lr, rho=0.9),
        "momentum, cosine α (knows T)": lambda: Momentum(lr=CosineDecay(lr, steps), rho=0.9),  # type: ignore[arg-type]
        # the same effective step: heavy ball moves α/(1 − ρ) per unit gradient in the long
        # run; Schedule-Free moves z by its γ (the authors: 10-50× momentum SGD's α)
        "Schedule-Free SGD (at x)": lambda: ScheduleFreeSGD(lr=lr / (1 - 0.9), rho=0.9),
    }
    losses = {name: np.empty((seeds, steps)) for name in methods}
    for seed in range(seeds):
        loss, gradient, start = _least_squares(seed)
        for name, make in methods.items():
            opt = make()
            theta = start.copy()
            state = opt.init(theta)
            for t in range(steps):
                opt.step(theta, gradient(theta, t), state)
                point = opt.eval_params(theta, state) if hasattr(opt, "eval_params") else theta
                losses[name][seed, t] = loss(point)
    return Curves(np.arange(1, steps + 1), losses)


@dataclass
class Cloud:
    iterates: np.ndarray  # (T, 2)
    averages: np.ndarray  # (T, 2): the debiased EMA after each step
    curvature: np.ndarray  # the quadratic's diagonal
    decay: float


def ema_on_noisy_quadratic(steps: int = 400, decay: float = 0.95, noise: float = 1.0,
                           seed: int = 0) -> Cloud:  # fmt: skip
    """SGD (α = 0.1) on ½(x² + 4y²) with gradient noise of std ``noise``, wrapped in EMA."""
    curvature = np.array([1.0, 4.0])
    rng = np.random.default_rng(seed)
    opt = EMA(base=Momentum(lr=0.1, rho=0.0), decay=decay)
    theta = np.array([2.5, 1.5])
    state = opt.init(theta)
    iterates, averages = [], []
    for _ in range(steps):
        opt.step(theta, curvature * theta + noise * rng.standard_normal(2), state)
        iterates.append(theta.copy())
        averages.append(opt.averaged(state))
    return Cloud(np.array(iterates), np.array(averages), curvature, decay)


@dataclass
class Race:
    paths: dict[str, np.ndarray]  # label -> (T + 1, 2), from the start
    escape_step: dict[str, int | None]  # first step with |y| ≥ 1


def cautious_saddle(steps: int = 120, lr: float = 0.05) -> Race:
    """Momentum (ρ = 0.9) and Adam, each with and without the cautious mask, on x² − y²."""
    methods: dict[str, Any] = {
        "momentum": Momentum(lr=lr, rho=0.9),
        "cautious momentum": Cautious(base=Momentum(lr=lr, rho=0.9)),
        "adam": Adam(lr=lr),
        "cautious adam": Cautious(base=Adam(lr=lr)),
    }
    paths, escape = {}, {}
    for name, opt in methods.items():
        theta = np.array([1.0, 1e-3])
        state = opt.init(theta)
        path = [theta.copy()]
        for _ in range(steps):
            opt.step(theta, np.array([2 * theta[0], -2 * theta[1]]), state)
            path.append(theta.copy())
        paths[name] = np.array(path)
        out = np.nonzero(np.abs(paths[name][:, 1]) >= 1.0)[0]
        escape[name] = int(out[0]) if out.size else None
    return Race(paths, escape)


__all__ = ["Cloud", "Curves", "Race", "cautious_saddle", "ema_on_noisy_quadratic",
           "schedule_free_vs_cosine"]  # fmt: skip
