"""The drawing layer: palette consistency and each figure's content (panels, legends,
frames), checked on the matplotlib objects and the written files."""

import numpy as np
import pytest
from PIL import Image

import steplab as sl
from steplab import viz


def saddle(xy):
    xy = np.atleast_2d(xy)
    return xy[:, 0] ** 2 - xy[:, 1] ** 2


def paths():
    t = np.linspace(0, 1, 21)[:, None]
    return {
        "sgd": np.hstack([1 - t, 0 * t]),
        "adam": np.hstack([1 - t, t]),
        "adam:lr=0.1": np.hstack([1 - t, -t]),
    }


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


# -- palette -----------------------------------------------------------------------------


def test_every_optimizer_has_its_own_color_and_label():
    colors = [viz.color(name) for name in sl.OPTIMIZERS]
    assert len(set(colors)) == len(colors)
    assert viz.pretty("rmsprop") == "RMSProp" and viz.pretty("adagrad") == "AdaGrad"


def test_variants_keep_the_family_hue_but_not_the_shade_or_line_style():
    from matplotlib.colors import rgb_to_hsv, to_rgb

    assert viz.color("adam@torch:lr=0.1") == viz.color("adam") == viz.color("ADAM")
    style = viz.styles(["adam", "adam:lr=0.1", "sgd"])
    assert style["adam"]["color"] == viz.color("adam") and style["sgd"]["color"] == viz.color("sgd")
    assert style["adam"]["color"] != style["adam:lr=0.1"]["color"]  # a darker shade
    hues = [rgb_to_hsv(to_rgb(style[k]["color"]))[0] for k in ("adam", "adam:lr=0.1")]
    assert abs(hues[0] - hues[1]) < 0.02  # the same hue: still Adam's colour
    assert style["adam"]["linestyle"] != style["adam:lr=0.1"]["linestyle"]
    assert style["adam:lr=0.1"]["label"] == "Adam (lr=0.1)"
    assert viz.pretty("adam@torch:lr=0.01") == "Adam (torch, lr=0.01)"


# -- still figures -----------------------------------------------------------------------


def test_contour_figure_has_one_panel_per_view_and_a_shared_legend():
    fig = viz.contour_figure(
        saddle,
        paths(),
        [
            viz.Panel(
                "After start",
                ((-1, 1), (-1, 1)),
                upto=5,
                points=[(0, 0)],
                points_label="saddle point",
            ),
            viz.Panel("Later", ((-2, 2), (-2, 2))),
        ],
        title="T",
    )
    assert [ax.get_title() for ax in fig.axes] == ["After start", "Later"]
    assert legend_texts(fig) == ["SGD", "Adam", "Adam (lr=0.1)", "start", "saddle point"]
    # "upto" cuts the drawn path: the first panel's SGD line holds steps 0..5.
    first_line = fig.axes[0].get_lines()[0]
    assert len(first_line.get_xdata()) == 6
    assert fig.axes[0].get_xlim() == (-1, 1)


def test_curves_figure_panels_legends_and_log_axes():
    x = np.arange(10)
    panels = [
        viz.CurvePanel(
            "Loss",
            "step",
            "loss",
            {"sgd": (x, np.exp(-x)), "adam": (x, np.exp(-2 * x))},
            logy=True,
            hlines={"tolerance": 1e-3},
        ),
        viz.CurvePanel("Other", "step", "y", {"my curve": (x, x)}),
    ]
    fig = viz.curves_figure(panels, ncols=2)
    ax0, ax1 = fig.axes
    assert ax0.get_yscale() == "log" and ax1.get_yscale() == "linear"
    assert [t.get_text() for t in ax0.get_legend().get_texts()] == ["SGD", "Adam", "tolerance"]
    assert [t.get_text() for t in ax1.get_legend().get_texts()] == ["my curve"]
    assert ax0.get_lines()[0].get_color() == viz.color("sgd")


def test_heatmap_outlines_the_best_cell_and_grays_diverged_ones():
    values = np.array([[3.0, np.inf], [0.5, 2.0]])
    fig = viz.heatmap_figure(values, [0.1, 1.0], [0.0, 0.9], xlabel="α", ylabel="ρ", title="H")
    ax = fig.axes[0]
    box = ax.patches[0]
    assert box.get_xy() == (-0.5, 0.5)  # column 0, row 1: the minimum 0.5
    shown = ax.images[0].get_array()
    assert np.ma.is_masked(shown[0, 1])  # the diverged cell is masked → drawn gray


def test_best_at_the_grids_edge_is_flagged_and_inside_is_not():
    from steplab.run.records import EDGE_NOTE, best_at_edge

    grid = np.array([[3.0, 2.0, 1.0], [4.0, 3.0, 2.0], [5.0, 4.0, 3.0]])  # best: top right
    assert best_at_edge(grid, ("ρ", "α")) == ["ρ", "α"]
    grid[1, 1] = 0.1
    assert best_at_edge(grid) == []
    assert best_at_edge([np.inf, 2.0, 1.0, np.nan]) == []  # best inside: the 4th diverged
    assert best_at_edge([1.0, 2.0]) == []  # two values: no inside to compare with
    fig = viz.heatmap_figure(
        np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [3, 4, 5]]),
        [1e-4, 1e-3, 0.01],
        [0.0, 0.5, 0.9],
        xlabel="α",
        ylabel="ρ",
        title="H",
    )
    assert any(EDGE_NOTE in t.get_text() for t in fig.axes[0].texts)
    fig = viz.sweep_figure(
        {"sgd": (np.array([0.01, 0.1, 1.0]), np.array([3.0, 2.0, 1.0]), np.zeros(3, bool))}
    )
    assert EDGE_NOTE in fig.legends[0].get_texts()[0].get_text()  # beside the panel


def test_heatmaps_compared_share_one_color_scale():
    a, b = np.array([[1e-3, 1.0]]), np.array([[1e-1, 10.0]])
    norm = viz.log_norm_for(a, b)
    figs = [
        viz.heatmap_figure(v, [1, 2], [0], xlabel="α", ylabel="ρ", title="H", norm=norm)
        for v in (a, b)
    ]
    limits = {fig.axes[0].images[0].get_clim() for fig in figs}
    assert limits == {(1e-3, 10.0)}
    assert [viz.plots.tick_label(v) for v in (1e-5, 4.6e-5, 0.00022, 0.001, 0.046, 1, 0.0)] == [
        "1e-5",
        "4.6e-5",
        "2.2e-4",
        "1e-3",
        "0.046",
        "1",
        "0",
    ]
    # decay rates near 1 keep their digits: 0.9999 is no "1" (it was, on the heatmaps)
    assert [viz.plots.tick_label(v) for v in (0.999, 0.9999, 0.95)] == ["0.999", "0.9999", "0.95"]


def test_drawing_never_touches_pyplot_or_the_backend():
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); import numpy as np; from steplab import viz;"
        "fig = viz.curves_figure([viz.CurvePanel('a', 'x', 'y', {'sgd': ([0, 1], [1, 0])})]);"
        "import sys; assert matplotlib.get_backend() == 'svg', matplotlib.get_backend();"
        "assert 'matplotlib.pyplot' not in sys.modules; print(type(fig).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Figure"


def test_sweep_figure_breaks_lines_at_diverged_settings():
    lrs = np.array([0.01, 0.1, 1.0])
    fig = viz.sweep_figure({"sgd": (lrs, np.array([1.0, 0.1, np.inf]), np.array([0, 0, 1], bool))})
    ax = fig.axes[0]
    y = ax.get_lines()[0].get_ydata()
    assert np.isnan(y[2]) and y[1] == 0.1
    assert "diverged" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert ax.get_legend() is None  # beside the panel, never over a curve


def test_save_writes_every_format(tmp_path):
    fig = viz.curves_figure([viz.CurvePanel("a", "x", "y", {"sgd": ([0, 1], [1, 0])})])
    written = viz.save(fig, tmp_path / "f", ("png", "svg", "pdf"))
    assert [p.suffix for p in written] == [".png", ".svg", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


# -- animation -----------------------------------------------------------------------------


def red_pixels(image):
    """How many pixels are close to Adam's color (vermillion)."""
    from matplotlib.colors import to_rgb

    rgb = np.asarray(image.convert("RGB")).astype(int)
    adam = np.array(to_rgb(viz.color("adam"))) * 255
    return int(np.sum(np.abs(rgb - adam).sum(axis=2) < 60))


def test_animation_writes_a_gif_with_the_asked_frames_and_draws_the_paths(tmp_path):
    panels = [
        viz.AnimatedPanel("After start", ((-1.5, 1.5), (-1.5, 1.5)), 0.5),
        viz.AnimatedPanel("Later", ((-2, 2), (-2, 2)), 2.0),
    ]
    movie = viz.animate(saddle, paths(), panels, tmp_path / "movie", n_frames=9, mp4=False)
    assert [p.name for p in movie.paths] == ["movie.gif"]
    assert viz.gif_frames(movie.paths[0]) == 9 == movie.n_frames
    with Image.open(movie.paths[0]) as gif:
        gif.seek(0)
        first = red_pixels(gif)
        gif.seek(8)
        last = red_pixels(gif)
    assert last > first + 50  # Adam's red line grows over the frames


def test_mp4_exactly_when_ffmpeg_is_there(tmp_path):
    panels = [viz.AnimatedPanel("p", ((-1, 1), (-1, 1)))]
    movie = viz.animate(saddle, paths(), panels, tmp_path / "m", n_frames=3)
    suffixes = [p.suffix for p in movie.paths]
    assert suffixes == ([".gif", ".mp4"] if viz.ffmpeg_available() else [".gif"])
    if viz.ffmpeg_available():
        assert movie.paths[1].read_bytes()[4:8] == b"ftyp"  # an MP4 container


def test_animation_rejects_too_few_frames(tmp_path):
    with pytest.raises(ValueError, match="n_frames"):
        viz.animate(
            saddle,
            paths(),
            [viz.AnimatedPanel("p", ((-1, 1), (-1, 1)))],
            tmp_path / "m",
            n_frames=1,
        )


# -- index page ----------------------------------------------------------------------------


def test_index_page_embeds_figures_with_escaped_captions(tmp_path):
    entries = [
        viz.FigureEntry("a.png", "A", "x < y & z", section="S", also=["a.svg"]),
        viz.FigureEntry("m.mp4", "Movie", "frames"),
    ]
    page = viz.write_index(tmp_path, entries, title="T").read_text()
    assert '<img src="a.png"' in page and '<video src="m.mp4"' in page
    assert "x &lt; y &amp; z" in page and '<a href="a.svg">SVG</a>' in page
    assert "<h2>S</h2>" in page


def test_surface_paths_end_inside_the_box_and_the_legend_sits_outside():
    t = np.linspace(0, 1, 30)[:, None]
    escaping = {"sgd": np.hstack([1 - t, 3 * t]), "adam": np.hstack([1 - t, 0 * t])}
    fig = viz.surface_figure(saddle, escaping, ((-1, 1), (-1, 1)))
    ax = fig.axes[0]
    assert ax.name == "3d"
    assert legend_texts(fig) == ["SGD", "Adam", "start"]
    assert ax.get_legend() is None  # the figure's legend, outside the 3-D box
    sgd_line = ax.get_lines()[0]
    xs, ys, _ = sgd_line.get_data_3d()
    assert len(xs) == 10 and np.all(np.abs(ys) <= 1)  # ends where y leaves [−1, 1]


def test_index_page_fits_a_1280_px_screen(tmp_path):
    """A lecture-hall screen: the page with a demo-wide summary table is no wider than
    1280 px (the table scrolls in its own box), checked in a real browser."""
    import os
    import shutil

    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium not found; CI must run the browser tests")
        pytest.skip("Chromium not found (Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    cells = "".join(f"<th>a long column heading {i}</th>" for i in range(14))
    row = (
        "<tr><td>sensitivity (best α = 0.0032, at the grid's edge: widen it)</td>"
        + "".join(f"<td>{1234567.891 * i:.6g}</td>" for i in range(13))
        + "</tr>"
    )
    table = f"<table><tr>{cells}</tr>{row * 5}</table>"
    entries = [viz.FigureEntry("a.png", "A", "caption " * 80)]
    path = viz.write_index(tmp_path, entries, title="T", table_html=table)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(path.as_uri())
        width = page.evaluate("document.documentElement.scrollWidth")
        table_width = page.evaluate("document.querySelector('table').scrollWidth")
        browser.close()
    assert width <= 1280 < table_width, (width, table_width)
