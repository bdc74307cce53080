"""Shared helpers for the benchmarks: medians of many repeats, and a plain table."""

from __future__ import annotations

import time

import numpy as np


def median_time(call, repeats: int = 15, warmup: int = 2) -> float:
    """Median wall time of ``call()`` in seconds (the machine may be shared: medians)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


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
