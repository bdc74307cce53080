"""benchmarks/matrix_mnist1d.py: the state bytes per parameter docs/matrix.md gives for the
MNIST-1D models, read off the optimizers' state after one step as the script trains them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
_spec = importlib.util.spec_from_file_location(
    "matrix_mnist1d", Path(__file__).parents[1] / "benchmarks" / "matrix_mnist1d.py"
)
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)

# CNN: kernels 125 + 1875 + 1875 (as matrices 25×5, 25×75, 25×75), biases 75, output 1250 + 10:
# 5210 parameters. Muon: 4 bytes on the 3875 kernel entries, Adam's 8 on the other 1335.
CNN = {"adam": 8.00, "adafactor": 0.35, "muon": 5.02, "shampoo": 25.22, "soap": 28.19}
MLP = {"adam": 8.00, "adafactor": 0.17, "muon": 4.32, "shampoo": 20.94, "soap": 24.62}


@pytest.mark.parametrize("workload, table", [("mnist1d_cnn", CNN), ("mnist1d_mlp", MLP)])
def test_state_bytes_per_parameter_as_docs_matrix_states(workload, table):
    for name, expected in table.items():
        assert round(script.state_bytes(workload, name), 2) == expected, name
    assert script.state_bytes("mnist1d_cnn", "muon") == (3875 * 4 + 1335 * 8) / 5210
