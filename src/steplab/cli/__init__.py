"""The ``steplab`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a function
``func(args) -> int`` (the exit code). ``main`` turns every error a user can cause
(``steplab.errors.UserError`` and its friends) into one readable line on stderr and
exit code 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order ``steplab --help`` lists them.
COMMANDS = [
    "list_cmd",
    "run_cmd",
    "compare_cmd",
    "animate_cmd",
    "sweep_cmd",
    "demo_cmd",
    "serve_cmd",
    "reproduce_cmd",
    "bench_cmd",
    "benchmark_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    from steplab import __version__

    parser = argparse.ArgumentParser(
        prog="steplab",
        description="A lab for first-order optimizers with adaptive step sizes.",
    )
    parser.add_argument("--version", action="version", version=f"steplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"steplab.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("steplab: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        # Errors a user can cause: bad option values, unknown names, missing files.
        # The message names the problem and the allowed values; no stack trace.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"steplab {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
