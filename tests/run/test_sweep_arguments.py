"""sl.sweep's own arguments: bad types and empty axes are named before anything runs or is
written."""

from __future__ import annotations

from pathlib import Path

import pytest

import steplab as sl


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"grid": {"adam": {"lr": []}}}, r"grid\['adam'\]\['lr'\] holds no values"),
        ({"grid": {"adam": {"lr": [0.1], "rho1": []}}}, r"\['rho1'\] holds no values"),
        ({"seeds": []}, "seeds must hold at least one seed"),
        ({"grid": {}}, "grid must be a non-empty dict"),
        ({"grid": {"adam": [0.1]}}, r"grid\['adam'\] must be a dict"),
        ({"engine": "ray", "address": 123}, "address must be a string .* got int 123"),
        ({"store": 3.5}, "store must be a file path .* got float"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
        ({"chunk_size": "8"}, "chunk_size must be a positive integer, got '8'"),
        ({"engine": None}, "engine must be one of auto, fast, loop, ray, got None"),
        ({"return_table": "no"}, "return_table must be True or False, got 'no'"),
        ({"return_table": False, "store": None}, "return_table=False needs store="),
    ],
    ids=[
        "lr=[]",
        "rho1=[]",
        "seeds=[]",
        "grid={}",
        "space",
        "address",
        "store",
        "chunk0",
        "chunk-str",
        "engine",
        "return_table",
        "no-table-no-store",
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(tmp_path, arguments, message):
    arguments = {"grid": {"adam": {"lr": [0.1]}}, "seeds": [0], "steps": 5, **arguments}
    store = arguments.pop("store", tmp_path / "results.sqlite")
    grid = arguments.pop("grid")
    with pytest.raises(ValueError, match=message):
        sl.sweep("rosenbrock", grid, store=store, **arguments)
    assert not isinstance(store, Path) or not store.exists()
