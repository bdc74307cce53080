"""MNIST-1D baselines and Kingma & Ba's logistic regression, reduced."""

import pytest

from steplab.reproductions import kingma_ba_logreg, mnist1d_baselines


@pytest.mark.slow
def test_mnist1d_quick_claims_hold(tmp_path):
    result = mnist1d_baselines.run(tmp_path, quick=True)
    assert all(result.claims.values()), result.claims
    (rows,) = result.tables.values()
    logistic, mlp = rows
    # the published numbers, as quoted from the mnist1d repository (README, notebook)
    assert (logistic["README [%]"], logistic["notebook, seed 42 [%]"]) == ("32", "31.5")
    assert (mlp["README [%]"], mlp["notebook, seed 42 [%]"]) == ("68", "65.1")


def test_mnist1d_recipe_batches_in_fixed_order_and_torch_adam():
    """train.py's loop: batch ``s`` starts at (100·s) mod 4000; no shuffling."""
    import numpy as np

    import steplab as sl

    seen = []

    class Recorder:
        n_train = 4000

        def initial_point(self, seed):
            return np.zeros(3)

        def value_and_grad(self, theta, batch):
            seen.append(batch.copy())
            return 0.0, np.ones_like(theta)

        def metrics(self, theta, split):
            return {"accuracy": np.zeros(len(theta))}

    curve = mnist1d_baselines.train(Recorder(), [0], steps=45, eval_every=40)
    assert len(seen) == 46  # steps 0…45 inclusive, as range(total_steps + 1)
    assert [b[0] for b in seen[:41:20]] == [0, 2000, 0]  # wraps after 40 batches
    assert all(np.array_equal(b, np.arange(b[0], b[0] + 100)) for b in seen)
    assert list(curve["step"]) == [0, 40, 45]
    assert sl.Adam.like("torch").eps == 1e-8  # ε outside the root, as torch.optim.Adam


@pytest.mark.slow
def test_kingma_ba_quick_claims_hold(tmp_path):
    result = kingma_ba_logreg.run(tmp_path, quick=True)
    assert all(result.claims.values()), result.claims
    (rows,) = result.tables.values()
    # Figure 1 (left) compares exactly these three; Adam and Nesterov decay as α/√t
    assert [r["optimizer"] for r in rows] == ["Adam", "Nesterov", "AdaGrad"]
    assert rows[0]["step size"].endswith("/√t") and rows[1]["step size"].endswith("/√t")
    assert not rows[2]["step size"].endswith("/√t")
