"""One way to name an optimizer with its hyperparameters on the command line.

    NAME[+MODIFIER][@PRESET][:KEY=VALUE[,KEY=VALUE…]]

    sgd                        SGD with the seed's defaults
    adam:lr=0.01,rho1=0.8      Adam, two hyperparameters changed
    adam@torch:lr=0.01         PyTorch's Adam (eps outside the root), α = 0.01
    rmsprop:centered=true      booleans: true/false (also yes/no, 1/0 for flags)
    adamw+cautious:lr=1e-3     AdamW with the cautious mask (the KEYs are AdamW's)
    adam+ema:decay=0.99,lr=0.01
                               Adam with an EMA of its iterates: a KEY is the modifier's
                               when it is one of its settings (ema: decay, debias; swa:
                               start, every; lookahead: sync_period, slow_step_size)
    adamw+clip_by_global_norm:clip_norm=1,lr=1e-3
                               a chain's element-wise pieces (clip_by_global_norm: clip_norm;
                               clip: clip_delta; add_decayed_weights: l2_weight_decay;
                               decay_weights: decay_lr, decoupled_weight_decay)

The step size ``lr`` may also be a schedule of the step count t = 1, 2, … (see
:mod:`steplab.schedules`), written ``SCHEDULE(ARG,...)``:

    adam:lr=cosine(0.01,1000)          cosine decay from 0.01 to 0 over 1000 steps
    adam:lr=inverse_sqrt(0.01)         0.01/√t
    sgd:lr=step(0.1,100,0.5)           0.1, halved every 100 steps (at t = 101, 201, …)
    adam:lr=warmup_cosine(0,0.01,100,1000),rho1=0.8

    constant(value)                                  α = value
    inverse_sqrt(init_value)                         init_value/√t
    step(init_value, transition_steps, decay_rate)   step decay (staircase)
    exponential(init_value, transition_steps, decay_rate)
                                                     smooth exponential decay
    cosine(init_value, decay_steps[, alpha])         cosine to alpha·init_value
    linear(init_value, end_value, transition_steps)  linear, then constant
    warmup(peak_value, warmup_steps)                 warm-up, then constant
    warmup_cosine(init_value, peak_value, warmup_steps, decay_steps[, end_value])
                                                     warm-up, then cosine decay

Arguments are positional, or ``NAME=VALUE`` by the argument's name after the positional
ones (``cosine(0.01,1000,alpha=0.1)``); ``*_steps`` are integers. The Python names
(``cosine_decay_schedule``, ``exponential_decay``, …) work too, with the same arguments;
``exponential_decay`` is the smooth decay (``step`` the staircase). The commas inside the
parentheses do not separate hyperparameters. Parentheses are special to the shell: quote
the spec, ``'adam:lr=cosine(0.01,1000)'``.

Every mistake raises ``ValueError`` naming the bad part and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steplab.optim import schedules
from steplab.optim.registry import WRAPPER_SETTINGS, WRAPPERS, registered
from steplab.optim.schedules import Schedule

SYNTAX = (
    "NAME[+MODIFIER][@PRESET][:KEY=VALUE,...], e.g. adam:lr=0.01,rho1=0.8, "
    "adam@torch:lr=0.01 or adam+ema:decay=0.99"
)
TRUE, FALSE = ("true", "yes", "on"), ("false", "no", "off")


@dataclass(frozen=True)
class ScheduleSyntax:
    """How one schedule is written in a spec: ``name(parameters…)``, the first
    ``required`` of them needed, ``fixed`` arguments added (staircase for ``step``)."""

    name: str
    factory: Callable[..., Schedule]
    parameters: tuple[str, ...]
    required: int
    summary: str
    fixed: dict = field(default_factory=dict)

    def signature(self) -> str:
        needed = ", ".join(self.parameters[: self.required])
        optional = "".join(f"[, {p}]" for p in self.parameters[self.required :])
        return f"{self.name}({needed}{optional})"


_STEP_ARGUMENTS = ("init_value", "transition_steps", "decay_rate")

#: The lr schedules a spec may name, by their short names (in the order help lists them).
SCHEDULES = {
    s.name: s
    for s in (
        ScheduleSyntax("constant", schedules.constant_schedule, ("value",), 1, "α = value"),
        ScheduleSyntax(
            "inverse_sqrt", schedules.inverse_sqrt_schedule, ("init_value",), 1, "init_value/√t"
        ),
        ScheduleSyntax(
            "step",
            schedules.exponential_decay,
            _STEP_ARGUMENTS,
            3,
            "step decay (staircase)",
            {"staircase": True},
        ),
        ScheduleSyntax(
            "exponential",
            schedules.exponential_decay,
            _STEP_ARGUMENTS,
            3,
            "smooth exponential decay",
        ),
        ScheduleSyntax(
            "cosine",
            schedules.cosine_decay_schedule,
            ("init_value", "decay_steps", "alpha"),
            2,
            "cosine to alpha·init_value",
        ),
        ScheduleSyntax(
            "linear",
            schedules.linear_schedule,
            ("init_value", "end_value", "transition_steps"),
            3,
            "linear, then constant",
        ),
        ScheduleSyntax(
            "warmup",
            schedules.linear_warmup,
            ("peak_value", "warmup_steps"),
            2,
            "warm-up, then constant",
        ),
        ScheduleSyntax(
            "warmup_cosine",
            schedules.warmup_cosine_decay_schedule,
            ("init_value", "peak_value", "warmup_steps", "decay_steps", "end_value"),
            4,
            "warm-up, then cosine decay",
        ),
    )
}
#: The Python names (optax's), accepted as well.
SCHEDULE_ALIASES = {
    "constant_schedule": "constant",
    "inverse_sqrt_schedule": "inverse_sqrt",
    "exponential_decay": "exponential",
    "cosine_decay_schedule": "cosine",
    "linear_schedule": "linear",
    "linear_warmup": "warmup",
    "warmup_cosine_decay_schedule": "warmup_cosine",
}
SCHEDULE_HELP = "lr schedules: " + "; ".join(s.signature() for s in SCHEDULES.values())
_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*", re.S)


@dataclass(frozen=True)
class OptimizerSpec:
    """A parsed spec: the text as written (its label in tables and legends) and the
    optimizer it builds."""

    label: str
    optimizer: Any  # an Optimizer, or a modifier wrapped around one (adamw+cautious)
    name: str
    preset: str
    overrides: dict
    settings: dict = field(default_factory=dict)  # the modifiers' (adam+ema:decay=0.99)

    def config(self) -> dict:
        """JSON-ready: the spec text, the preset and every hyperparameter's value."""
        return {"spec": self.label, "preset": self.preset, **self.optimizer.config()}


def parse_schedule(text: str) -> Schedule:
    """``"cosine(0.01,1000)"`` → ``steplab.schedules.cosine_decay_schedule(0.01, 1000)``;
    ValueError naming the schedules and their arguments when it is not one."""
    match = _CALL.fullmatch(text)
    if match is None:
        raise ValueError(f"{text.strip()!r} is no schedule; write NAME(ARG,...); {SCHEDULE_HELP}")
    word, inside = match.group(1), match.group(2)
    name = SCHEDULE_ALIASES.get(word.lower(), word.lower())
    if name not in SCHEDULES:
        choices = [*SCHEDULES, *SCHEDULE_ALIASES]
        raise ValueError(
            f"unknown lr schedule {word!r}{_did_you_mean(word, choices)}; {SCHEDULE_HELP}"
        )
    syntax = SCHEDULES[name]
    where = syntax.signature()
    items = [item.strip() for item in inside.split(",")]
    if items == [""]:
        items = []
    arguments: dict[str, str] = {}
    for position, item in enumerate(items):
        key, eq, value = item.partition("=")
        if not eq:
            if any("=" in later for later in items[:position]):
                raise ValueError(f"{where}: positional argument {item!r} after a NAME=VALUE one")
            if position >= len(syntax.parameters):
                raise ValueError(
                    f"{where} takes at most {len(syntax.parameters)} arguments, got {len(items)}"
                )
            key, value = syntax.parameters[position], item
        key, value = key.strip(), value.strip()
        if key not in syntax.parameters:
            raise ValueError(
                f"{where} has no argument {key!r}{_did_you_mean(key, syntax.parameters)}"
            )
        if key in arguments:
            raise ValueError(f"{where}: {key} is given twice")
        if not value:
            raise ValueError(f"{where}: {key} has no value")
        arguments[key] = value
    missing = [p for p in syntax.parameters[: syntax.required] if p not in arguments]
    if missing:
        raise ValueError(f"{where} needs {', '.join(missing)} (got {text.strip()!r})")
    values = {k: _schedule_argument(where, k, v) for k, v in arguments.items()}
    try:
        return syntax.factory(**values, **syntax.fixed)
    except ValueError as exc:  # the schedule's own checks: ranges, decay_steps > warmup_steps
        raise ValueError(f"{where}: {exc}") from None


def _schedule_argument(where: str, key: str, text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {key} must be a number, got {text!r}") from None
    if key.endswith("_steps"):  # whole numbers: 1000, or 1e3
        if not (math.isfinite(value) and value == int(value)):
            raise ValueError(f"{where}: {key} must be an integer, got {text!r}")
        return int(value)
    return value


def format_schedule(schedule: Schedule) -> str:
    """A schedule as a spec writes it, every argument positional:
    ``cosine_decay_schedule(0.01, 1000)`` → ``"cosine(0.01,1000,0.0)"``
    (:func:`parse_schedule` gives it back)."""
    config = schedule.config()
    kind = config.pop("schedule")
    staircase = config.pop("staircase", False)
    name = SCHEDULE_ALIASES[kind]
    if staircase:
        name = "step"
    arguments = [config[p] for p in SCHEDULES[name].parameters]
    return f"{name}({','.join(map(repr, arguments))})"


def _split(params: str, text: str) -> list[str]:
    """``"lr=cosine(0.1,10),rho1=0.8"`` → ``["lr=cosine(0.1,10)", "rho1=0.8"]``: commas
    inside parentheses belong to a schedule's arguments."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(params):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {text!r}; {SCHEDULE_HELP}")
        elif char == "," and depth == 0:
            items.append(params[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced parentheses in {text!r}; {SCHEDULE_HELP}")
    items.append(params[start:])
    return [item.strip() for item in items if item.strip()]


def parse_value(key: str, text: str, field_interval: str | None):
    """A hyperparameter value from text: bool for ``"bool"`` fields, a schedule or a number
    for ``lr``, else a number (or a string for ``nonfinite``)."""
    raw = text.strip()
    if "(" in raw:
        if key != "lr":
            kind = {"bool": "true or false", None: "a word"}.get(
                field_interval, f"a number in {field_interval}"
            )
            raise ValueError(f"only lr takes a schedule; {key} must be {kind}, got {raw!r}")
        return parse_schedule(raw)
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
        also = (
            f"; or a schedule, e.g. {key}=cosine(0.01,1000); {SCHEDULE_HELP}" if key == "lr" else ""
        )
        raise ValueError(f"{key} must be a number in {field_interval}, got {raw!r}{also}") from None


def parse(spec: str) -> OptimizerSpec:
    """Parse ``NAME[@PRESET][:KEY=VALUE,...]`` into an optimizer (validated)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty optimizer spec; write {SYNTAX}")
    text = spec.strip()
    head, _, params = text.partition(":")
    name, _, preset = head.partition("@")
    name, preset = name.strip().lower(), (preset.strip().lower() or "seed")
    name, *wrappers = (part.strip() for part in name.split("+"))  # adamw+cautious
    for wrapper in wrappers:
        check_modifier(wrapper, text)
    every: dict[str, Any] = registered()  # both kinds (per-tensor: a problem with matrices)
    if name not in every:
        raise ValueError(
            f"unknown optimizer {name!r} in {text!r}{_did_you_mean(name, every)}; "
            f"choose one of: {', '.join(every)}"
        )
    cls = every[name]
    fields = {k: f.metadata["interval"] for k, f in cls.hyperparameters().items()}
    fields["nonfinite"] = None
    # Static options beyond hyperparameters (a matrix optimizer's ns_steps, graft, …): the
    # class reads them from their text itself.
    options = cls.options() if hasattr(cls, "options") else {}
    owners = _modifier_settings(name, wrappers, fields, text)  # key -> its modifier
    overrides: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {w: {} for w in wrappers}
    for item in _split(params, text):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            raise ValueError(f"bad hyperparameter {item!r} in {text!r}; write {SYNTAX}")
        if key in options and key not in fields:
            if key in overrides:
                raise ValueError(f"{key} is given twice in {text!r}")
            try:
                overrides[key] = cls.parse_option(key, value)
            except ValueError as exc:
                raise ValueError(f"{exc} (in {text!r})") from None
            continue
        if key not in fields and key not in owners:
            known = [*fields, *options, *owners]
            theirs = "".join(f"; {w}'s settings: {', '.join(WRAPPER_SETTINGS[w])}"
                             for w in wrappers if WRAPPER_SETTINGS[w])  # fmt: skip
            raise ValueError(
                f"{name} has no hyperparameter {key!r} (in {text!r}){_did_you_mean(key, known)}; "
                f"its hyperparameters are: {', '.join(fields)}{theirs}"
                + (f"; its options: {', '.join(options)}" if options else "")
            )
        if key in overrides or any(key in given for given in settings.values()):
            raise ValueError(f"{key} is given twice in {text!r}")
        interval = fields[key] if key in fields else WRAPPER_SETTINGS[owners[key]][key]
        try:
            parsed = parse_value(key, value, interval)
        except ValueError as exc:
            if "(" not in value:
                raise
            raise ValueError(f"{exc} (in {text!r})") from None
        if key in fields:
            overrides[key] = parsed
        else:
            settings[owners[key]][key] = parsed
    try:
        optimizer = cls.like(preset, **overrides)  # validates ranges and the preset's name
        for wrapper in wrappers:  # each modifier with its own settings
            optimizer = WRAPPERS[wrapper](optimizer, **settings[wrapper])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{exc} (in {text!r})") from None
    given = {k: v for w in wrappers for k, v in settings[w].items()}
    return OptimizerSpec(text, optimizer, "+".join([name, *wrappers]), preset, overrides, given)


def check_modifier(wrapper: str, text: str = "") -> None:
    """``ValueError`` naming every modifier (and the closest, "did you mean") unless
    ``wrapper`` is a registered one; ``text`` is where it was written (for the message).
    The command line and the web lab refuse an unknown modifier with these same words."""
    if wrapper not in WRAPPERS:
        where = f" in {text!r}" if text else ""
        raise ValueError(
            f"unknown modifier {wrapper!r}{where}{_did_you_mean(wrapper, WRAPPERS)}; "
            f"choose one of: {', '.join(WRAPPERS)}"
        )


def check_modifier_settings(wrapper: str, keys) -> None:
    """``ValueError`` naming ``wrapper``'s settings (and the closest) for a key that is
    none of them, e.g. ``ema`` given ``decy``."""
    allowed = WRAPPER_SETTINGS[wrapper]
    for key in keys:
        if key not in allowed:
            theirs = ", ".join(allowed) if allowed else "none"
            raise ValueError(
                f"{wrapper} has no setting {key!r}{_did_you_mean(key, allowed)}; "
                f"its settings: {theirs}"
            )


def _modifier_settings(name: str, wrappers: list[str], fields: dict, text: str) -> dict:
    """Which modifier each of the modifiers' settings belongs to; ValueError when a key
    would be ambiguous (the optimizer's and a modifier's, or two modifiers')."""
    owners: dict[str, str] = {}
    for wrapper in wrappers:
        if wrappers.count(wrapper) > 1:
            raise ValueError(f"the modifier {wrapper!r} is given twice in {text!r}")
        for key in WRAPPER_SETTINGS.get(wrapper, {}):
            other = name if key in fields else owners.get(key)
            if other is not None:
                raise ValueError(
                    f"{key!r} would be a setting of both {other} and {wrapper} in {text!r}"
                )
            owners[key] = wrapper
    return owners


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
