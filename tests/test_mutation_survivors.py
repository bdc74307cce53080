"""Tests that kill the mutants of issue 27's mutation study (``tools/mutation_study.py``)
that had survived the suite, in steplab.optim.transforms and steplab.optim.averaging: trees
with different labels are an error naming both label sets, never a silent partial update
(without the check a missing label was a bare KeyError and an extra one was ignored);
masked passes its inner transform the chosen params; a wrapper's step returns theta and
names both wrappers when given another's state."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.optim import transforms


def test_updates_with_other_labels_than_the_params_are_refused():
    params = {"w": np.ones(2), "b": np.zeros(1)}
    with pytest.raises(ValueError, match=r"trees differ: labels \['b', 'w'\] against \['w'\]"):
        transforms.apply_updates(params, {"w": np.ones(2)})
    with pytest.raises(ValueError, match=r"against \['b', 'v', 'w'\]"):  # an extra label
        transforms.apply_updates(params, {**params, "v": np.ones(3)})
    with pytest.raises(ValueError, match="against ndarray"):
        transforms.apply_updates(params, np.ones(3))
    assert params["w"].tolist() == [1.0, 1.0]  # nothing changed


def test_same_labels_map_leaf_by_leaf():
    out = transforms.tree_map(lambda a, b: a + b, {"w": 1.0, "b": 2.0}, {"b": 10.0, "w": 20.0})
    assert out == {"w": 21.0, "b": 12.0}


def test_masked_gives_the_inner_transform_the_chosen_params():
    """add_decayed_weights needs the params: masked passes it those of the chosen labels
    (mutation study: passing None survived the suite)."""
    chain = transforms.masked(transforms.add_decayed_weights(0.1), {"w": True, "b": False})
    params = {"w": np.array([2.0]), "b": np.array([5.0])}
    updates = {"w": np.array([1.0]), "b": np.array([1.0])}
    out, _ = chain.update(updates, chain.init(params), params)
    np.testing.assert_allclose(out["w"], [1.0 + 0.1 * 2.0])  # ĝ + λθ with θ = 2
    np.testing.assert_allclose(out["b"], [1.0])  # not chosen: unchanged
    # a mask computed from the params sees the params, not the updates
    by_size = transforms.masked(
        transforms.add_decayed_weights(0.1), lambda p: {k: bool(p[k][0] > 1.5) for k in p}
    )
    params["b"] = np.array([0.5])
    out, _ = by_size.update(updates, by_size.init(params), params)
    np.testing.assert_allclose([out["w"][0], out["b"][0]], [1.2, 1.0])


def test_an_averaging_wrapper_steps_in_place_and_returns_theta():
    """Averaging.step returns theta, stepped in place, like every optimizer's step
    (mutation study: returning None survived the suite)."""
    import steplab as sl
    from steplab.optim.averaging import EMA, SWA, Lookahead

    for wrapper in (
        EMA(base=sl.SGD(lr=0.5)),
        SWA(base=sl.SGD(lr=0.5)),
        Lookahead(base=sl.SGD(lr=0.5)),
    ):
        theta = np.array([1.0, -2.0])
        state = wrapper.init(theta)
        out = wrapper.step(theta, np.array([1.0, 1.0]), state)
        assert out is theta, wrapper
        assert state.steps_seen == 1


def test_a_state_of_another_wrapper_is_refused_naming_both():
    """(Mutation study: the message's ``or 'no wrapper'`` turned into ``and`` survived.)"""
    import steplab as sl
    from steplab.optim.averaging import EMA, SWA

    theta = np.array([1.0, -2.0])
    ema_state = EMA(base=sl.SGD(lr=0.5)).init(theta)
    with pytest.raises(ValueError, match=r"belongs to sgd\+ema, not to sgd\+swa"):
        SWA(base=sl.SGD(lr=0.5)).step(theta, np.ones(2), ema_state)
    with pytest.raises(ValueError, match=r"belongs to no wrapper, not to sgd\+swa"):
        SWA(base=sl.SGD(lr=0.5)).step(theta, np.ones(2), sl.SGD(lr=0.5).init(theta))
    assert theta.tolist() == [1.0, -2.0]  # refused before anything changed


def test_a_store_path_that_is_a_folder_is_refused_naming_a_file_to_give(tmp_path):
    """(Mutation study, steplab.run.store: dropping this check survived the suite; the
    user then got a bare IsADirectoryError instead of the store's error.)"""
    from steplab.run.store import ResultStore, StoreError

    with pytest.raises(StoreError, match=r"is a directory; give a file name such as .*results"):
        ResultStore.open(tmp_path, {"sweep": "mutation"})
    assert list(tmp_path.iterdir()) == []  # nothing created inside it
