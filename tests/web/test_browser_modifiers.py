"""End-to-end: a modifier added to an optimizer in the page (Debian's Chromium through
Playwright) changes the run drawn, which is the command line's ``adam+cautious`` /
``adam+ema:decay=…``, stepped here with the NumPy core."""

from __future__ import annotations

import numpy as np
import pytest

from steplab import problems
from steplab.cli.spec import parse

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def wait_for_new_run(page, before):
    page.wait_for_function(f"window.steplab.runs > {before} && !window.steplab.busy")


def adam_run(page):
    return next(r for r in page.evaluate("window.steplab.result.runs") if r["name"] == "adam")


def spec_path(spec, start, steps):
    """The CLI's parsed optimizer from ``start`` on the default problem, at its evaluation
    point where it has one (as the page draws it)."""
    problem = problems.get("rosenbrock")
    optimizer = parse(spec).optimizer
    theta = np.array(start, dtype=float)
    state = optimizer.init(theta)
    shown = getattr(optimizer, "eval_params", lambda t, s: t.copy())
    path = [theta.copy()]
    for _ in range(steps):
        optimizer.step(theta, problem.grad(theta), state)
        path.append(shown(theta, state))
    return np.array(path)


def test_adding_a_modifier_changes_the_run_and_is_kept_in_the_link(page, tmp_path):
    page.goto(page.base_url + "/")
    page.wait_for_function("window.steplab.runs >= 1 && !window.steplab.busy")
    steps = page.evaluate("window.steplab.result.steps")
    start = page.evaluate("window.steplab.result.start")
    lr = page.evaluate("window.steplab.state.opts.adam.hp.lr")
    plain = adam_run(page)["path"]
    options = page.locator("select[data-modifier=adam] option").all_inner_texts()
    assert options[0] == "add…" and {"cautious", "ema", "swa", "lookahead"} <= set(options)

    before = page.evaluate("window.steplab.runs")
    page.select_option("select[data-modifier=adam]", "cautious")
    wait_for_new_run(page, before)
    run = adam_run(page)
    assert run["label"].startswith("adam+cautious")
    np.testing.assert_array_equal(run["path"], spec_path(f"adam+cautious:lr={lr!r}", start, steps))
    assert run["path"] != plain
    assert "Adam+cautious" in page.inner_text("#legend")

    # An EMA on top, with a setting typed in: drawn at the average, as minimize judges it.
    before = page.evaluate("window.steplab.runs")
    page.select_option("select[data-modifier=adam]", "ema")
    wait_for_new_run(page, before)
    before = page.evaluate("window.steplab.runs")
    page.fill("input[data-modifier-setting='adam.ema.decay']", "0.8")
    page.press("input[data-modifier-setting='adam.ema.decay']", "Enter")
    wait_for_new_run(page, before)
    expected = spec_path(f"adam+cautious+ema:lr={lr!r},decay=0.8", start, steps)
    np.testing.assert_array_equal(adam_run(page)["path"], expected)
    assert f"Adam+cautious+ema α={lr:.3g}" in page.inner_text("#legend")
    page.screenshot(path=str(tmp_path / "weblab-modifiers.png"), full_page=True)

    # A bad setting: the server's message, next to the optimizer.
    page.fill("input[data-modifier-setting='adam.ema.decay']", "2")
    page.press("input[data-modifier-setting='adam.ema.decay']", "Enter")
    page.wait_for_function("window.steplab.errors['error-adam']")
    assert "decay" in page.inner_text("#error-adam")
    page.fill("input[data-modifier-setting='adam.ema.decay']", "0.8")
    before = page.evaluate("window.steplab.runs")
    page.press("input[data-modifier-setting='adam.ema.decay']", "Enter")
    wait_for_new_run(page, before)

    # The link keeps the modifiers; removing them gives the plain run back.
    other = page.context.new_page()
    other.goto(page.evaluate("location.href"))
    other.wait_for_function("window.steplab.runs >= 1 && !window.steplab.busy")
    np.testing.assert_array_equal(adam_run(other)["path"], expected)
    for name in ("ema", "cautious"):
        before = other.evaluate("window.steplab.runs")
        other.click(f"button[aria-label='Adam remove {name}']")
        wait_for_new_run(other, before)
    assert adam_run(other)["path"] == plain
    assert [e for e in page.errors if "status of 422" not in e] == []
