"""The ``steplab`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a function
``func(args) -> int`` (the exit code).

Errors: a user's mistake is one readable line on stderr and exit code 2, never a stack
trace. Those are :class:`UserError` (raised by the command line's own checks), the
``ValueError`` that steplab's functions raise for invalid input (bad hyperparameters,
unknown names: the message names the problem and the allowed values) and ``OSError``
(a path that cannot be read or written). Anything else (``TypeError``, ``KeyError``, …)
is a bug in steplab and shows its traceback; ``--traceback`` shows it for every error.
Ctrl+C exits with 130, after the command has written what it had computed; during
start-up too, with one line (``steplab.__main__`` guards the imports, which run before any
of this package's code).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback

from steplab._extras import MissingExtra


class UserError(ValueError):
    """A mistake in what the user asked for: printed as one line, exit code 2.

    A ``ValueError``, so code that calls the command functions and catches ValueError
    keeps working.
    """


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
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an error (for bug reports)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"steplab.cli.{name}").register(sub)
    return parser


def _hand_ctrl_c_back_to_python() -> None:
    """End the start-up guard of ``steplab.__main__`` (Ctrl+C exits at once, quietly): from
    here on Ctrl+C raises KeyboardInterrupt, which the command turns into partial outputs."""
    if getattr(signal.getsignal(signal.SIGINT), "steplab_start_up", False):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    try:  # start-up (importing every command's module) takes a second or two: Ctrl+C there
        parser = build_parser()  # exits 130 in one line too
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("steplab: interrupted", file=sys.stderr)
        return 130
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _hand_ctrl_c_back_to_python()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.traceback:
            traceback.print_exc()
        print(f"steplab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, MissingExtra) as exc:
        # A user's mistake (see the module's docstring): one line naming the problem.
        if args.traceback:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"steplab {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
