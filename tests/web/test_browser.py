"""End-to-end: the web lab in a real, headless Chromium (Debian's, driven by Playwright).

The page exposes its state and last results on ``window.steplab``; the tests act like a
user (click the plot, tick boxes, drag a slider, type a formula) and check what is drawn
(the SVG trajectories) against numbers computed here with steplab's NumPy core.
"""

from __future__ import annotations

import numpy as np
import pytest

import steplab as sl
from steplab import problems

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZE = 560  # the contour plot's size in pixels (app.js)


def open_lab(page, url=None):
    page.goto(url or page.base_url + "/")
    page.wait_for_function("window.steplab.runs >= 1 && !window.steplab.busy")


def enter(page, selector, value):
    """Type ``value`` into a field and press Enter, as a user confirms it."""
    page.fill(selector, value)
    page.press(selector, "Enter")


def wait_for_new_run(page, before):
    page.wait_for_function(f"window.steplab.runs > {before} && !window.steplab.busy")


def runs(page):
    return {r["name"]: r for r in page.evaluate("window.steplab.result.runs")}


def reference_path(optimizer, start, steps):
    """The same run, computed here with the NumPy core and the problem's gradient."""
    problem = problems.get("rosenbrock")
    theta = np.array(start, dtype=float)
    state = optimizer.init(theta)
    path = [theta.copy()]
    for _ in range(steps):
        optimizer.step(theta, problem.grad(theta), state)
        path.append(theta.copy())
    return np.array(path)


def test_click_toggle_change_step_size_and_screenshot(page, tmp_path):
    open_lab(page)
    lines = page.locator("polyline.trajectory")
    assert sorted(lines.evaluate_all("ls => ls.map(l => l.dataset.optimizer)")) == [
        "adagrad",
        "adam",
        "rmsprop",
    ]

    # Click a start point at a quarter of the plot's width and three quarters of its height
    # (the plot scales with the window and is framed to the paths: its box says where).
    (x0, x1), (y0, y1) = page.evaluate("window.steplab.grid.problem.bounds")
    before = page.evaluate("window.steplab.runs")
    box = page.locator("#paths").bounding_box()
    page.locator("#paths").click(position={"x": box["width"] / 4, "y": box["height"] * 3 / 4})
    wait_for_new_run(page, before)
    start = page.evaluate("window.steplab.result.start")
    assert start == pytest.approx([x0 + (x1 - x0) / 4, y1 - 3 * (y1 - y0) / 4], abs=0.02)
    assert page.input_value("#start-x") == f"{start[0]:.4g}"
    for run in runs(page).values():
        assert run["path"][0] == start

    # Toggle optimizers: SGD on, AdaGrad off.
    before = page.evaluate("window.steplab.runs")
    page.check("input[data-optimizer=sgd]")
    page.uncheck("input[data-optimizer=adagrad]")
    wait_for_new_run(page, before)
    page.wait_for_function("Object.keys(window.steplab.state.opts).join() === 'rmsprop,adam,sgd'")
    page.wait_for_function("window.steplab.result.runs.length === 3 && !window.steplab.busy")
    drawn = lines.evaluate_all("ls => ls.map(l => l.dataset.optimizer)")
    assert sorted(drawn) == ["adam", "rmsprop", "sgd"]

    # Change step sizes: type SGD's, drag Adam's log-scale slider to 10^-1.5.
    before = page.evaluate("window.steplab.runs")
    enter(page, "input[data-hyper-field='sgd.lr']", "0.001")
    page.fill("input[data-hyper='adam.lr']", "-1.5")
    wait_for_new_run(page, before)
    page.wait_for_function(
        "(() => { const r = window.steplab.result.runs;"
        " return r.find(x => x.name === 'adam').config.lr === 0.0316"
        " && r.find(x => x.name === 'sgd').config.lr === 0.001; })()"
    )
    result = runs(page)
    steps = page.evaluate("window.steplab.result.steps")
    for name, optimizer in [("sgd", sl.SGD(lr=0.001)), ("adam", sl.Adam(lr=0.0316))]:
        expected = reference_path(optimizer, start, steps)
        np.testing.assert_allclose(result[name]["path"], expected, rtol=1e-9, atol=1e-12)

    # What is drawn is that path: the polyline's points are the iterates in pixels.
    points = page.locator("polyline.trajectory[data-optimizer=sgd]").get_attribute("points")
    pixels = np.array([p.split(",") for p in points.split()], dtype=float)
    expected = reference_path(sl.SGD(lr=0.001), start, steps)
    (x0, x1), (y0, y1) = page.evaluate("window.steplab.grid.problem.bounds")
    want = np.stack(
        [(expected[:, 0] - x0) / (x1 - x0) * SIZE, SIZE - (expected[:, 1] - y0) / (y1 - y0) * SIZE],
        1,
    )
    np.testing.assert_allclose(pixels, want, atol=0.06)

    shot = tmp_path / "weblab.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert page.errors == []


def test_player_step_sizes_sweep_and_export(page, tmp_path):
    open_lab(page)
    steps = page.evaluate("window.steplab.result.steps")
    assert page.evaluate("window.steplab.frame") == steps
    page.click("#step-back")
    page.click("#step-back")
    assert page.evaluate("window.steplab.frame") == steps - 2
    assert page.inner_text("#frame-label") == f"step {steps - 2} / {steps}"
    count = page.locator("polyline.trajectory[data-optimizer=adam]").get_attribute("data-points")
    assert int(count) == steps - 1  # the start and steps − 2 iterates
    page.click("#play")  # at the end it starts over from step 0, then plays to the end
    page.wait_for_function(f"window.steplab.frame === {steps}", timeout=20_000)
    assert page.inner_text("#play") == "Play"

    # Effective step sizes on demand: two curves (x solid, y dashed) per optimizer.
    assert page.locator("#step-size").get_attribute("hidden") is not None
    page.check("#show-step-size")
    assert page.locator("#step-size").get_attribute("hidden") is None
    assert page.locator("#step-size path[data-optimizer]").count() == 6

    # The sweep: one curve per optimizer, and the numbers are those of the API.
    page.fill("#points", "6")
    page.dispatch_event("#points", "change")
    page.click("#sweep-run")
    page.wait_for_function("window.steplab.sweeps >= 1")
    sweep = page.evaluate("window.steplab.sweep")
    assert len(sweep["lrs"]) == 6 and [r["name"] for r in sweep["results"]] == [
        "adagrad",
        "rmsprop",
        "adam",
    ]
    assert page.locator("#sweep path[data-optimizer]").count() == 3

    # Exports: a PNG, a CSV with one row per iterate, a JSON with the state.
    assert page.evaluate("window.steplab.exportPNG()").startswith("data:image/png;base64,")
    with page.expect_download() as download:
        page.click("#export-csv")
    csv = tmp_path / "runs.csv"
    download.value.save_as(csv)
    rows = csv.read_text().strip().splitlines()
    assert rows[0].startswith("optimizer,preset,label,step,x,y,loss")
    assert len(rows) == 1 + 3 * (steps + 1)
    with page.expect_download() as download:
        page.click("#export-json")
    assert download.value.suggested_filename == "steplab-runs.json"
    assert page.errors == []


def test_formula_errors_inline_and_the_url_restores_the_view(page):
    open_lab(page)
    view = "[window.steplab.grid.problem.description, window.steplab.grid.problem.bounds,"
    view += " window.steplab.result.runs.map(r => r.path),"
    view += " document.querySelector('#problem').value,"
    view += " document.querySelectorAll('polyline.trajectory').length,"
    view += " document.querySelectorAll('#loss path[data-optimizer]').length]"
    shown = page.evaluate(view)
    page.fill("#expression", "x**2 + import os")
    page.click("#expression-apply")
    page.wait_for_function("window.steplab.errors['problem-error']")
    # The message is next to the formula field and in the header; nothing else changed:
    # the old contours, paths, loss curves, header and problem select all stay.
    assert "problem.expression" in page.inner_text("#problem-error")
    assert "still shows" in page.inner_text("#status")
    assert page.get_attribute("#expression", "aria-invalid") == "true"
    assert page.evaluate(view) == shown
    near = page.locator("#problem-error").bounding_box()
    field = page.locator("#expression").bounding_box()
    assert 0 <= near["y"] - field["y"] < 120

    before = page.evaluate("window.steplab.runs")
    page.fill("#expression", "x**2 + 10*y**2")
    page.click("#expression-apply")
    wait_for_new_run(page, before)
    assert page.inner_text("#problem-error") == ""
    assert page.get_attribute("#expression", "aria-invalid") is None
    assert page.evaluate("window.steplab.grid.problem.description") == "f = x**2 + 10*y**2"

    # A bad step size: the message names the optimizer, sits in its box next to the field,
    # and is repeated in the header; the last good run stays drawn.
    paths = page.evaluate("window.steplab.result.runs.map(r => r.path)")
    enter(page, "input[data-hyper-field='adam.lr']", "-1")
    page.wait_for_function("window.steplab.errors['error-adam']")
    message = page.inner_text("#error-adam")
    assert message.startswith("Adam: lr must be in (0, inf)") and "optimizers." not in message
    assert page.inner_text("#status").startswith("✗ Adam: lr must be in (0, inf)")
    assert page.get_attribute("input[data-hyper-field='adam.lr']", "aria-invalid") == "true"
    near = page.locator("#error-adam").bounding_box()
    field = page.locator("input[data-hyper-field='adam.lr']").bounding_box()
    assert 0 < field["y"] - near["y"] < 150  # just above the optimizer's fields
    assert page.evaluate("window.steplab.result.runs.map(r => r.path)") == paths
    assert page.locator("polyline.trajectory").count() == 3
    before = page.evaluate("window.steplab.runs")
    enter(page, "input[data-hyper-field='adam.lr']", "0.2")
    wait_for_new_run(page, before)
    assert page.inner_text("#error-adam") == ""
    assert page.get_attribute("input[data-hyper-field='adam.lr']", "aria-invalid") is None

    # The URL holds the state: opening it elsewhere shows the same runs.
    url = page.evaluate("location.href")
    expected = page.evaluate("window.steplab.result.runs.map(r => r.path)")
    other = page.context.new_page()
    open_lab(other, url)
    assert other.evaluate("window.steplab.state.expr") == "x**2 + 10*y**2"
    assert other.evaluate("window.steplab.result.runs.map(r => r.path)") == expected
    assert other.input_value("input[data-hyper-field='adam.lr']") == "0.2"
    # Chromium logs each 4xx response as a console error; those two were wanted.
    unexpected = [e for e in page.errors if "status of 422" not in e]
    assert unexpected == [] and len(page.errors) == 2


# -- layout, ticks and the lecture's scenes ---------------------------------------------------


def boxes(page, selector):
    return page.locator(selector).evaluate_all(
        "els => els.map(e => { const b = e.getBoundingClientRect();"
        " return [b.left, b.top, b.right, b.bottom, e.textContent]; })"
    )


def assert_no_overlap(labels):
    """No two tick labels' boxes intersect (a smear of decades would)."""
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)


@pytest.mark.parametrize("width, height", [(1280, 800), (1920, 1080)])
def test_layout_puts_the_chart_beside_the_plot_with_readable_ticks(
    browser, live_server, width, height, tmp_path
):
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/")
    page.wait_for_function("window.steplab.runs >= 1 && !window.steplab.busy")
    plot = page.locator("#paths").bounding_box()
    loss = page.locator("#loss").bounding_box()
    # Beside the plot, not below it, and all of it above the fold.
    assert loss["x"] >= plot["x"] + plot["width"]
    assert loss["y"] < plot["y"] + plot["height"] / 2
    assert loss["y"] + loss["height"] <= height and plot["y"] + plot["height"] <= height
    assert loss["width"] >= 300  # wide enough to read
    # The contour plot has axis ticks, and no chart's tick labels overlap.
    assert page.locator("#paths text.x-tick").count() >= 3
    assert page.locator("#paths text.y-tick").count() >= 3
    assert_no_overlap(boxes(page, "#paths text.tick"))
    # A loss falling through dozens of decades: a few labelled decades, not one per decade.
    before = page.evaluate("window.steplab.runs")
    page.fill("#expression", "x**2 + 10*y**2")
    page.click("#expression-apply")
    wait_for_new_run(page, before)
    before = page.evaluate("window.steplab.runs")
    enter(page, "#steps", "2000")  # committed: leaving the field later changes nothing
    wait_for_new_run(page, before)
    losses = [v for r in runs(page).values() for v in r["loss"] if v and v > 0]
    assert np.log10(max(losses)) - np.log10(min(losses)) > 20  # many decades to label
    ticks = boxes(page, "#loss text.tick")
    assert 3 <= sum(t[4].startswith("1e") for t in ticks) <= 7, ticks
    assert_no_overlap(ticks)
    page.check("#show-step-size")
    assert_no_overlap(boxes(page, "#step-size text.tick"))
    page.click("#sweep-run")
    page.wait_for_function("window.steplab.sweeps >= 1")
    assert_no_overlap(boxes(page, "#sweep text.tick"))
    page.screenshot(path=str(tmp_path / f"weblab-{width}.png"))
    assert errors == []
    context.close()


def test_lecture_scenes_set_up_the_lectures_comparisons(page):
    open_lab(page)
    scenes = {
        "saddle": (
            {"sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam"},
            [1, 0.001],
            150,
        ),
        "quadratic": ({"sgd", "momentum", "adam"}, [-2.7, 0.45], 80),
        "decay": ({"adagrad", "rmsprop"}, [-1.2, 1.0], 2000),
    }
    for scene, (names, start, steps) in scenes.items():
        before = page.evaluate("window.steplab.runs")
        page.click(f"button[data-scene={scene}]")
        wait_for_new_run(page, before)
        result = runs(page)
        assert set(result) == names, scene
        assert page.evaluate("window.steplab.result.start") == pytest.approx(start)
        assert page.evaluate("window.steplab.result.steps") == steps
        assert page.locator("polyline.trajectory").count() == len(names)
        assert page.inner_text("#scene-note")
    # The quadratic scene: SGD at α = 1.8 flips θ₂'s sign every step (the zig-zag), as the
    # NumPy core does on the same formula.
    page.click("button[data-scene=quadratic]")
    page.wait_for_function(
        "window.steplab.result && window.steplab.result.steps === 80 && !window.steplab.busy"
    )
    path = np.array(runs(page)["sgd"]["path"], dtype=float)
    assert np.all(np.sign(path[1:20, 1]) == -np.sign(path[:19, 1]))
    reference = sl.minimize(
        sl.problems.expression("x**2/100 + y**2/2"),
        sl.SGD(lr=1.8),
        steps=80,
        x0=[-2.7, 0.45],
        record_every=1,
        record_dim=2,
    )
    np.testing.assert_allclose(path, reference.history["x"], rtol=1e-9, atol=1e-12)
    # The saddle scene: the loss goes to −1e34 and is drawn on a signed log axis.
    page.click("button[data-scene=saddle]")
    page.wait_for_function(
        "window.steplab.result && window.steplab.result.steps === 150 && !window.steplab.busy"
    )
    assert "signed log" in page.locator("#loss").text_content()
    assert page.errors == []


def test_a_schedule_for_the_step_size_changes_the_run(browser, live_server, tmp_path):
    # At 1280 px, the narrowest layout the lab is made for.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_lab(page, live_server + "/")
    steps = page.evaluate("window.steplab.result.steps")
    start = page.evaluate("window.steplab.result.start")
    lr = page.evaluate("window.steplab.state.opts.adam.hp.lr")
    constant = runs(page)["adam"]["path"]
    assert page.input_value("select[data-schedule=adam]") == "constant"
    labels = page.locator("select[data-schedule=adam] option").all_inner_texts()
    assert labels == ["constant", "1/√t", "step decay", "cosine", "warm-up + cosine"]

    # Cosine: its parameters appear, defaults from the run (decay over all its steps).
    before = page.evaluate("window.steplab.runs")
    page.select_option("select[data-schedule=adam]", "cosine")
    wait_for_new_run(page, before)
    assert page.input_value("input[data-schedule-param='adam.decay_steps']") == str(steps)
    assert page.input_value("input[data-schedule-param='adam.alpha']") == "0"
    adam = runs(page)["adam"]
    assert adam["config"]["lr"] == {
        "schedule": "cosine_decay_schedule",
        "init_value": lr,
        "decay_steps": steps,
        "alpha": 0.0,
    }
    expected = reference_path(
        sl.Adam(lr=sl.schedules.cosine_decay_schedule(lr, steps)), start, steps
    )
    np.testing.assert_allclose(adam["path"], expected, rtol=1e-9, atol=1e-12)
    assert adam["path"] != constant
    assert f"Adam α={lr:.3g} cosine over {steps} steps" in page.inner_text("#legend")

    # A parameter changed in its field: the run follows.
    before = page.evaluate("window.steplab.runs")
    enter(page, "input[data-schedule-param='adam.decay_steps']", "50")
    wait_for_new_run(page, before)
    page.wait_for_function(
        "window.steplab.result.runs.find(r => r.name === 'adam').config.lr.decay_steps === 50"
    )
    expected = reference_path(sl.Adam(lr=sl.schedules.cosine_decay_schedule(lr, 50)), start, steps)
    np.testing.assert_allclose(runs(page)["adam"]["path"], expected, rtol=1e-9, atol=1e-12)

    # Step decay for RMSProp too, and the step-size chart shows the drops.
    before = page.evaluate("window.steplab.runs")
    page.select_option("select[data-schedule=rmsprop]", "step")
    wait_for_new_run(page, before)
    every = int(page.input_value("input[data-schedule-param='rmsprop.transition_steps']"))
    assert every == round(steps / 4)
    rms_lr = page.evaluate("window.steplab.state.opts.rmsprop.hp.lr")
    schedule = sl.schedules.exponential_decay(
        rms_lr, transition_steps=every, decay_rate=0.5, staircase=True
    )
    expected = reference_path(sl.RMSProp(lr=schedule), start, steps)
    np.testing.assert_allclose(runs(page)["rmsprop"]["path"], expected, rtol=1e-9, atol=1e-12)
    page.check("#show-step-size")
    page.screenshot(path=str(tmp_path / "weblab-schedule-1280.png"), full_page=True)
    assert (tmp_path / "weblab-schedule-1280.png").stat().st_size > 20_000
    # The schedule's controls stay inside the controls column.
    column = page.locator("#controls").bounding_box()
    for selector in ("select[data-schedule=adam]", "input[data-schedule-param='adam.alpha']"):
        box = page.locator(selector).bounding_box()
        assert column["x"] <= box["x"] and box["x"] + box["width"] <= column["x"] + column["width"]

    # A bad value: the server's message, inline; then the link restores the schedules.
    enter(page, "input[data-schedule-param='adam.decay_steps']", "0")
    page.wait_for_function("window.steplab.errors['error-adam']")
    assert page.inner_text("#error-adam").startswith("Adam: schedule decay_steps: ")
    before = page.evaluate("window.steplab.runs")
    enter(page, "input[data-schedule-param='adam.decay_steps']", "120")
    wait_for_new_run(page, before)
    url = page.evaluate("location.href")
    expected = page.evaluate("window.steplab.result.runs.map(r => r.path)")
    other = context.new_page()
    open_lab(other, url)
    assert other.input_value("select[data-schedule=adam]") == "cosine"
    assert other.input_value("input[data-schedule-param='adam.decay_steps']") == "120"
    assert other.input_value("select[data-schedule=rmsprop]") == "step"
    assert other.evaluate("window.steplab.result.runs.map(r => r.path)") == expected

    # Back to constant: the first run again.
    before = other.evaluate("window.steplab.runs")
    other.select_option("select[data-schedule=adam]", "constant")
    wait_for_new_run(other, before)
    assert other.locator("input[data-schedule-param^='adam.']").count() == 0
    assert runs(other)["adam"]["path"] == constant
    # Chromium logs the wanted 422 as a console error; nothing else went wrong.
    assert [e for e in errors if "status of 422" not in e] == [] and len(errors) == 1
    context.close()
