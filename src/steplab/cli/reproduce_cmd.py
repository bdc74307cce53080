"""``steplab reproduce NAME``: rerun a published result with steplab and compare.

``steplab reproduce --list`` names the reproductions; ``steplab reproduce NAME [--quick]
[--out DIR] [--seeds N]`` runs one (or ``all``), writes its figures, ``repro-NAME.json``
and ``repro-NAME.md`` into DIR, prints the measured table next to the published numbers
and says which qualitative claims held. A claim of the source that steplab refutes is a
pinned verdict: exit code 0 when every claim came out as documented (held, or refuted as
documented), 1 when one changed.
"""

from __future__ import annotations

import argparse
import sys
import time

from steplab._extras import MissingExtra
from steplab._io import write_text
from steplab.cli import common


def _seeds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be a positive integer, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"seeds must be a positive integer, got {value}")
    return value


def _listing() -> str:
    """Every reproduction, one line each, for the end of ``--help`` (``--help`` works
    without the figure and data extras, which the reproductions themselves need)."""
    try:
        from steplab import reproductions
    except MissingExtra as exc:
        return f"reproductions: listed once their extras are installed ({exc})"

    width = max(map(len, reproductions.REPRODUCTIONS))
    lines = [f"  {n:<{width}}  {e.title}" for n, e in reproductions.REPRODUCTIONS.items()]
    return "reproductions:\n" + "\n".join(lines)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="rerun a published result (MNIST-1D, Kingma & Ba, DeepOBS, Wilson, Reddi et al.)",
        description=(
            "Rerun a published experiment with steplab, write its figure and table, and "
            "compare them with the published numbers. NAME 'all' runs every one."
        ),
        epilog=_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="a reproduction, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the reproductions and exit")
    parser.add_argument(
        "--quick", action="store_true", help="the reduced version the tests run (seconds)"
    )
    parser.add_argument(
        "--out", default="out/reproductions", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--seeds", type=_seeds, default=None, help="number of seeds (default: per reproduction)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from steplab import reproductions
    from steplab.reproductions._common import text_table

    if args.list:
        width = max(map(len, reproductions.REPRODUCTIONS))
        for name, entry in reproductions.REPRODUCTIONS.items():
            print(f"{name:<{width}}  {entry.title}")
        return 0
    if not args.name:
        raise ValueError(
            "give a reproduction NAME (or 'all', or --list); known: "
            + ", ".join(reproductions.REPRODUCTIONS)
        )
    names = list(reproductions.REPRODUCTIONS) if args.name == "all" else [args.name]
    for name in names:
        reproductions.get(name)  # an unknown name fails before anything runs
    out = common.prepare_out(args.out)
    failed = []
    for name in names:
        entry = reproductions.get(name)
        print(f"== {name}: {entry.title}{' (quick)' if args.quick else ''}", flush=True)
        print(f"   source: {entry.source}", flush=True)
        start = time.perf_counter()
        result = reproductions.run(
            name,
            out,
            quick=args.quick,
            seeds=args.seeds,
            progress=not args.no_progress and sys.stderr.isatty(),  # bars only on a terminal
        )
        result.seconds = round(time.perf_counter() - start, 1)
        result.to_json(out / f"repro-{name}.json")
        write_text(out / f"repro-{name}.md", result.markdown() + "\n")
        for caption, rows in result.tables.items():
            print(f"\n{caption}\n{text_table(rows)}")
        held_count = sum(result.claims.values())
        refuted = sum(1 for c in result.claims if not result.documented(c))
        print(
            f"\nclaims: {held_count} of {len(result.claims)} hold"
            + (f" ({refuted} refuted by documented verdict)" if refuted else "")
            + ("; every outcome as documented" if result.ok else "; OUTCOME CHANGED")
        )
        for claim in result.claims:
            print(f"  [{result.status(claim)}] {claim}")
        for figure in result.figures:
            print(f"figure: {figure}")
        print(f"({result.seconds:.1f} s)\n", flush=True)
        if not result.ok:
            failed.append(name)
    if failed:
        print(
            f"steplab reproduce: a claim's outcome differs from the documented one in "
            f"{', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0
