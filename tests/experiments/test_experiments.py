"""Each lesson's numerical claim, checked against hand-derived values where one exists,
and each lesson's figures (panels, legend entries, frames)."""

import math

import numpy as np
import pytest

from steplab import experiments
from steplab.experiments import bias_correction, quadratic, saddle, sensitivity, step_sizes
from steplab.experiments._common import settles


def legend_texts(fig):
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        if ax.get_legend():
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    return texts


# -- registry ----------------------------------------------------------------------------


def test_registry_lists_the_lessons_in_teaching_order():
    assert experiments.names()[:6] == list(experiments.LESSONS)
    assert all(experiments.get(n).lesson for n in experiments.LESSONS)
    assert all(experiments.get(n).description for n in experiments.EXPERIMENTS)


def test_registry_errors_name_the_known_experiments():
    with pytest.raises(ValueError, match="unknown experiment 'nope'; known: .*saddle"):
        experiments.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        experiments.register("saddle", "again")(lambda out, quick=False: None)


def test_settles_ignores_lucky_dips():
    assert settles(np.array([5, 0.5, 3, 0.5, 0.1]), 1.0) == 3
    assert settles(np.array([5, 0.5, 3]), 1.0) is None
    assert settles(np.array([0.5, 0.1]), 1.0) == 0


# -- 1. saddle -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saddle_data():
    return saddle.compute()


def test_adaptive_methods_leave_the_saddle_before_sgd(saddle_data):
    escape = saddle_data.escape_step
    for name in ("adagrad", "rmsprop", "adam", "momentum", "nesterov"):
        assert escape[name] < escape["sgd"], name


def test_sgd_escape_time_matches_the_closed_form(saddle_data):
    # SGD on x² − y²: y_t = y_0·(1 + 2α)^t, so |y| ≥ 1 first at t = ⌈ln(1/y_0)/ln(1 + 2α)⌉.
    expected = math.ceil(math.log(1 / 1e-3) / math.log(1 + 2 * saddle.LR))
    assert saddle_data.escape_step["sgd"] == expected


def test_saddle_stills_have_the_lectures_two_panels_and_all_seven_methods(saddle_data):
    fig = saddle.stills_figure(saddle_data)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("After start") and titles[1].startswith("Later")
    assert legend_texts(fig) == [
        "SGD",
        "Momentum",
        "Nesterov",
        "AdaGrad",
        "AdaDelta",
        "RMSProp",
        "Adam",
        "start",
        "saddle point",
    ]


def test_every_optimizer_is_visible_in_the_saddle_stills(saddle_data, tmp_path):
    from matplotlib.colors import to_rgb
    from PIL import Image

    from steplab.viz import color, save

    fig = saddle.stills_figure(saddle_data)
    # The legend is one line: no entry wraps onto a second row.
    assert fig.legends[0]._ncols == len(legend_texts(fig))
    # SGD runs under Momentum and Nesterov along θ₂ = 0: shorter paths are drawn on top.
    early = fig.axes[0]
    z = {
        line.get_color(): line.get_zorder() for line in early.get_lines() if line.get_path_effects()
    }
    assert z[color("sgd")] > z[color("momentum")] and z[color("sgd")] > z[color("nesterov")]
    (png,) = save(fig, tmp_path / "stills")
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    for name in saddle.OPTIMIZERS:
        near = np.abs(rgb - np.array(to_rgb(color(name))) * 255).sum(axis=2) < 40
        assert near.sum() > 300, name  # a visible stretch of line, not only an end dot


def test_at_a_larger_shared_step_size_the_lectures_ranking_holds(saddle_data):
    escape = saddle_data.escape_at_lecture_lr
    order = sorted(escape, key=lambda n: escape[n] or 10**9)
    assert order[:2] == ["rmsprop", "adagrad"]
    # ... while at the lesson's α = 0.05 AdaGrad is slower than Adam: the caption says why.
    assert saddle_data.escape_step["adagrad"] > saddle_data.escape_step["adam"]


def test_saddle_run_writes_stills_and_animation(tmp_path):
    report = saddle.run(tmp_path, quick=True)
    files = {e.path for e in report.figures}
    assert {"saddle_stills.png", "saddle_animation.gif"} <= files
    from steplab.viz import gif_frames

    assert gif_frames(tmp_path / "saddle_animation.gif") == 12
    assert all(report.claims.values()), report.claims
    assert len(report.rows) == 7
    assert (
        f"at α = {saddle.LECTURE_LR} the race ranks as the lecture's" in report.figures[0].caption
    )


# -- 2. quadratic --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quadratic_data():
    return quadratic.compute()


def test_momentum_and_adam_reach_the_tolerance_before_sgd_from_the_lectures_start(quadratic_data):
    steps = quadratic_data.steps_to_tol["off-diagonal"]
    assert steps["momentum"] < steps["sgd"]
    assert steps["adam"] < steps["sgd"]


def test_sgd_steps_to_tolerance_match_the_closed_form(quadratic_data):
    # Plain gradient descent on ½θᵀAθ multiplies θᵢ by (1 − αλᵢ) per step, so the loss is
    # ½ Σᵢ λᵢ (θᵢ(0)(1 − αλᵢ)^t)²; with α = 1.8 the steep θ₂ flips sign each step.
    kappa, tol, lr = quadratic.KAPPA, quadratic.TOL, quadratic.SGD_LR
    lam = np.array([1 / kappa, 1.0])
    t = np.arange(0, 1000)[:, None]
    for start, x0 in quadratic.STARTS.items():
        x0 = np.array(x0)
        loss = 0.5 * np.sum(lam * (x0 * (1 - lr * lam) ** t) ** 2, axis=1)
        above = np.flatnonzero(loss > tol * loss[0])
        assert quadratic_data.steps_to_tol[start]["sgd"] == above[-1] + 1, start


def test_sgd_zig_zags_and_momentum_overshoots_the_minimum(quadratic_data):
    sgd = quadratic_data.traces["off-diagonal"]["sgd"].params
    assert np.all(np.sign(sgd[1:20, 1]) == -np.sign(sgd[:19, 1]))  # θ₂ flips every step
    momentum = quadratic_data.traces["off-diagonal"]["momentum"].params
    assert momentum[:, 0].max() > 0.5  # from θ₁ = −9 it runs past the minimum at 0 ...
    assert abs(momentum[-1, 0]) < 1e-2  # ... and the swings die down


def test_adam_moves_straight_down_the_diagonal_from_a_diagonal_start(quadratic_data):
    adam = quadratic_data.traces["diagonal"]["adam"].params
    steps = np.diff(adam[:6], axis=0)
    # Equal moves in θ₁ and θ₂ (up to β = 1e-8 inside the root, which weighs more for the
    # 50× smaller gradient along θ₁), and −α·sign(g) at t = 1: g = (−1.5/50, 1.5).
    np.testing.assert_allclose(np.abs(steps[:, 0]), np.abs(steps[:, 1]), rtol=1e-5)
    np.testing.assert_allclose(steps[0], [0.3, -0.3], rtol=1e-5)


def test_quadratic_figure_shows_both_starts_and_every_setting(quadratic_data, tmp_path):
    fig = quadratic.contours_figure(quadratic_data)
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == [
        "The lecture's picture",
        "Start on the diagonal",
    ]
    assert legend_texts(fig) == ["SGD", "Momentum", "Adam", "start", "minimum"]
    # every α and ρ is stated above the panels, in no box over the paths
    text = fig.get_suptitle()
    assert "α = 1.8" in text and "α = 0.5, ρ = 0.9" in text and "ρ₁ = 0.9" in text
    assert all(not ax.texts for ax in fig.axes)
    report = quadratic.run(tmp_path, quick=True)
    caption = report.figures[0].caption
    assert "moves straight along it" in caption
    # the caption's S-curve is measured on the drawn path (the first SHOWN steps)
    path = quadratic_data.traces["off-diagonal"]["adam"].params[: quadratic.SHOWN + 1]
    assert f"dips to θ₂ = {path[:, 1].min():.2f}" in caption and path[:, 1].min() < -0.5
    assert f"overshoots the minimum to θ₁ = {path[:, 0].max():.2f}" in caption
    assert (
        path[:, 0].max() > 0.3
        and "S-curve" in caption
        and "straight in" not in caption.replace("not straight in", "")
    )
    assert all(report.claims.values())


# -- 3 & 4. step sizes ---------------------------------------------------------------------


def test_first_adagrad_step_sizes_are_alpha_over_the_gradient_size():
    data = step_sizes.compute_adaptive(quick=True)
    adagrad = data.traces["adagrad"]
    # At (1, 1) the gradient of ½(θ₁² + 100θ₂²) is (1, 100): AdaGrad's step size α/(β + |g|).
    alpha, beta = 0.1, 1e-7
    np.testing.assert_allclose(adagrad.step_size[1], [alpha / (beta + 1), alpha / (beta + 100)])
    for name, tr in data.traces.items():
        assert np.all(tr.step_size[1:, 0] > tr.step_size[1:, 1]), name


def test_adaptive_figure_has_a_panel_per_optimizer_and_the_derivatives(tmp_path):
    data = step_sizes.compute_adaptive(quick=True)
    fig = step_sizes.adaptive_figure(data)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["AdaGrad", "RMSProp", "Adam", "Derivative sizes along Adam's path"]
    assert all(step_sizes.run_adaptive(tmp_path, quick=True).claims.values())


def test_adagrad_decays_while_rmsprop_keeps_walking(tmp_path):
    report = step_sizes.run_decay(tmp_path, quick=True)
    assert all(report.claims.values()), report.claims
    ada = report.data.traces["adagrad"]
    # AdaGrad's step size is α/(β + √Σg²): recompute it from the gradients along its path.
    from steplab.problems import rosenbrock

    grads = rosenbrock().grad(ada.params[:-1])
    expected = step_sizes.DECAY_LR / (1e-7 + np.sqrt(np.cumsum(grads**2, axis=0)))
    np.testing.assert_allclose(ada.step_size[1:], expected, rtol=1e-10)


# -- 5. bias correction --------------------------------------------------------------------


def test_adams_moments_match_the_seeds_formulas():
    t, s, r, s_hat, r_hat = bias_correction.moments_on_noisy_gradient(50, seed=3)
    g = np.random.default_rng(3).normal(bias_correction.MU, bias_correction.SIGMA, size=50)
    rho1, rho2 = bias_correction.RHO1, bias_correction.RHO2
    # s^[t] = (1 − ρ₁) Σ ρ₁^{t−i} ĝ^[i]  (the seed's unrolled sum)
    unrolled = [
        (1 - rho1) * sum(rho1 ** (k - i) * g[i - 1] for i in range(1, k + 1)) for k in range(1, 51)
    ]
    np.testing.assert_allclose(s, unrolled, rtol=1e-12)
    np.testing.assert_allclose(s_hat[0], g[0])  # ŝ^[1] = ĝ^[1]: unbiased from the start
    np.testing.assert_allclose(r_hat[0], g[0] ** 2)
    np.testing.assert_allclose(r[0], (1 - rho2) * g[0] ** 2)


def test_corrected_first_moment_is_unbiased_over_seeds():
    # E[ŝ^[t]] = μ for every t when ĝ is i.i.d. with mean μ: average over 400 seeds at t = 3.
    values = [bias_correction.moments_on_noisy_gradient(3, seed=k)[3][2] for k in range(400)]
    raw = [bias_correction.moments_on_noisy_gradient(3, seed=k)[1][2] for k in range(400)]
    assert abs(np.mean(values) - bias_correction.MU) < 0.05
    assert abs(np.mean(raw) - (1 - 0.9**3) * bias_correction.MU) < 0.05


def test_bias_figures_and_claims(tmp_path):
    report = bias_correction.run(tmp_path, quick=True)
    assert all(report.claims.values()), report.claims
    fig = bias_correction.moments_figure(report.data)
    texts = legend_texts(fig)
    assert "raw s" in texts and "true E[ĝ] = 1" in texts and "raw r" in texts
    assert any(t.startswith("corrected r̂") for t in texts)


# -- 6. sensitivity ------------------------------------------------------------------------


def test_step_size_sweep_claims_and_outputs(tmp_path):
    report = sensitivity.run(tmp_path, quick=True)
    assert all(report.claims.values()), report.claims
    data = report.data
    # SGD on Rosenbrock from (−1.2, 1) diverges at α = 1 (the Hessian there has λ ≈ 1000).
    assert not np.isfinite(data.final["sgd"][-1])
    assert data.heat["adam"].shape == (len(sensitivity.DECAY_VALUES), len(data.lrs))
    assert {e.path for e in report.figures} == {
        "sensitivity_lr.png",
        "sensitivity_heatmap_adam.png",
        "sensitivity_heatmap_rmsprop.png",
    }


def test_each_optimizer_keeps_its_color_across_lessons(saddle_data, quadratic_data):
    from steplab.viz import color

    def colors_by_label(fig):
        found = {}
        for ax in fig.axes:
            for line in ax.get_lines():
                found.setdefault(line.get_label(), line.get_color())
        return found

    figures = [
        saddle.stills_figure(saddle_data),
        saddle.escape_figure(saddle_data),
        quadratic.contours_figure(quadratic_data),
        quadratic.loss_figure(quadratic_data),
    ]
    for fig in figures:
        for label, c in colors_by_label(fig).items():
            if label in ("SGD", "Momentum", "Adam", "RMSProp", "AdaGrad"):
                assert c == color(label.lower()), (label, c)
