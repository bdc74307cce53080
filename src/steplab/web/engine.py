"""What the web lab computes: 2-D problems, contour grids, trajectories and step-size sweeps.

This module knows nothing about HTTP. It turns already-validated requests into NumPy
results that :mod:`steplab.web.app` serializes. Every result is plain Python (lists of
floats, ``None`` where a value is not finite), so it can go straight into JSON.

Trajectories run the optimizer contract directly (``init``/``step``/``step_size``) because
the page needs every iterate and every per-coordinate step size, not just the summary of a
run. Sweeps use :func:`steplab.sweep`: K step sizes as one vectorized ``(K, 2)`` run (K
runs when the step size follows a schedule).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from steplab import problems
from steplab.optim import Optimizer
from steplab.optim.schedules import Schedule

#: The catalogue's deterministic 2-D test functions that the page offers by name.
FUNCTIONS = tuple(problems.list_problems("function"))


# --------------------------------------------------------------------------------------
# Budgets: every computation checks its deadline (and whether its client is still there)
# --------------------------------------------------------------------------------------


class OutOfBudget(Exception):
    """The computation passed its deadline; ``done`` says how far it got."""

    def __init__(self, seconds: float, done: str = ""):
        super().__init__(seconds, done)
        self.seconds, self.done = seconds, done


class Cancelled(Exception):
    """The client went away: nobody will read the result."""


class Budget:
    """A deadline and a cancel switch, checked cooperatively by the computation.

    The web lab runs each request in a worker thread; Python cannot stop a thread from
    outside, so the work itself calls :meth:`check` between steps (every gradient
    evaluation, a few milliseconds at most) and stops by raising.
    """

    def __init__(self, seconds: float, start: float | None = None):
        self.seconds = float(seconds)
        self.deadline = (time.monotonic() if start is None else start) + self.seconds
        self._cancelled = threading.Event()
        self.progress = ""  # what is done so far, for the out-of-budget message

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled
        if time.monotonic() > self.deadline:
            raise OutOfBudget(self.seconds, self.progress)

    def watch(self, problem: problems.Problem) -> problems.Problem:
        """``problem`` with a budget check before every evaluation (for loops run elsewhere,
        such as :func:`steplab.sweep`). ``problem`` must be this request's own instance."""
        for name in ("value_and_grad", "value"):
            original = getattr(problem, name)

            def checked(*args, _original=original, **kwargs):
                self.check()
                return _original(*args, **kwargs)

            setattr(problem, name, checked)
        return problem


NO_BUDGET = Budget(math.inf)


def build_problem(
    name: str | None, expression: str | None, noise: float, bounds=None
) -> problems.Problem:
    """A 2-D problem from a catalogue ``name`` or a typed ``expression``, plus gradient noise;
    ``bounds`` (``[[x_low, x_high], [y_low, y_high]]``) replaces its plot box.

    Raises ``ValueError`` naming the problem (unknown name, a formula outside the
    whitelist grammar, a formula in more than two variables).
    """
    problem: problems.Problem
    if expression is not None:
        # The whitelist parser of steplab.problems.expression: user text is never evaluated.
        problem = problems.expression(expression, dim=2)
    elif name is None:
        raise ValueError("give a problem name or an expression")
    else:
        problem = problems.get(name)
        if problem.dim != 2:  # pragma: no cover - every catalogued function defaults to 2-D
            raise ValueError(f"{name} is not a 2-D problem")
    if noise > 0:
        problem = problems.with_gradient_noise(problem, noise)
    if bounds is not None:
        # A view of the problem: its own box stays known, so the page can frame and unframe.
        problem.full_bounds = problem.bounds  # type: ignore[attr-defined]
        problem.bounds = np.asarray(bounds, dtype=np.float64).reshape(2, 2)
    return problem


def finite_or_none(values) -> list:
    """``values`` as a (nested) list of floats, with every NaN or ±inf as ``None`` (JSON null)."""
    array = np.asarray(values, dtype=np.float64)
    out = array.astype(object)
    out[~np.isfinite(array)] = None
    return out.tolist()


def problem_info(problem: problems.Problem) -> dict:
    """What the page draws besides the contours: bounds, start point, known minima."""
    f_min_known = problem.f_min is not None and math.isfinite(problem.f_min)
    full_bounds = getattr(problem, "full_bounds", problem.bounds)
    return {
        "name": problem.name,
        "description": problem.description,
        "bounds": None if problem.bounds is None else problem.bounds.tolist(),
        # the problem's own box (``bounds`` is a framed view of it when the request gave one)
        "full_bounds": None if full_bounds is None else np.asarray(full_bounds).tolist(),
        "x0": problem.x0.tolist(),
        "minima": [m.tolist() for m in problem.minima],
        "f_min": problem.f_min if f_min_known else None,
        "gradient": getattr(problem, "gradient_text", None),
    }


def contour_grid(problem: problems.Problem, resolution: int, bounds=None) -> dict:
    """Loss values on a ``resolution × resolution`` grid over ``bounds`` (default: the problem's).

    ``z[i][j]`` is the value at ``(x[j], y[i])``: rows run along y, as an image does.
    """
    bounds = problem.bounds if bounds is None else bounds
    if bounds is None:
        raise ValueError(f"{problem.name} has no plot bounds; give bounds")
    (x_low, x_high), (y_low, y_high) = bounds
    xs = np.linspace(x_low, x_high, resolution)
    ys = np.linspace(y_low, y_high, resolution)
    X, Y = np.meshgrid(xs, ys)
    points = np.stack([X.ravel(), Y.ravel()], axis=1)
    with np.errstate(all="ignore"):
        z = np.asarray(problem.value(points), dtype=np.float64).reshape(resolution, resolution)
    return {"x": xs.tolist(), "y": ys.tolist(), "z": finite_or_none(z)}


@dataclass
class Trajectory:
    """One optimizer's run: iterates, losses and per-coordinate effective step sizes."""

    path: np.ndarray  # (n + 1, 2): the start and every iterate
    loss: np.ndarray  # (n + 1,): noise-free loss at each point of the path
    step_size: np.ndarray  # (n, 2): optimizer.step_size(state) after each step
    diverged_at: int | None  # the step at which the run left the finite numbers, if it did

    def to_json(self) -> dict:
        return {
            "path": finite_or_none(self.path),
            "loss": finite_or_none(self.loss),
            "step_size": finite_or_none(self.step_size),
            "diverged_at": self.diverged_at,
        }


def trajectory(
    problem: problems.Problem,
    optimizer: Optimizer | Any,  # or a modifier around one (adamw+cautious)
    start,
    steps: int,
    seed: int,
    budget: Budget = NO_BUDGET,
) -> Trajectory:
    """Run ``optimizer`` for ``steps`` steps from ``start``; stop early if the run diverges.

    With a stochastic (noisy) problem the gradient noise comes from ``seed``; the recorded
    loss is always the noise-free value, which is what the contour plot shows.

    An optimizer with an evaluation point (``eval_params``: the average of an EMA/SWA
    wrapper, Lookahead's slow weights, Schedule-Free's x) is shown there, as
    :func:`steplab.minimize` judges it: ``path`` and ``loss`` are that point's, while the
    optimizer steps its own θ. A wrapped optimizer (``+cautious``, ``+ema``) shows the
    step sizes of the optimizer inside (for cautious: before the mask).
    """
    rng = np.random.default_rng(seed) if problem.stochastic else None
    theta = np.array(start, dtype=np.float64)
    state = optimizer.init(theta)
    evaluated = getattr(optimizer, "eval_params", None)
    shown = (lambda: evaluated(theta, state)) if evaluated else (lambda: theta.copy())
    sizer: Any = optimizer
    while vars(sizer).get("base") is not None:  # a wrapper: its innermost optimizer's sizes
        sizer = vars(sizer)["base"]
    path, loss, step_size = [theta.copy()], [problem.value(theta)], []
    diverged_at = None
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            budget.check()
            _, grad = problem.value_and_grad(theta, rng=rng)
            if not np.all(np.isfinite(grad)):
                diverged_at = t
                break
            optimizer.step(theta, grad, state)
            point = shown()
            value = problem.value(point)
            path.append(point)
            loss.append(value)
            step_size.append(np.broadcast_to(sizer.step_size(state), (2,)).copy())
            if not (
                np.all(np.isfinite(theta)) and np.all(np.isfinite(point)) and np.isfinite(value)
            ):
                diverged_at = t
                break
    return Trajectory(
        path=np.array(path),
        loss=np.array(loss, dtype=np.float64),
        step_size=np.array(step_size, dtype=np.float64).reshape(-1, 2),
        diverged_at=diverged_at,
    )


def sweep_final_loss(
    problem: problems.Problem,
    optimizer: Optimizer,
    start,
    lrs,
    steps: int,
    seed: int,
    budget: Budget = NO_BUDGET,
    schedule: Callable[[float], Schedule | float] | None = None,
    build_at: Callable[[float], Any] | None = None,
) -> np.ndarray:
    """Final loss after ``steps`` steps for each step size in ``lrs``, as one vectorized run.

    This is :func:`steplab.sweep` (K step sizes as one ``(K, 2)`` problem). Every
    configuration uses the same ``seed``, so with gradient noise they all see the same
    noise stream (common random numbers: the curve's wiggles are the step size's doing).
    A diverged run (NaN, or a loss above minimize's divergence threshold) gives NaN.

    ``schedule`` (α → the lr schedule of scale α) makes each configuration's lr that
    schedule. A schedule's value is one number per step, so these K runs are K entries
    of one :func:`steplab.sweep`, each run on its own (about K times the work).

    ``build_at`` (α → the whole optimizer at α, modifiers included) makes K runs of
    :func:`trajectory` instead, one per step size: a modifier may not be steppable by the
    vectorized loop (cautious reduces over all of θ). The final loss is then the last
    point's, at the evaluation point as the run page shows it; NaN once a run diverged.
    """
    from steplab.run import sweep  # the run layer; imported late, it is the heavier one

    values = np.asarray(lrs, dtype=np.float64)
    if build_at is not None:
        finals = []
        for lr in values:
            run = trajectory(problem, build_at(float(lr)), start, steps, seed, budget)
            finals.append(np.nan if run.diverged_at is not None else run.loss[-1])
        return np.array(finals, dtype=np.float64)
    if schedule is None:
        grid: dict = {optimizer: {"lr": values}}
    else:  # keyed by instance: K optimizers, one scheduled step size each
        grid = {optimizer.replace(lr=schedule(float(lr))): {} for lr in values}
    table = sweep(
        budget.watch(problem),
        grid,
        seeds=[seed],
        steps=steps,
        x0=np.asarray(start, dtype=np.float64),
        engine="loop",  # checks the budget at every step; the compiled kernels cannot
    )
    return np.array(
        [np.nan if row["status"] == "diverged" else row["final_loss"] for row in table],
        dtype=np.float64,
    )
