"""``python -m steplab …`` is the ``steplab`` command; :func:`run` is also its console entry
point (``pyproject.toml``, ``[project.scripts]``).

Ctrl+C while the command starts. Python's own SIGINT handler raises ``KeyboardInterrupt``
wherever the interpreter happens to be, in the middle of an import too, and that prints a
traceback. So the first thing the command does is install a handler that ends the process
at once with one line and exit code 130; ``steplab.cli.main`` gives Ctrl+C back to Python
(``KeyboardInterrupt``) just before the command runs, so that a command can still write
what it has computed. ``import steplab`` (which runs before this module) imports nothing
heavy, so only the interpreter's own start-up (a few hundredths of a second) is unguarded.
"""

import os
import sys

TYPE_CHECKING = False  # typing's would be one more unguarded import
if TYPE_CHECKING:
    import signal as _signal  # the same functions, with types
else:
    import _signal  # signal's C half: `import signal` would import enum first, unguarded


class _ExitQuietly:
    """The SIGINT handler while the command starts: one line on stderr, exit 130."""

    steplab_start_up = True  # how steplab.cli.main recognises it (this module may be __main__)

    def __call__(self, signum: int, frame: object) -> None:
        os.write(2, b"steplab: interrupted\n")
        os._exit(130)  # nothing has been written yet that needs flushing or cleaning


def _guard() -> None:
    # Only in place of Python's own handler: a SIGINT the caller ignores stays ignored.
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _ExitQuietly())


def run() -> int:
    """The ``steplab`` command: guard start-up against Ctrl+C, then run ``steplab.cli``."""
    _guard()
    from steplab.cli import main

    code = main()
    _guard()  # and the interpreter's shutdown after it
    return code


if __name__ == "__main__":
    sys.exit(run())
