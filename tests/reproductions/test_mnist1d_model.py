"""MNIST-1D's ``MLPBase`` in NumPy: a residual MLP with torch.nn.Linear's initialization.

Its gradient is checked against central differences and its loss and gradient against the
same network built in PyTorch from the same numbers (Greydanus' notebooks/models.py:
``h = relu(linear1(x)); h = h + relu(linear2(h)); return linear3(h)``).
"""

import numpy as np
import pytest

import steplab as sl
from steplab.problems import datasets


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(30, 6)), rng.integers(0, 4, size=30)
    return datasets.make_dataset("toy", X, y, "classification", val_fraction=0.0)


def test_residual_mlp_gradient_matches_central_differences(small):
    for activation in ("relu", "tanh"):
        p = sl.problems.mlp(
            small, hidden=(5, 5, 5), residual=True, init="torch", activation=activation, l2=0.1
        )
        x = p.initial_point(1)
        _, g = p.value_and_grad(x)
        h, fd = 1e-6, np.zeros_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            fd[i] = (p.value_and_grad(x + e)[0] - p.value_and_grad(x - e)[0]) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_residual_changes_the_function_and_needs_equal_widths(small):
    plain = sl.problems.mlp(small, hidden=(5, 5), init="torch")
    skip = sl.problems.mlp(small, hidden=(5, 5), init="torch", residual=True)
    x = plain.initial_point(0)
    assert plain.value_and_grad(x)[0] != pytest.approx(skip.value_and_grad(x)[0])
    with pytest.raises(ValueError, match="equal width"):
        sl.problems.mlp(small, hidden=(5, 4), residual=True)
    with pytest.raises(ValueError, match="init must be one of"):
        sl.problems.mlp(small, init="xavier")


def test_torch_init_has_torch_linear_bounds(small):
    p = sl.problems.mlp(small, hidden=(50, 50), init="torch")
    (W1, b1), (W2, b2), (W3, b3) = p.unpack(p.initial_point(0)[None])
    for W, b, fan_in in ((W1, b1, 6), (W2, b2, 50), (W3, b3, 50)):
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(W).max() > 0.9 * bound  # uniform over the whole interval, not smaller
        assert np.std(W) == pytest.approx(bound / np.sqrt(3), rel=0.15)  # U(−a, a): a/√3


def test_mlp_base_equals_pytorch_loss_and_gradient():
    torch = pytest.importorskip("torch")
    torch.set_default_dtype(torch.float64)
    try:
        data = datasets.load("mnist1d", val_fraction=0.0, standardize=False)
        p = sl.problems.mlp(data, hidden=(100, 100), residual=True, init="torch")
        assert p.dim == 15210  # "Initialized MLPBase model with 15210 parameters"
        theta = p.initial_point(7)
        (W1, b1), (W2, b2), (W3, b3) = (
            (torch.tensor(W[0], requires_grad=True), torch.tensor(b[0], requires_grad=True))
            for W, b in p.unpack(theta[None].copy())
        )
        batch = np.arange(100, 200)
        x = torch.tensor(data.X_train[batch])
        h = torch.relu(x @ W1 + b1)
        h = h + torch.relu(h @ W2 + b2)
        loss = torch.nn.functional.cross_entropy(h @ W3 + b3, torch.tensor(data.y_train[batch]))
        loss.backward()
        value, grad = p.value_and_grad(theta, batch=batch)
        assert value == pytest.approx(loss.item(), rel=1e-12)
        expected = np.concatenate([t.grad.numpy().ravel() for t in (W1, b1, W2, b2, W3, b3)])
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13)
    finally:
        torch.set_default_dtype(torch.float32)
