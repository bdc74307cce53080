"""``steplab serve``: options, a readable error for a taken port, and a real server process."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from steplab.cli import serve_cmd


def parse(argv):
    parser = argparse.ArgumentParser()
    serve_cmd.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_defaults_listen_on_loopback_only():
    args = parse([])
    assert (args.host, args.port, args.no_browser) == ("127.0.0.1", 8765, False)
    assert parse(["--port", "9000", "--no-browser"]).port == 9000


@pytest.mark.parametrize("port", ["0", "70000", "eighty"])
def test_bad_port_is_a_usage_error(port, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["--port", port])
    assert exit_info.value.code == 2
    assert "port must be" in capsys.readouterr().err


def test_taken_port_is_one_readable_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_cmd.run(parse(["--port", str(port)]))


SERVE = """
import argparse, sys
from steplab.cli import serve_cmd
parser = argparse.ArgumentParser()
serve_cmd.register(parser.add_subparsers())
args = parser.parse_args(["serve", "--port", sys.argv[1], "--no-browser"])
sys.exit(args.func(args))
"""


def test_serve_prints_the_url_and_answers_there():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"steplab web lab: http://127.0.0.1:{port}/")
        url = f"http://127.0.0.1:{port}/api/meta"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    meta = json.load(response)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert "adam" in [o["name"] for o in meta["optimizers"]]
    finally:
        process.terminate()
        process.wait(timeout=10)
