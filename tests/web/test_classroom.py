"""The web lab in a classroom (issue 25): what a lecturer and a student meet at 1280 × 800
and 1920 × 1080 in a real Chromium, plus the request models' messages and the generated
palette behind it.

Each browser test loads the page once and walks through several checks (a page load costs
seconds on a loaded machine). The accessibility audit is axe-core (vendored in
``tests/web/assets/``, MPL-2.0) plus Chromium's own accessibility tree.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from steplab import optim
from steplab.viz import palette
from steplab.web import assets

AXE = Path(__file__).parent / "assets" / "axe.min.js"
SIZE = 560  # the contour plot's viewBox (app.js)
CONTROL_ROLES = {"spinbutton", "textbox", "slider", "combobox", "checkbox", "button", "link"}

BOWL = {"expression": "x**2 + 10*y**2"}


# -- without a browser: the palette file and the request models ------------------------------


def test_palette_js_is_generated_from_the_palette():
    """static/palette.js is steplab.viz.palette: regenerate it when the palette changes."""
    text = assets.PALETTE_JS.read_text(encoding="utf-8")
    assert text == assets.palette_script(), "run: python -m steplab.web.assets"
    table = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert list(table) == list(optim.OPTIMIZERS)
    for name, entry in table.items():
        assert entry == {
            "color": palette.color(name),
            "marker": palette.marker(name),
            "label": palette.pretty(name),
        }
    # Every optimizer has its own marker, so two close colours (Lion's navy and SGD's black,
    # RAdam / AdamW / Nadam's browns) stay apart.
    markers = [entry["marker"] for entry in table.values()]
    assert len(set(markers)) == len(markers)


def post(client, path, body):
    response = client.post(path, json=body)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "optimizer, message",
    [
        ({"name": "adam", "hyperparameters": {"lr": -1}}, "Adam: lr must be in (0, inf)"),
        ({"name": "rmsprop", "hyperparameters": {"rho": 2}}, "RMSProp: rho must be in"),
        ({"name": "lion", "hyperparameters": {"lr": True}}, "Lion: lr must be a number"),
        ({"name": "adamw", "hyperparameters": {"rho": 0.5}}, "AdamW: "),
        ({"name": "radam", "preset": "jax"}, "RAdam has no preset 'jax'"),
    ],
)
def test_a_bad_optimizer_setting_is_named_by_the_optimizer(client, optimizer, message):
    body = {"problem": BOWL, "optimizers": [{"name": "sgd"}, optimizer], "steps": 3}
    status, data = post(client, "/api/run", body)
    assert status == 422
    assert message in data["message"]
    assert data["detail"][0]["msg"].startswith(message)  # the page shows this part
    assert data["detail"][0]["loc"][:3] == ["body", "optimizers", 1]


def test_a_grid_over_given_bounds_keeps_the_problems_own_box(client):
    status, data = post(
        client,
        "/api/grid",
        {"problem": {"name": "rosenbrock", "bounds": [[0, 1], [0.5, 1.5]]}, "resolution": 11},
    )
    assert status == 200
    assert data["problem"]["bounds"] == [[0, 1], [0.5, 1.5]]
    assert data["problem"]["full_bounds"] == [[-2, 2], [-1, 3]]
    assert data["grid"]["x"][0] == 0 and data["grid"]["x"][-1] == 1
    assert data["grid"]["y"][0] == 0.5 and data["grid"]["y"][-1] == 1.5
    # f(1, 1) = 0 is the grid's corner value, computed there.
    assert data["grid"]["z"][5][10] == pytest.approx(0.0)
    status, data = post(client, "/api/grid", {"problem": {"name": "rosenbrock"}})
    assert data["problem"]["bounds"] == data["problem"]["full_bounds"] == [[-2, 2], [-1, 3]]


@pytest.mark.parametrize(
    "bounds, message",
    [
        ([[1, 0], [0, 1]], "x bounds must be [low, high] with low < high"),
        ([[0, 1], [2, 2]], "y bounds must be [low, high]"),
        ([[0, 1e9], [0, 1]], "within"),
        ([[0, 1]], "at least 2"),
    ],
)
def test_bad_bounds_are_refused(client, bounds, message):
    status, data = post(client, "/api/grid", {"problem": {**BOWL, "bounds": bounds}})
    assert status == 422 and message in data["message"], data["message"]
    assert "problem.bounds" in data["message"]


# -- in the browser ----------------------------------------------------------------------------


def open_page(browser, live_server, width, height, url=None):
    context = browser.new_context(
        viewport={"width": width, "height": height}, bypass_csp=True, accept_downloads=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    page.goto(url or live_server + "/")
    page.wait_for_function("window.steplab.runs >= 1 && !window.steplab.busy")
    return page


def after(page, action, what="runs"):
    """Do ``action`` and wait until a new run (or sweep) has been drawn."""
    before = page.evaluate(f"window.steplab.{what}")
    action()
    page.wait_for_function(f"window.steplab.{what} > {before} && !window.steplab.busy")


def path_pixels(page):
    """Every drawn trajectory point, in the plot's 560-pixel box."""
    lines = page.locator("polyline.trajectory").evaluate_all(
        "ls => ls.map(l => l.getAttribute('points'))"
    )
    return np.array([p.split(",") for line in lines for p in line.split()], dtype=float)


def test_scenes_frames_speed_divergence_markers_step_sizes_export_and_url(browser, live_server):
    page = open_page(browser, live_server, 1280, 800)

    # The quadratic scene's paths fill the box (in the formula's own [-3, 3]² box they
    # took a band of 0.2 of its height).
    after(page, lambda: page.click("button[data-scene=quadratic]"))
    pixels = path_pixels(page)
    spans = (pixels.max(0) - pixels.min(0)) / SIZE
    assert spans.min() >= 0.6, spans
    full = page.evaluate("window.steplab.grid.problem.full_bounds")
    assert full == [[-3, 3], [-3, 3]]
    assert page.evaluate("window.steplab.state.bounds") == page.evaluate(
        "window.steplab.grid.problem.bounds"
    )
    note = page.inner_text("#scene-note")
    assert note.startswith("½θᵀAθ")

    # Distinct colours and markers: each path and its loss curve carry the palette's marker.
    drawn = page.locator("path.head").evaluate_all(
        "ms => ms.map(m => [m.dataset.optimizer, m.dataset.marker, m.getAttribute('fill')])"
    )
    assert sorted(drawn) == sorted(
        [n, palette.marker(n), palette.color(n)] for n in ("sgd", "momentum", "adam")
    )
    assert page.locator("#loss path.chart-marker").count() >= 3 * 4
    assert page.locator("#legend svg path[data-marker]").count() == 3

    # A newly ticked optimizer starts at the scene's step size (Lion: Adam's 0.09, not its
    # library default 1e-4), and its path is no dot.
    after(page, lambda: page.check("input[data-optimizer=lion]"))
    assert page.evaluate("window.steplab.state.opts.lion.hp.lr") == 0.09
    assert optim.make("lion").lr == 1e-4
    lion = page.evaluate("window.steplab.result.runs.find(r => r.name === 'lion').path")
    (x0, x1), (y0, y1) = page.evaluate("window.steplab.grid.problem.bounds")
    assert np.ptp(np.array(lion)[:, 0]) > 0.3 * (x1 - x0)
    # The scene's note stays while the scene's optimizers are on; another optimizer's tick
    # makes a different view, and the note goes.
    assert page.inner_text("#scene-note") == ""

    # A diverged run (SGD at α = 2.5 > 2/L on y²/2) is clipped and marked: the loss axis
    # keeps the range of the others instead of reaching 1e28.
    after(page, lambda: enter(page, "input[data-hyper-field='sgd.lr']", "2.5"))
    sgd = page.evaluate("window.steplab.result.runs.find(r => r.name === 'sgd')")
    assert max(v for v in sgd["loss"] if v is not None) > 1e20
    ticks = page.locator("#loss text.tick").evaluate_all("ts => ts.map(t => t.textContent)")
    top = max(float(t) for t in ticks if t.startswith("1e"))
    assert top <= 10
    assert page.locator("#loss path.diverged[data-optimizer=sgd]").count() == 1
    # On the plot its path stops at that step, ends in a ✕, and does not stretch the frame.
    when = int(re.search(r"diverged at step (\d+)", page.inner_text("#legend")).group(1))
    drawn = page.get_attribute("polyline.trajectory[data-optimizer=sgd]", "data-points")
    assert int(drawn) <= when + 1 < len(sgd["path"])
    assert page.locator("#paths path.diverged[data-optimizer=sgd]").count() == 1
    (_, _), (y0, y1) = page.evaluate("window.steplab.grid.problem.bounds")
    assert y1 - y0 < 0.5 * 6  # the quadratic's own box is 6 high
    assert re.search(r"SGD α=2\.5: diverged at step \d+", page.inner_text("#legend"))
    assert "diverged: SGD" in page.inner_text("#status")

    # A newly ticked optimizer outside a scene: the step size of this view's own sweep,
    # not RMSProp's library default 1e-3.
    after(page, lambda: page.select_option("#problem", "rosenbrock"))
    assert page.inner_text("#scene-note") == ""
    after(page, lambda: page.check("input[data-optimizer=rmsprop]"))
    lr = page.evaluate("window.steplab.state.opts.rmsprop.hp.lr")
    grid = [float(f"{v:.2g}") for v in np.geomspace(1e-4, 1, 13)]
    assert lr in grid and lr != optim.make("rmsprop").lr
    assert "sweep" in page.evaluate("window.steplab.suggested.rmsprop.why")

    # Play: the default speed shows the 150-step saddle race over 8 s, not in one.
    after(page, lambda: page.click("button[data-scene=saddle]"))
    page.click("#play")
    page.wait_for_timeout(1000)
    frame = page.evaluate("window.steplab.frame")
    assert 5 <= frame <= 150 * 2.5 / 8, frame
    page.click("#play")  # pause
    assert page.inner_text("#play") == "Play"

    # The URL holds the whole view: scene, frame, speed, sweep.
    page.select_option("#speed", "20")
    page.fill("#points", "5")
    page.dispatch_event("#points", "change")
    after(page, lambda: page.click("#sweep-run"), "sweeps")
    url = page.evaluate("location.href")
    shown = page.evaluate(
        "[window.steplab.frame, window.steplab.sweep.results, window.steplab.grid.problem.bounds]"
    )
    other = page.context.new_page()
    other.goto(url)
    other.wait_for_function("window.steplab.sweeps >= 1 && !window.steplab.busy")
    assert other.inner_text("#scene-note") == page.inner_text("#scene-note") != ""
    assert other.input_value("#speed") == "20"
    assert (
        other.evaluate(
            "[window.steplab.frame, window.steplab.sweep.results,"
            " window.steplab.grid.problem.bounds]"
        )
        == shown
    )

    # A projector-size PNG with axes and ticks.
    data = page.evaluate("window.steplab.exportPNG()")
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1])))
    assert image.size == (1920, 1080)
    ticks = page.evaluate("window.steplab.lastExport")
    assert len(ticks["xTicks"]) >= 4 and len(ticks["yTicks"]) >= 4
    pixels = np.asarray(image.convert("L"), dtype=float)
    below_plot = pixels[110 + 860 + 12 : 110 + 860 + 40, 150 : 150 + 860]
    assert (below_plot < 128).sum() > 100  # the tick labels are drawn under the plot
    assert page.errors == [] and other_errors(other) == []


def other_errors(page):
    return page.evaluate("Object.values(window.steplab.errors).filter(Boolean)")


def enter(page, selector, value):
    page.fill(selector, value)
    page.press(selector, "Enter")


def tab_presses_to(page, target_id, limit=120):
    """Tab presses from the top of a fresh page until ``target_id`` has the focus."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == target_id:
            return presses
    return math.inf


def accessibility_tree(page):
    session = page.context.new_cdp_session(page)
    nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    return [n for n in nodes if not n.get("ignored")]


def unnamed_controls(page):
    return [
        n["role"]["value"]
        for n in accessibility_tree(page)
        if n.get("role", {}).get("value") in CONTROL_ROLES
        and not (n.get("name", {}).get("value") or "").strip()
    ]


def axe_violations(page):
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate(
        "axe.run(document).then(r => r.violations.map(v =>"
        " [v.id, v.nodes.length, v.nodes.map(n => n.target.join(' ')).slice(0, 3)]))"
    )


def test_keyboard_labels_and_an_accessibility_audit(browser, live_server):
    page = open_page(browser, live_server, 1920, 1080)
    # Play, Sweep and Export in two to four keystrokes: Tab to its jump link (the first
    # three stops of the page), Enter.
    for jump in range(3):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == f"skip-{jump}"
        assert page.locator(f"#skip-{jump}").bounding_box()["x"] >= 0  # on screen when focused
    for jump, target in enumerate(["play", "sweep-run", "export-png"]):
        page.focus(f"#skip-{jump}")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == target
    page.keyboard.press("Enter")  # on Export: a download, no error
    # Access keys too.
    assert page.get_attribute("#play", "accesskey") == "p"
    assert page.get_attribute("#sweep-run", "accesskey") == "w"
    assert page.get_attribute("#export-png", "accesskey") == "e"

    # The start point by keyboard: two labelled fields.
    page.focus("#start-x")
    page.keyboard.press("Control+A")
    page.keyboard.type("-1.5")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    after(page, lambda: page.keyboard.press("Enter"))
    assert page.evaluate("window.steplab.result.start") == [-1.5, 2]

    # Every control has a name, every chart a text alternative that names what it shows.
    page.check("#show-step-size")
    after(page, lambda: page.click("#sweep-run"), "sweeps")
    assert unnamed_controls(page) == []
    images = {
        n.get("name", {}).get("value", "")
        for n in accessibility_tree(page)
        if n.get("role", {}).get("value") in ("image", "img")
    }
    for chart in ("#paths", "#loss", "#step-size", "#sweep"):
        name = page.get_attribute(chart, "aria-label")
        assert name in images
        assert "Adam" in name and "RMSProp" in name, (chart, name)
    assert "(-1.5, 2)" in page.get_attribute("#paths", "aria-label")
    # axe-core (WCAG 2 A/AA and best practices) finds nothing, also with an error shown.
    enter(page, "input[data-hyper-field='adam.lr']", "-1")
    page.wait_for_function("window.steplab.errors['error-adam']")
    assert axe_violations(page) == []
    assert [e for e in page.errors if "status of 422" not in e] == []
