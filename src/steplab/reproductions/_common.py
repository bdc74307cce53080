"""What every reproduction shares: its :class:`Result`, tables, statistics and figures.

A reproduction reruns a published experiment with steplab and compares its numbers with
the paper's. Its result says where the numbers come from (``source``), how they were
made (``setup``), how that differs from the original (``differences``), the measured
tables, the qualitative claims checked (name → held or not) and the figures written.

A claim of the source that steplab *refutes* is not a failure but a **verdict**: it is
listed in ``expected`` as ``False`` (documented: refuted). A result is ``ok`` when every
claim came out as documented — held where expected to hold, refuted where the verdict is
"refuted" — so a change in either direction is noticed (``steplab reproduce`` exits 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from steplab._io import write_text


@dataclass
class Result:
    """The outcome of one reproduction (see the module docstring)."""

    name: str
    title: str
    source: str
    setup: str
    differences: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    claims: dict[str, bool] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    quick: bool = False
    #: claim → its documented outcome (``False``: a verdict "refuted"); absent means True
    expected: dict[str, bool] = field(default_factory=dict)
    #: the summary numbers the claims are computed from (saved in the JSON, so a test can
    #: recheck the claims, or break one part of the setup and reuse the rest)
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # wall time of the run (set by ``steplab reproduce``)

    def __post_init__(self):
        unknown = set(self.expected) - set(self.claims)
        if unknown:
            raise ValueError(f"verdicts for claims that were not checked: {sorted(unknown)}")

    def documented(self, claim: str) -> bool:
        """The documented outcome of ``claim``: True (holds) unless pinned as refuted."""
        return self.expected.get(claim, True)

    @property
    def changed(self) -> list[str]:
        """The claims whose outcome differs from the documented one."""
        return [c for c, held in self.claims.items() if held != self.documented(c)]

    @property
    def ok(self) -> bool:
        """Whether every claim came out as documented (held, or refuted as pinned)."""
        return not self.changed

    def status(self, claim: str) -> str:
        """``ok``, ``refuted (as documented)``, ``FAILED`` or ``CHANGED: now holds``."""
        held, documented = self.claims[claim], self.documented(claim)
        if held == documented:
            return "ok" if held else "refuted (as documented)"
        return "FAILED" if documented else "CHANGED: documented as refuted, now holds"

    def markdown(self) -> str:
        """Tables and claims as Markdown (what ``docs/reproductions.md`` shows)."""
        parts = []
        for caption, rows in self.tables.items():
            parts += [f"**{caption}**", "", markdown_table(rows), ""]
        parts += ["Claims checked (✅ holds, ❌ refuted; *verdict*: refuted, as documented):", ""]
        for claim, held in self.claims.items():
            mark = "✅" if held else "❌"
            note = "" if held == self.documented(claim) else " — **CHANGED**"
            verdict = " *(verdict)*" if not self.documented(claim) else ""
            parts.append(f"- {mark} {claim}{verdict}{note}")
        return "\n".join(parts)

    def to_json(self, path) -> Path:
        """Write the result (tables, claims, figure paths) as JSON."""
        path = Path(path)
        payload = {
            "name": self.name,
            "title": self.title,
            "source": self.source,
            "setup": self.setup,
            "differences": self.differences,
            "quick": self.quick,
            "tables": _jsonable(self.tables),
            # bool(): a claim computed with NumPy is an np.bool_, which json cannot write
            "claims": {c: bool(held) for c, held in self.claims.items()},
            "expected": {c: bool(self.documented(c)) for c in self.claims},
            "numbers": _jsonable(self.numbers),
            "seconds": self.seconds,
            "ok": bool(self.ok),
            "figures": [Path(f).name for f in self.figures],  # beside the JSON, in --out
        }
        write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return path


def load(path) -> Result:
    """A :class:`Result` read back from the JSON :meth:`Result.to_json` wrote (figures as
    paths, tables and numbers as written), e.g. to render it into the documentation."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return Result(
        name=payload["name"],
        title=payload["title"],
        source=payload["source"],
        setup=payload["setup"],
        differences=payload["differences"],
        tables=payload["tables"],
        claims=payload["claims"],
        figures=[Path(f) for f in payload["figures"]],
        quick=payload["quick"],
        expected=payload.get("expected", {}),
        numbers=payload.get("numbers", {}),
        seconds=payload.get("seconds"),
    )


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# --------------------------------------------------------------------------------------
# Numbers and tables
# --------------------------------------------------------------------------------------


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of finite ``values``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return float(np.mean(values)), std


def pm(values, digits: int = 3, scale: float = 1.0) -> str:
    """``"mean ± std"`` of ``values`` times ``scale``, e.g. accuracies as percent."""
    mean, std = mean_std(np.asarray(values, dtype=float) * scale)
    if math.isnan(mean):
        return "diverged"
    if np.size(values) == 1:  # one seed: no spread to report (not "± 0.0")
        return f"{mean:.{digits}f} (1 seed)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt(value, digits: int = 4) -> str:
    """A compact number for a table cell (``g`` format; NaN/inf as "diverged")."""
    if isinstance(value, str):
        return value
    if value is None or not math.isfinite(float(value)):
        return "diverged"
    return f"{float(value):.{digits}g}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub Markdown table of ``rows`` (dicts with the same keys, in order)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def text_table(rows: Sequence[dict[str, Any]]) -> str:
    """The same table as aligned plain text, for the terminal."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def seeds_list(seeds: int | None, default: int, first: int = 0) -> list[int]:
    """``seeds`` consecutive seeds from ``first`` (``default`` of them if ``None``)."""
    n = default if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    return list(range(first, first + int(n)))


def eval_curve(run, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a run's history where ``column`` was evaluated: (epochs or steps, values)."""
    history = run.history
    values = np.asarray(history[column], dtype=float)
    x = history["epoch"] if "epoch" in history else history["step"]
    keep = ~np.isnan(values)
    return np.asarray(x, dtype=float)[keep], values[keep]


def save_figure(fig, out: Path, name: str) -> Path:
    """Save ``fig`` as ``out/<name>.png`` with steplab's style and close it."""
    from steplab.viz import save

    return save(fig, Path(out) / name)[0]
