"""Load test of the web lab on loopback: is ``GET /`` fast while the heaviest requests run?

Starts ``steplab serve`` (default :class:`~steplab.web.app.Limits`) in a child process on
127.0.0.1 and a free port, then measures, each phase for ``--seconds``:

1. ``GET /`` alone, from ``--clients`` threads: the baseline;
2. the same ``GET /`` traffic while ``--heavy`` threads keep sending the heaviest requests
   the API allows (12 optimizers × 2000 steps on Rosenbrock; the same on a 193-character
   formula whose gradient costs milliseconds per step, which needs about a minute and must
   be stopped at its budget; a sweep at the work limit; a 200 × 200 grid of that formula),
   each sent again as soon as the last one is answered (after 1 s on a 429, as a polite
   client does);
3. the same again, plus ``--flood`` threads that send those heavy requests and retry at
   once after a 429 (an impolite client, or a page in a loop): the lab must turn them
   away cheaply (before parsing their bodies), or ``GET /`` slows down.

It prints throughput and p50/p99/max latency of ``GET /`` in each phase beside the
baseline of the same run (and each p50/p99 as a multiple of the baseline's), and per kind
of heavy request the statuses and the longest answer against the per-request budget.
Bounded: loopback only, at most ``--max-requests`` per phase and thread, about
3 × ``--seconds`` in all.

    python benchmarks/bench_web_load.py [--seconds 15] [--clients 4] [--heavy 6] [--flood 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np

try:
    from benchmarks._timing import print_table
except ImportError:
    from _timing import print_table


FORMULA = "(x+y)/(" * 24 + "x" + ")" * 24
TWELVE = [
    {"name": name}
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta")
    + ("adam", "adamw", "adamax", "nadam", "radam", "lion")
]
HEAVY = {
    "run 12×2000 rosenbrock": (
        "/api/run",
        {"problem": {"name": "rosenbrock"}, "optimizers": TWELVE, "steps": 2000},
    ),
    "run 12×2000 formula": (
        "/api/run",
        {"problem": {"expression": FORMULA}, "optimizers": TWELVE, "steps": 2000},
    ),
    "sweep 5×40×1000 rosenbrock": (
        "/api/sweep",
        {
            "problem": {"name": "rosenbrock", "noise": 1.0},
            "optimizers": TWELVE[:5],
            "steps": 1000,
            "points": 40,
        },
    ),
    "grid 200² formula": ("/api/grid", {"problem": {"expression": FORMULA}, "resolution": 200}),
}


def request(port: int, method: str, path: str, body=None, timeout: float = 120.0):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        started = time.perf_counter()
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def hammer(port, method, path, body, stop, results, limit, pause_on_429=0.0):
    for _ in range(limit):
        if stop.is_set():
            return
        status, seconds = request(port, method, path, body)
        results.append((status, seconds))
        if status == 429 and pause_on_429:
            time.sleep(pause_on_429)


def phase(port, seconds, clients, heavy_threads, max_requests, flood=0):
    stop = threading.Event()
    pages: list[tuple[int, float]] = []
    heavy: dict[str, list] = {name: [] for name in HEAVY}
    threads = [
        threading.Thread(target=hammer, args=(port, "GET", "/", None, stop, pages, max_requests))
        for _ in range(clients)
    ]
    names = list(HEAVY)
    for i in range(heavy_threads):
        name = names[i % len(names)]
        path, body = HEAVY[name]
        threads.append(
            threading.Thread(
                target=hammer,
                args=(port, "POST", path, body, stop, heavy[name], max_requests, 1.0),
            )
        )
    flooding = None
    if flood:  # in a process of its own: its threads must not hold the measuring clients' GIL
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        answers = context.Queue()
        go = context.Event()
        flooding = context.Process(
            target=flood_process, args=(port, flood, seconds, max_requests, answers, go)
        )
        # Started, and its imports done, before the clock: the phase measures the flood, not
        # a Python process starting up on the same cores.
        flooding.start()
        assert answers.get(timeout=300) == "ready"
        go.set()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    flooded: dict[str, list] = {name: [] for name in HEAVY}
    if flooding is not None:
        flooded = answers.get(timeout=300)
        flooding.join(timeout=60)
    return pages, heavy, flooded, time.perf_counter() - started


def flood_process(port, clients, seconds, max_requests, answers, go) -> None:
    """``clients`` threads sending the heavy requests, each again at once after a 429."""
    answers.put("ready")
    go.wait()
    stop = threading.Event()
    heavy: dict[str, list] = {name: [] for name in HEAVY}
    names = list(HEAVY)
    threads = []
    for i in range(clients):
        name = names[i % len(names)]
        path, body = HEAVY[name]
        threads.append(
            threading.Thread(
                target=hammer, args=(port, "POST", path, body, stop, heavy[name], max_requests)
            )
        )
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    answers.put(heavy)


def page_row(label, pages, elapsed, baseline=None):
    ms = np.array([s for _, s in pages]) * 1e3
    statuses = Counter(status for status, _ in pages)
    p50, p99 = np.median(ms), np.percentile(ms, 99)
    if baseline is None:
        relative = "1 / 1 (baseline)"
    else:
        base = np.array([s for _, s in baseline]) * 1e3
        relative = f"{p50 / np.median(base):.1f} / {p99 / np.percentile(base, 99):.1f}"
    return [
        label,
        len(pages),
        f"{len(pages) / elapsed:.0f}",
        f"{p50:.1f}",
        f"{p99:.1f}",
        f"{ms.max():.1f}",
        relative,
        " ".join(f"{k}×{v}" for k, v in sorted(statuses.items())),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=4, help="threads sending GET /")
    parser.add_argument("--heavy", type=int, default=6, help="threads sending heavy requests")
    parser.add_argument(
        "--flood", type=int, default=8, help="threads sending heavy requests, retrying at once"
    )
    parser.add_argument("--max-requests", type=int, default=5000, help="per thread and phase")
    args = parser.parse_args(argv)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The real command, as a user starts it.
    server = subprocess.Popen(
        [sys.executable, "-m", "steplab", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the web lab's server did not start") from None
                time.sleep(0.1)
        from steplab.web.app import Limits

        budget = Limits().budget_s
        alone, _, _, elapsed_alone = phase(port, args.seconds, args.clients, 0, args.max_requests)
        beside, heavy, _, elapsed_beside = phase(
            port, args.seconds, args.clients, args.heavy, args.max_requests
        )
        flooded, polite, flood_heavy, elapsed_flood = phase(
            port, args.seconds, args.clients, args.heavy, args.max_requests, args.flood
        )
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"\nsteplab web lab on 127.0.0.1, {os.cpu_count()} CPUs; {args.clients} clients "
        f"sending GET /, {args.heavy} sending heavy requests (1 s pause after a 429), "
        f"{args.flood} flooding (no pause); {args.seconds:g} s per phase"
    )
    print_table(
        [
            "GET /",
            "requests",
            "req/s",
            "p50 [ms]",
            "p99 [ms]",
            "max [ms]",
            "p50/p99 ÷ alone",
            "statuses",
        ],
        [
            page_row("alone", alone, elapsed_alone),
            page_row("beside heavy requests", beside, elapsed_beside, alone),
            page_row("beside heavy + flood", flooded, elapsed_flood, alone),
        ],
    )
    flood_answers = [r for results in flood_heavy.values() for r in results]
    print(
        f"\nflood phase: {len(flood_answers)} heavy requests answered in {elapsed_flood:.1f} s "
        f"({len(flood_answers) / elapsed_flood:.0f}/s), "
        + " ".join(f"{k}×{v}" for k, v in sorted(Counter(s for s, _ in flood_answers).items()))
    )
    rows = []
    worst = 0.0
    for name in heavy:
        results = heavy[name] + polite[name] + flood_heavy[name]
        if not results:
            continue
        statuses = Counter(status for status, _ in results)
        longest = max(s for _, s in results)
        worst = max(worst, longest)
        rows.append(
            [
                name,
                len(results),
                " ".join(f"{k}×{v}" for k, v in sorted(statuses.items())),
                f"{np.median([s for _, s in results]):.2f}",
                f"{longest:.2f}",
            ]
        )
    print_table(
        ["heavy request", "answered", "statuses", "median [s]", "longest [s]"],
        rows,
        title=f"Heavy requests (budget {budget:g} s per request)",
    )
    errors = sum(s >= 500 for s, _ in alone + beside + flooded) + sum(
        s >= 500
        for results in (*heavy.values(), *polite.values(), *flood_heavy.values())
        for s, _ in results
    )
    p99 = float(np.percentile([s for _, s in beside], 99) * 1e3)
    p99_flood = float(np.percentile([s for _, s in flooded], 99) * 1e3)
    print(
        f"\n5xx answers: {errors}; GET / p99 beside heavy requests {p99:.1f} ms, beside the "
        f"flood {p99_flood:.1f} ms (goal < 100); longest heavy answer {worst:.2f} s "
        f"(budget {budget:g} s)"
    )
    return 0 if errors == 0 and worst <= budget + 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
