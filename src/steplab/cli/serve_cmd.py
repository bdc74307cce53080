"""``steplab serve``: start the interactive web lab on this machine and print its URL.

The server listens on 127.0.0.1 by default, so only this machine can reach it, and it
opens nothing outside: the page's assets ship with the package. It never starts a browser
itself; open the printed URL. Connections follow :mod:`steplab.web.server`'s rules: a
complete request head within 10 s, its body within 10 s more, idle keep-alive 5 s, at
most 512 connections (below the open-file limit), malformed HTTP answered in JSON.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

from steplab._extras import requires


def _port(text: str) -> int:
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be an integer, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {port}")
    return port


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="start the interactive web lab (a local server) and print its URL",
        description=(
            "Serve the web lab: pick a test function or type a formula, click a start point, "
            "toggle optimizers and watch their trajectories, sweep the step size. "
            "Listens on 127.0.0.1 unless --host says otherwise."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--port", type=_port, default=8765, help="port (default: %(default)s)")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further name or address the Host header may carry (repeatable; '*' for any). "
        "By default the server answers only to 127.0.0.1, localhost, ::1 and the --host "
        "address, which stops DNS-rebinding pages from reaching it",
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="never open a browser (the default too: the URL is only printed)",
    )
    parser.set_defaults(func=run)


def _check_free(host: str, port: int) -> None:
    """Fail with one readable line, not a uvicorn traceback, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    with requires("web", "steplab serve"):
        import uvicorn  # noqa: F401  (the one-line error names the extra if it is missing)

    from steplab.web import server
    from steplab.web.app import LOOPBACK_HOSTS, create_app

    _check_free(args.host, args.port)
    if not _is_loopback(args.host):
        print(
            f"steplab serve: warning: listening on {args.host}: other machines can reach the "
            "lab (it answers to the names given with --allow-host)",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"steplab web lab: http://{shown}:{args.port}/  (Ctrl+C to stop)", flush=True)
    hosts = [*LOOPBACK_HOSTS, args.host, *args.allow_host]
    # The lab computes in worker threads; a 1 ms switch interval (Python's default is 5 ms)
    # hands the GIL back to the event loop sooner, so pages stay fast while they compute.
    sys.setswitchinterval(0.001)
    # The lab's protocol: JSON errors with the security headers for malformed HTTP, a
    # header timeout, a keep-alive timeout and a connection cap (steplab.web.server).
    server.server(create_app(allowed_hosts=hosts), args.host, args.port).run()
    return 0
