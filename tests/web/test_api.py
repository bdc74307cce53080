"""The web lab's JSON API: every endpoint, checked against hand-derived numbers, and its
error paths and limits (bad input → 4xx with a message naming the field)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import steplab as sl
from steplab.web import models

ADAM = {"name": "adam", "hyperparameters": {"lr": 0.1}}
BOWL = {"expression": "x**2 + 10*y**2"}


def post(client, path, body, status=200):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


# -- /api/meta -----------------------------------------------------------------------------


def test_meta_lists_every_optimizer_with_its_hyperparameters(client):
    meta = client.get("/api/meta").json()
    assert [o["name"] for o in meta["optimizers"]] == list(sl.OPTIMIZERS)
    adam = next(o for o in meta["optimizers"] if o["name"] == "adam")
    fields = {h["name"]: h for h in adam["hyperparameters"]}
    assert set(fields) == set(sl.Adam.hyperparameters())
    assert fields["lr"] == {
        "name": "lr",
        "default": 1e-3,
        "interval": "(0, inf)",
        "doc": "global step size α",
        "kind": "log",
    }
    assert fields["rho2"]["kind"] == "unit" and fields["amsgrad"]["kind"] == "bool"
    assert adam["presets"]["torch"] == {"eps": 1e-8, "eps_root": 0.0}
    assert meta["limits"]["steps"] == models.MAX_STEPS
    rosenbrock = next(f for f in meta["functions"] if f["name"] == "rosenbrock")
    assert rosenbrock["minima"] == [[1.0, 1.0]] and rosenbrock["x0"] == [-1.2, 1.0]


# -- /api/grid -----------------------------------------------------------------------------


def test_each_optimizer_has_its_figure_color(client):
    from steplab.viz import palette

    meta = client.get("/api/meta").json()
    colors = {o["name"]: o["color"] for o in meta["optimizers"]}
    assert colors == {name: palette.color(name) for name in sl.OPTIMIZERS}
    assert len(set(colors.values())) == len(colors)  # one color per optimizer


def test_grid_of_a_named_function_holds_its_values(client):
    data = post(client, "/api/grid", {"problem": {"name": "rosenbrock"}, "resolution": 11})
    x, y, z = (np.array(data["grid"][k], dtype=float) for k in "xyz")
    assert x[0] == -2.0 and x[-1] == 2.0 and y[0] == -1.0 and y[-1] == 3.0  # the bounds
    # z[i][j] is f(x[j], y[i]); Rosenbrock by hand: (1 − x)² + 100 (y − x²)².
    X, Y = np.meshgrid(x, y)
    np.testing.assert_allclose(z, (1 - X) ** 2 + 100 * (Y - X**2) ** 2, rtol=1e-12)


def test_grid_of_an_expression_and_its_gradient_text(client):
    data = post(client, "/api/grid", {"problem": BOWL, "resolution": 10})
    x, y, z = (np.array(data["grid"][k], dtype=float) for k in "xyz")
    X, Y = np.meshgrid(x, y)
    np.testing.assert_allclose(z, X**2 + 10 * Y**2, rtol=1e-12)
    assert data["problem"]["bounds"] == [[-3.0, 3.0], [-3.0, 3.0]]
    assert len(data["problem"]["gradient"]) == 2


def test_grid_reports_undefined_values_as_null(client):
    data = post(client, "/api/grid", {"problem": {"expression": "log(x) + y"}, "resolution": 10})
    z = data["grid"]["z"]
    assert z[0][0] is None  # x = −3: log of a negative number
    assert z[0][-1] == pytest.approx(math.log(3.0) - 3.0)


# -- /api/run ------------------------------------------------------------------------------


def test_sgd_on_a_quadratic_follows_the_closed_form(client):
    # f = x² + 10y²: gradient descent gives x_t = (1 − 2α)ᵗ x₀ and y_t = (1 − 20α)ᵗ y₀.
    lr, steps, start = 0.01, 30, [1.5, -2.0]
    body = {
        "problem": BOWL,
        "optimizers": [{"name": "sgd", "hyperparameters": {"lr": lr}}],
        "start": start,
        "steps": steps,
    }
    run = post(client, "/api/run", body)["runs"][0]
    t = np.arange(steps + 1)
    expected = np.stack([start[0] * (1 - 2 * lr) ** t, start[1] * (1 - 20 * lr) ** t], axis=1)
    np.testing.assert_allclose(run["path"], expected, rtol=1e-12)
    np.testing.assert_allclose(run["loss"], expected[:, 0] ** 2 + 10 * expected[:, 1] ** 2)
    np.testing.assert_allclose(run["step_size"], np.full((steps, 2), lr))  # SGD: α everywhere
    assert run["diverged_at"] is None and run["label"] == "sgd α=0.01"


def test_first_adam_step_moves_each_coordinate_by_lr(client):
    # After one step ŝ = g and r̂ = g², so Δθ = −α·g/√(g² + β) ≈ −α·sign(g).
    body = {"problem": BOWL, "optimizers": [ADAM], "start": [1.0, -1.0], "steps": 1}
    data = post(client, "/api/run", body)
    assert data["start"] == [1.0, -1.0]
    np.testing.assert_allclose(data["runs"][0]["path"][1], [0.9, -0.9], rtol=1e-9)
    # Effective step size α/√(r̂ + β) with r̂ = g² = (2, 20)².
    expected = 0.1 / np.sqrt(np.array([2.0, 20.0]) ** 2 + 1e-8)
    np.testing.assert_allclose(data["runs"][0]["step_size"][0], expected, rtol=1e-12)


def test_adagrad_step_size_shrinks_like_one_over_root_of_accumulated_squares(client):
    body = {
        "problem": BOWL,
        "optimizers": [{"name": "adagrad", "hyperparameters": {"lr": 0.1, "eps": 0.0}}],
        "start": [1.0, 1.0],
        "steps": 2,
    }
    run = post(client, "/api/run", body)["runs"][0]
    x1, y1 = run["path"][1]
    assert (x1, y1) == pytest.approx((0.9, 0.9))  # first step: −α·g/|g|
    r = np.array([2.0**2 + (2 * x1) ** 2, 20.0**2 + (20 * y1) ** 2])
    np.testing.assert_allclose(run["step_size"][1], 0.1 / np.sqrt(r), rtol=1e-12)


def test_run_defaults_to_the_problems_start_and_reports_presets(client):
    body = {
        "problem": {"name": "rosenbrock"},
        "optimizers": [ADAM, {"name": "rmsprop", "preset": "torch"}],
        "steps": 3,
    }
    data = post(client, "/api/run", body)
    assert data["start"] == [-1.2, 1.0]
    assert [r["label"] for r in data["runs"]] == ["adam α=0.1", "rmsprop (torch) α=0.01"]
    assert data["runs"][1]["config"]["rho"] == 0.99  # torch's RMSProp default


def test_a_diverging_run_stops_and_says_where(client):
    body = {
        "problem": BOWL,
        "optimizers": [{"name": "sgd", "hyperparameters": {"lr": 50.0}}],
        "steps": 2000,
    }
    run = post(client, "/api/run", body)["runs"][0]
    assert run["diverged_at"] is not None and run["diverged_at"] < 2000
    assert len(run["path"]) == run["diverged_at"] + 1
    assert None in run["path"][-1] or run["loss"][-1] is None


def test_noise_is_reproducible_by_seed(client):
    def path(seed, noise):
        body = {
            "problem": {**BOWL, "noise": noise},
            "optimizers": [{"name": "sgd", "hyperparameters": {"lr": 0.01}}],
            "steps": 20,
            "seed": seed,
        }
        return np.array(post(client, "/api/run", body)["runs"][0]["path"])

    np.testing.assert_array_equal(path(1, 2.0), path(1, 2.0))
    assert not np.allclose(path(1, 2.0), path(2, 2.0))
    np.testing.assert_array_equal(path(1, 0.0), path(2, 0.0))  # no noise: the seed is moot


# -- /api/sweep ----------------------------------------------------------------------------


def test_sweep_matches_the_closed_form_of_gradient_descent(client):
    steps, start = 25, [1.5, 1.5]
    body = {
        "problem": BOWL,
        "optimizers": [{"name": "sgd"}],
        "start": start,
        "steps": steps,
        "lr_min": 1e-3,
        "lr_max": 0.2,
        "points": 9,
    }
    data = post(client, "/api/sweep", body)
    lrs = np.geomspace(1e-3, 0.2, 9)
    np.testing.assert_allclose(data["lrs"], lrs)
    x = start[0] * (1 - 2 * lrs) ** steps
    y = start[1] * (1 - 20 * lrs) ** steps
    expected = x**2 + 10 * y**2
    # |1 − 20α| > 1 for α > 0.1: those runs grow every step, and a loss above 1e8 × the
    # initial loss counts as diverged (null).
    threshold = 1e8 * (start[0] ** 2 + 10 * start[1] ** 2)
    final = data["results"][0]["final_loss"]
    assert [v is None for v in final] == list(expected > threshold)
    assert final[-1] is None and final[0] is not None
    finite = expected <= threshold
    np.testing.assert_allclose(np.array(final)[finite].astype(float), expected[finite], rtol=1e-10)


def test_sweep_rows_equal_single_runs_and_mark_divergence(client):
    lrs = np.geomspace(1e-2, 100.0, 5)
    body = {
        "problem": {"name": "rosenbrock"},
        "optimizers": [{"name": "rmsprop"}],
        "steps": 50,
        "lr_min": 1e-2,
        "lr_max": 100.0,
        "points": 5,
    }
    final = post(client, "/api/sweep", body)["results"][0]["final_loss"]
    for lr, value in zip(lrs, final, strict=True):
        single = {
            "problem": {"name": "rosenbrock"},
            "optimizers": [{"name": "rmsprop", "hyperparameters": {"lr": lr}}],
            "steps": 50,
        }
        loss = post(client, "/api/run", single)["runs"][0]["loss"]
        if value is None:  # diverged: NaN, or a loss above 1e8 × the initial loss
            assert any(v is None or v > 1e8 * max(1.0, abs(loss[0])) for v in loss)
        else:
            assert value == pytest.approx(loss[-1], rel=1e-9)


# -- errors and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        (
            "/api/run",
            {"problem": {"name": "nope"}, "optimizers": [ADAM]},
            "problem.name",
            "rosenbrock",
        ),
        ("/api/run", {"problem": {}, "optimizers": [ADAM]}, "problem", "exactly one"),
        (
            "/api/run",
            {"problem": {"name": "saddle", "expression": "x"}, "optimizers": [ADAM]},
            "problem",
            "exactly one",
        ),
        ("/api/grid", {"problem": {"expression": "x**2 +"}}, "problem.expression", "cannot parse"),
        (
            "/api/grid",
            {"problem": {"expression": "__import__('os')"}},
            "problem.expression",
            "not allowed",
        ),
        ("/api/grid", {"problem": {"expression": "x + y + z"}}, "problem.expression", "dim"),
        (
            "/api/grid",
            {"problem": {"expression": "x" + "+x" * 150}},
            "problem.expression",
            "200 characters",
        ),
        ("/api/grid", {"problem": BOWL, "resolution": 1000}, "resolution", "200"),
        ("/api/run", {"problem": BOWL, "optimizers": [ADAM], "steps": 10**6}, "steps", "2000"),
        ("/api/run", {"problem": BOWL, "optimizers": [ADAM] * 13}, "optimizers", "12"),
        ("/api/run", {"problem": BOWL, "optimizers": []}, "optimizers", "at least 1"),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [{"name": "adamm"}]},
            "optimizers.0.name",
            "adam",
        ),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [{"name": "adam", "hyperparameters": {"lr": -1}}]},
            "optimizers.0.hyperparameters",
            "lr must be in (0, inf)",
        ),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [{"name": "adam", "hyperparameters": {"rho": 0.5}}]},
            "optimizers.0.hyperparameters",
            "no hyperparameter rho",
        ),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [{"name": "adam", "hyperparameters": {"lr": True}}]},
            "optimizers.0.hyperparameters",
            "lr must be a number",
        ),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [{"name": "adam", "hyperparameters": {"amsgrad": 1}}]},
            "optimizers.0.hyperparameters",
            "amsgrad must be True or False",
        ),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [{"name": "adam", "preset": "jax"}]},
            "optimizers.0.preset",
            "torch",
        ),
        ("/api/run", {"problem": {**BOWL, "noise": -1}}, "problem.noise", "greater than or equal"),
        ("/api/run", {"problem": BOWL, "optimizers": [ADAM], "start": [1e9, 0]}, "start", "within"),
        ("/api/run", {"problem": BOWL, "optimizers": [ADAM], "seed": -1}, "seed", "greater than"),
        (
            "/api/run",
            {"problem": BOWL, "optimizers": [ADAM], "colour": "red"},
            "colour",
            "Extra inputs",
        ),
        (
            "/api/sweep",
            {"problem": BOWL, "optimizers": [ADAM], "lr_min": 1, "lr_max": 0.1},
            "",
            "lr_min",
        ),
        (
            "/api/sweep",
            {"problem": BOWL, "optimizers": [ADAM] * 6, "steps": 2000, "points": 40},
            "",
            "sweep too large",
        ),
        ("/api/sweep", {"problem": BOWL, "optimizers": [ADAM], "points": 41}, "points", "40"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, path, body, field, words):
    if path != "/api/grid":
        body.setdefault("optimizers", [ADAM])
    data = post(client, path, body, status=422)
    assert data["message"].startswith(f"{field}: " if field else "")
    assert words in data["message"]
    assert data["detail"][0]["loc"][0] == "body"


def test_nonfinite_numbers_are_rejected(client):
    # JSON has no NaN, but Python's json module writes it; the API must not accept it.
    text = (
        '{"problem": {"expression": "x**2"}, '
        '"optimizers": [{"name": "sgd", "hyperparameters": {"lr": NaN}}]}'
    )
    response = client.post("/api/run", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "optimizers.0.hyperparameters" in response.json()["message"]


def test_oversized_body_is_a_413(client):
    body = {"problem": {"expression": "x"}, "optimizers": [ADAM], "padding": "x" * 70_000}
    response = client.post("/api/run", json=body)
    assert response.status_code == 413
    assert "larger than" in response.json()["message"]


def test_unknown_route_and_wrong_method(client):
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/api/run").status_code == 405


# -- the page ------------------------------------------------------------------------------


def test_page_and_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="contour"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_no_asset_comes_from_outside():
    static = Path(sl.__file__).parent / "web" / "static"
    for path in static.iterdir():
        text = path.read_text()
        for pattern in (
            'src="http',
            "src='http",
            'href="http',
            "url(http",
            "import(",
            'fetch("http',
            "//cdn",
        ):
            assert pattern not in text, f"{path.name} loads {pattern!r} from outside"


def test_the_work_functions_are_the_endpoints_without_http(client):
    """create_app only wires module-level functions (issue 28): each can be called alone."""
    from steplab.web import app, engine

    body = {"problem": {"name": "rosenbrock"}, "optimizers": [{"name": "adam"}], "steps": 5}
    direct = app.run_work(models.RunRequest(**body), engine.Budget(10.0))
    served = post(client, "/api/run", body)
    assert [r["loss"] for r in direct["runs"]] == [r["loss"] for r in served["runs"]]
    assert app.meta_payload(app.Limits())["version"] == client.get("/api/meta").json()["version"]


def test_an_optimizer_registered_after_import_is_accepted_and_refused_once_unregistered(client):
    """Issue 28: the request models built their optimizer names into a Literal when
    steplab.web.models was imported, so an optimizer registered later was listed by
    /api/meta but refused by /api/run. The name is now checked against the registry at
    request time."""
    import steplab as sl
    import steplab.web.models  # noqa: F401  (imported before the registration, as in a server)

    class LateSGD(sl.optim.SGD):
        name = "late_sgd"

    run = {"problem": {"name": "rosenbrock"}, "optimizers": [{"name": "late_sgd"}], "steps": 3}
    sl.optim.register(LateSGD)
    try:
        assert "late_sgd" in [o["name"] for o in client.get("/api/meta").json()["optimizers"]]
        response = client.post("/api/run", json=run)
        assert response.status_code == 200, response.json()
        assert len(response.json()["runs"][0]["path"]) == 4  # θ₀ and three steps
    finally:
        sl.optim.unregister("late_sgd")
    response = client.post("/api/run", json=run)
    assert response.status_code == 422
    message = response.json()["message"]
    assert "unknown optimizer 'late_sgd'" in message and "'adam'" in message, message
