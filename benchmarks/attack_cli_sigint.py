"""Ctrl+C at random moments of ``steplab``'s start-up: how does the command end?

Starts ``python -m steplab ARGS`` ``--tries`` times and sends SIGINT after a delay drawn
uniformly from ``[0, --within]`` seconds (seeded), then sorts the outcomes: exit 130 with
one quiet line, a traceback (told apart: one through steplab's code, or one from the
interpreter's own start-up — ``site``, ``runpy`` — which no package can guard), death by
the signal itself (SIGINT before Python installs its handler: the shell reports 130 too,
nothing is printed), or a normal exit (the command finished first). Exit status 1 if a
traceback went through steplab's code. Bounded: ``--tries`` processes, each killed after 60 s.

    python benchmarks/attack_cli_sigint.py --tries 30 --within 2.5 -- list optimizers
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter


def outcome(code: int, err: str) -> str:
    if "Traceback" in err:
        if f"{os.sep}steplab{os.sep}" not in err:  # no frame of steplab's code
            return "traceback from the interpreter's start-up, before any steplab code"
        return "traceback"
    if code == -signal.SIGINT:
        return "died by SIGINT, silent"
    if code == 130:
        return "exit 130, " + ("one line" if len(err.strip().splitlines()) <= 1 else "more")
    return f"exit {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--within", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("command", nargs="*", default=["list", "optimizers"])
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    for _ in range(args.tries):
        delay = rng.uniform(0, args.within)
        process = subprocess.Popen(
            [sys.executable, "-m", "steplab", *args.command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        counts[outcome(process.returncode, err)] += 1
    print(f"{args.tries} SIGINTs within {args.within:g} s of `steplab {' '.join(args.command)}`:")
    for what, n in counts.most_common():
        print(f"  {n:>4}  {what}")
    return 1 if counts["traceback"] else 0


if __name__ == "__main__":
    sys.exit(main())
