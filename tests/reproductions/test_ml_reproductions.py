"""MNIST-1D baselines and Kingma & Ba's logistic regression, reduced."""

import pytest

from steplab.reproductions import kingma_ba_logreg, mnist1d_baselines


@pytest.mark.slow
def test_mnist1d_quick_claims_hold(tmp_path):
    result = mnist1d_baselines.run(tmp_path, quick=True)
    assert all(result.claims.values()), result.claims
    (row_logistic, row_mlp) = result.tables["Test accuracy on MNIST-1D"]
    assert (
        row_logistic["published test acc [%]"] == "32" and row_mlp["published test acc [%]"] == "68"
    )


@pytest.mark.slow
def test_kingma_ba_quick_claims_hold(tmp_path):
    result = kingma_ba_logreg.run(tmp_path, quick=True)
    assert all(result.claims.values()), result.claims
    optimizers = [
        r["optimizer"] for r in result.tables["Training cost after tuning (mean ± std over seeds)"]
    ]
    assert optimizers == ["Adam", "AdaGrad", "RMSProp", "Nesterov"]
