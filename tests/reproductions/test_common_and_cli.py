"""The reproductions' registry, tables and the ``steplab reproduce`` command."""

import json

import numpy as np
import pytest

from steplab import reproductions
from steplab.cli import main
from steplab.reproductions._common import markdown_table, mean_std, pm, seeds_list

ISSUE_ORDER = [
    "mnist1d",
    "kingma_ba_logreg",
    "deepobs_quadratic",
    "wilson_toy",
    "bias_correction",
    "reddi_amsgrad",
]


def test_every_reproduction_is_registered_in_the_issue_order_with_a_source():
    assert list(reproductions.REPRODUCTIONS) == ISSUE_ORDER
    for entry in reproductions.REPRODUCTIONS.values():
        assert entry.title and entry.source and callable(entry.run)


def test_reproductions_are_experiments_too():
    from steplab import experiments

    for name in ISSUE_ORDER:
        assert f"repro_{name}" in experiments.EXPERIMENTS


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: mnist1d, kingma_ba_logreg"):
        reproductions.get("mnist2d")


def test_mean_std_and_pm():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2.0)))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert pm([0.3, 0.34], 1, 100) == "32.0 ± 2.8"
    assert pm([np.nan]) == "diverged"


def test_markdown_table():
    text = markdown_table([{"a": "x", "b": 0.123456}, {"a": "y", "b": float("inf")}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 0.1235 |", "| y | diverged |"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_seeds_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        seeds_list(bad, 3)


def test_cli_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == ISSUE_ORDER


def test_cli_unknown_name_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["reproduce", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown reproduction 'nope'" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_cli_without_name_explains(capsys):
    assert main(["reproduce"]) == 2
    assert "give a reproduction NAME" in capsys.readouterr().err


def test_cli_bad_seeds_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "wilson_toy", "--seeds", "0"])
    assert exit_info.value.code == 2
    assert "seeds must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_quick_run_writes_figure_json_and_markdown(capsys, tmp_path):
    code = main(["reproduce", "wilson_toy", "--quick", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[ok] SGD's test error is 0" in out
    assert "claims: 7 of 7 hold" in out
    payload = json.loads((tmp_path / "repro-wilson_toy.json").read_text())
    assert payload["quick"] is True and all(payload["claims"].values())
    assert (tmp_path / "repro-wilson.png").stat().st_size > 10_000
    assert "| method |" in (tmp_path / "repro-wilson_toy.md").read_text()


def _result(claims, expected=None):
    from steplab.reproductions import Result

    return Result("x", "X", "src", "setup", "none", claims=claims, expected=expected or {})


def test_a_refuted_claim_pinned_as_a_verdict_is_ok_and_a_change_is_not():
    documented = _result({"a": True, "b": False}, {"b": False})
    assert documented.ok and documented.status("b") == "refuted (as documented)"
    now_holds = _result({"a": True, "b": True}, {"b": False})
    assert not now_holds.ok and now_holds.changed == ["b"]
    assert now_holds.status("b").startswith("CHANGED")
    failed = _result({"a": False, "b": False}, {"b": False})
    assert not failed.ok and failed.status("a") == "FAILED"
    with pytest.raises(ValueError, match="not checked"):
        _result({"a": True}, {"z": False})


def test_markdown_claims_are_a_list_and_mark_verdicts():
    text = _result({"a": True, "b": False}, {"b": False}).markdown()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("- "))
    assert lines[first - 1] == ""  # a blank line before the list, or Markdown runs it on
    assert "- ❌ b *(verdict)*" in lines and "- ✅ a" in lines


def test_cli_exit_code_follows_the_documented_verdicts(capsys, tmp_path, monkeypatch):
    from steplab.reproductions import registry

    for claims, code in (({"b": False}, 0), ({"b": True}, 1)):

        def fake(out, *, quick, seeds, progress, _claims=claims):
            return _result({"a": True, **_claims}, {"b": False})

        monkeypatch.setitem(
            registry.REPRODUCTIONS,
            "wilson_toy",
            registry.Reproduction("wilson_toy", "W", "s", fake),
        )
        assert main(["reproduce", "wilson_toy", "--out", str(tmp_path), "--no-progress"]) == code
        out = capsys.readouterr().out
        assert ("[refuted (as documented)] b" in out) == (code == 0)


def test_json_takes_numpy_booleans(tmp_path):
    """A claim computed with NumPy is an np.bool_: the JSON must still be written (a full
    mnist1d run once ended in a TypeError here, after 17 minutes of CPU)."""
    result = _result({"a": np.bool_(True), "b": np.bool_(False)}, {"b": False})
    payload = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert payload["claims"] == {"a": True, "b": False} and payload["ok"] is True
