"""One way to name an optimizer with its hyperparameters on the command line.

    NAME[@PRESET][:KEY=VALUE[,KEY=VALUE…]]

    sgd                        SGD with the seed's defaults
    adam:lr=0.01,rho1=0.8      Adam, two hyperparameters changed
    adam@torch:lr=0.01         PyTorch's Adam (eps outside the root), α = 0.01
    rmsprop:centered=true      booleans: true/false (also yes/no, 1/0 for flags)

Every mistake raises ``ValueError`` naming the bad part and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import steplab as sl
from steplab.optim.base import Optimizer

SYNTAX = "NAME[@PRESET][:KEY=VALUE,...], e.g. adam:lr=0.01,rho1=0.8 or adam@torch:lr=0.01"
TRUE, FALSE = ("true", "yes", "on"), ("false", "no", "off")


@dataclass(frozen=True)
class OptimizerSpec:
    """A parsed spec: the text as written (its label in tables and legends) and the
    optimizer it builds."""

    label: str
    optimizer: Optimizer
    name: str
    preset: str
    overrides: dict

    def config(self) -> dict:
        """JSON-ready: the spec text, the preset and every hyperparameter's value."""
        return {"spec": self.label, "preset": self.preset, **self.optimizer.config()}


def parse_value(key: str, text: str, field_interval: str | None):
    """A hyperparameter value from text: bool for ``"bool"`` fields, else a number (or a
    string for ``nonfinite``)."""
    raw = text.strip()
    if field_interval == "bool":
        if raw.lower() in TRUE + ("1",):
            return True
        if raw.lower() in FALSE + ("0",):
            return False
        raise ValueError(f"{key} must be true or false, got {raw!r}")
    if field_interval is None:  # nonfinite: a word
        return raw
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number in {field_interval}, got {raw!r}") from None


def parse(spec: str) -> OptimizerSpec:
    """Parse ``NAME[@PRESET][:KEY=VALUE,...]`` into an optimizer (validated)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty optimizer spec; write {SYNTAX}")
    text = spec.strip()
    head, _, params = text.partition(":")
    name, _, preset = head.partition("@")
    name, preset = name.strip().lower(), (preset.strip().lower() or "seed")
    if name not in sl.OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r} in {text!r}{_did_you_mean(name, sl.OPTIMIZERS)}; "
            f"choose one of: {', '.join(sl.OPTIMIZERS)}"
        )
    cls = sl.OPTIMIZERS[name]
    fields = {k: f.metadata["interval"] for k, f in cls.hyperparameters().items()}
    fields["nonfinite"] = None
    overrides = {}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            raise ValueError(f"bad hyperparameter {item!r} in {text!r}; write {SYNTAX}")
        if key not in fields:
            raise ValueError(
                f"{name} has no hyperparameter {key!r} (in {text!r}){_did_you_mean(key, fields)}; "
                f"its hyperparameters are: {', '.join(fields)}"
            )
        if key in overrides:
            raise ValueError(f"{key} is given twice in {text!r}")
        overrides[key] = parse_value(key, value, fields[key])
    try:
        optimizer = cls.like(preset, **overrides)  # validates ranges and the preset's name
    except ValueError as exc:
        raise ValueError(f"{exc} (in {text!r})") from None
    return OptimizerSpec(text, optimizer, name, preset, overrides)


def _did_you_mean(word: str, choices) -> str:
    import difflib

    word = word.lower()
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""

    def score(c: str) -> float:
        return difflib.SequenceMatcher(None, word, c).ratio()

    best = [c for c in close if score(c) == score(close[0])]  # ties: name them all
    return f" (did you mean {' or '.join(map(repr, sorted(best)))}?)"


def parse_key_values(items: list[str] | None, what: str) -> dict:
    """``["dim=10", "rotation=random"]`` → ``{"dim": 10, "rotation": "random"}`` (ints,
    floats, true/false and words), for options such as ``--problem-option``."""
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad {what} {item!r}; write KEY=VALUE, e.g. dim=10")
        out[key.strip()] = _auto(value.strip())
    return out


def _auto(text: str):
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
