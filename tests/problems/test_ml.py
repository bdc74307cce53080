"""ML problems and datasets: gradients, hand-derived losses, splits, CSV errors, MNIST-1D cache."""

import time

import numpy as np
import pytest

from steplab import problems
from steplab.problems import datasets
from steplab.problems.custom import central_difference

MODELS = [
    ("linear_regression", "diabetes", {}),
    ("linear_regression", "synthetic_linear", {"l2": 0.3}),
    ("logistic_regression", "breast_cancer", {"l2": 0.1}),
    ("softmax_regression", "iris", {}),
    ("softmax_regression", "wine", {"l2": 0.05}),
    ("mlp", "iris", {"hidden": (6, 5), "activation": "relu", "l2": 0.01}),
    ("mlp", "wine", {"hidden": (4,), "activation": "tanh"}),
    ("mlp", "diabetes", {"hidden": (5,), "activation": "tanh", "l2": 0.2}),
]


@pytest.mark.parametrize(("model", "data", "options"), MODELS)
def test_minibatch_gradient_matches_finite_differences(model, data, options):
    p = problems.get(model, data=data, **options)
    theta = p.initial_point(1) + 0.3 * np.random.default_rng(2).standard_normal(p.dim)
    batch = np.random.default_rng(3).choice(p.n_train, size=9, replace=False)
    numeric = central_difference(lambda z: p.value(z, batch), theta)
    assert np.allclose(p.grad(theta, batch), numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("model", "data", "options"), MODELS[:5])
def test_full_batch_gradient_matches_finite_differences(model, data, options):
    p = problems.get(model, data=data, **options)
    theta = 0.2 * np.random.default_rng(4).standard_normal(p.dim)
    numeric = central_difference(p.value, theta)
    assert np.allclose(p.grad(theta), numeric, rtol=1e-6, atol=1e-7)


def test_losses_at_zero_are_the_textbook_values():
    assert problems.logistic_regression("breast_cancer").value(np.zeros(31)) == pytest.approx(
        np.log(2)
    )
    soft = problems.softmax_regression("digits")
    assert soft.value(np.zeros(soft.dim)) == pytest.approx(np.log(10))
    lin = problems.linear_regression("diabetes")
    assert lin.value(np.zeros(lin.dim)) == pytest.approx(np.mean(lin.dataset.y_train**2))


def test_minibatch_mean_of_all_indices_is_the_full_loss():
    p = problems.mlp("iris", hidden=(5,))
    theta = p.initial_point(0)
    everything = np.arange(p.n_train)
    v_full, g_full = p.value_and_grad(theta)
    v_batch, g_batch = p.value_and_grad(theta, everything)
    assert v_batch == pytest.approx(v_full) and np.allclose(g_batch, g_full)


def test_linear_regression_minimizer_is_least_squares():
    p = problems.linear_regression("synthetic_linear")
    X = np.hstack([p.dataset.X_train, np.ones((p.n_train, 1))])
    solution = np.linalg.lstsq(X, p.dataset.y_train, rcond=None)[0]
    assert np.linalg.norm(p.grad(solution)) < 1e-8
    assert np.allclose(solution[:-1], p.dataset.theta_star, atol=0.3)


def test_rows_match_single_rows_bit_for_bit():
    p = problems.mlp("wine", hidden=(7,))
    thetas = np.stack([p.initial_point(s) for s in range(4)])
    batch = np.random.default_rng(0).integers(0, p.n_train, (4, 16))
    values, grads = p.value_and_grad(thetas, batch)
    for k in range(4):
        v, g = p.value_and_grad(thetas[k], batch[k])
        assert v == values[k] and np.array_equal(g, grads[k])


def test_initialization_depends_on_the_seed_only_with_hidden_layers():
    p = problems.mlp("iris", hidden=(8,))
    assert not np.array_equal(p.initial_point(0), p.initial_point(1))
    assert np.array_equal(p.initial_point(5), p.initial_point(5))
    assert not np.any(problems.softmax_regression("iris").initial_point(3))


def test_metrics_accuracy_is_counted_correctly():
    p = problems.softmax_regression("iris")
    # a parameter vector that predicts class 0 for every input: constant bias
    theta = np.zeros(p.dim)
    theta[-3:] = [5.0, 0.0, 0.0]
    m = p.metrics(theta, "test")
    assert m["accuracy"] == pytest.approx(np.mean(p.dataset.y_test == 0))
    assert set(p.evaluate(theta)) >= {"train_loss", "val_accuracy", "test_accuracy"}


def test_splits_are_disjoint_standardized_and_stratified():
    d = datasets.load("breast_cancer", val_fraction=0.2, test_fraction=0.25, seed=1)
    n = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert n == 569 and len(d.y_test) == np.ceil(0.25 * 569)  # as scikit-learn rounds
    assert np.allclose(d.X_train.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(d.X_train.std(axis=0), 1)
    rows = {tuple(r) for r in np.vstack([d.X_train, d.X_val, d.X_test]).round(10)}
    assert len(rows) == n  # no example in two splits
    assert abs(d.y_train.mean() - d.y_test.mean()) < 0.03  # stratified
    assert d.task == "classification" and d.n_classes == 2


def test_every_named_dataset_loads():
    for name in ("digits", "iris", "wine", "diabetes"):
        d = datasets.load(name)
        assert len(d.y_train) > len(d.y_val) > 0
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*mnist1d"):
        datasets.load("mnist")


def test_synthetic_linear_correlation():
    d = datasets.synthetic_linear(correlated=True, val_fraction=0, test_fraction=0)
    assert d.X_train.shape == (500, 11)
    corr = np.corrcoef(d.X_train.T)
    assert corr[0, 1] > 0.95 and corr[0, 10] == pytest.approx(0.99**10, abs=0.1)
    assert abs(np.corrcoef(datasets.synthetic_linear(test_fraction=0).X_train.T)[0, 1]) < 0.15


def test_model_dataset_mismatch_errors():
    with pytest.raises(ValueError, match="two-class"):
        problems.logistic_regression("iris")
    with pytest.raises(ValueError, match="regression dataset"):
        problems.linear_regression("iris")
    with pytest.raises(ValueError, match="activation"):
        problems.mlp("iris", activation="sigmoid")
    with pytest.raises(ValueError, match="hidden"):
        problems.mlp("iris", hidden=(0,))


def test_csv_dataset_and_its_errors(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    path = tmp_path / "data.csv"
    lines = ["a,b,label"] + [f"{a},{b},{'yes' if a + b > 0 else 'no'}" for a, b in X]
    path.write_text("\n".join(lines) + "\n")
    d = problems.from_csv(path, "label")
    assert d.task == "classification" and d.classes == ["no", "yes"] and d.n_features == 2
    p = problems.logistic_regression(d)
    assert p.n_train == len(d.y_train)

    with pytest.raises(ValueError, match="not found"):
        problems.from_csv(tmp_path / "missing.csv", "label")
    with pytest.raises(ValueError, match="no column 'target'; columns are a, b, label"):
        problems.from_csv(path, "target")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,3\n1,oops,4\n5,6,7\n")
    with pytest.raises(ValueError, match=r"line 3, column 'b': 'oops' is not a number"):
        problems.from_csv(bad, "y")
    text = tmp_path / "text.csv"
    text.write_text("a,y\n1,x\n2,z\n3,x\n")
    with pytest.raises(ValueError, match="not numeric"):
        problems.from_csv(text, "y", task="regression")


def test_mnist1d_is_generated_locally_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPLAB_CACHE", str(tmp_path))
    state = np.random.get_state()  # noqa: NPY002 - the global generator must be left alone
    first = datasets.mnist1d_arrays()
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002
    assert first["x"].shape == (4000, 40) and first["x_test"].shape == (1000, 40)
    assert sorted(np.unique(first["y"])) == list(range(10))
    assert list(tmp_path.glob("mnist1d-*.npz"))
    start = time.perf_counter()
    second = datasets.mnist1d_arrays()
    assert time.perf_counter() - start < 0.5
    assert all(np.array_equal(first[k], second[k]) for k in first)
    d = datasets.load("mnist1d")
    assert len(d.y_train) == 3600 and len(d.y_val) == 400 and len(d.y_test) == 1000
