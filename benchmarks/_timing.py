"""Shared helper for the benchmarks: a plain Markdown table.

Timing itself lives in one place, :mod:`steplab.cli.bench_measure` (``median_time``,
``interleaved_medians``), which ``steplab bench`` uses too; the benchmarks import it there.
"""

from __future__ import annotations


def print_table(header: list[str], rows: list[list], title: str = "") -> str:
    """Print (and return) a Markdown table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    text = (f"\n{title}\n\n" if title else "") + "\n".join(lines)
    print(text, flush=True)
    return text
