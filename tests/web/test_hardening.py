"""The web lab under abuse: bodies without a length, foreign Host headers, strict types,
the error format of every status, and bounded work (budget, saturation, disconnects)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time

import pytest

from steplab.web import app as web_app
from steplab.web.app import MAX_BODY_BYTES, SECURITY_HEADERS, Limits, create_app

# 193 characters whose gradient costs milliseconds per step: 12 × 2000 steps took a minute.
HEAVY_FORMULA = "(x+y)/(" * 24 + "x" + ")" * 24
HEAVY_RUN = {
    "problem": {"expression": HEAVY_FORMULA},
    "optimizers": [{"name": "adam"}] * 12,
    "steps": 2000,
}
SMALL_RUN = {"problem": {"name": "rosenbrock"}, "optimizers": [{"name": "adam"}], "steps": 5}


def assert_error_format(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    for key, value in SECURITY_HEADERS.items():
        assert response.headers[key] == value
    return body["message"]


@contextlib.contextmanager
def serving(**options):
    """The app under uvicorn on a free loopback port, in a thread; yields (host, port)."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(**options), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def request(port, method, path, body=None, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if response.getheader("Content-Type", "").startswith("application/json"):
            data = json.loads(data)
        return response.status, response.msg, data
    finally:
        connection.close()


# -- body limit -------------------------------------------------------------------------


def test_chunked_body_without_length_is_cut_at_the_limit():
    """The audit's attack: a chunked body of 300 MB was read whole. Now the server answers
    413 after reading just past the limit, while the client is still sending."""
    with serving() as (host, port), socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 16384
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        for _ in range(2000):  # at most 32 MB; the answer must come long before
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if answer:
                break
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 40 * MAX_BODY_BYTES  # answered while the body was still coming
    assert b"content-security-policy" in answer.lower()
    assert b'"message":"request body larger than' in answer


def test_declared_length_over_the_limit_is_413(client):
    response = client.post(
        "/api/run", content=b"{}", headers={"Content-Length": str(MAX_BODY_BYTES + 1)}
    )
    assert "larger than" in assert_error_format(response, 413)


# -- Host header (DNS rebinding) --------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.nip.io"])
def test_foreign_host_header_is_refused(client, host):
    response = client.get("/api/meta", headers={"Host": host})
    assert "is not one this server answers to" in assert_error_format(response, 400)


@pytest.mark.parametrize("host", ["localhost:8765", "127.0.0.1", "[::1]:8765", "LOCALHOST"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/meta", headers={"Host": host}).status_code == 200


def test_allowed_hosts_are_configurable():
    from fastapi.testclient import TestClient

    with TestClient(create_app(allowed_hosts=["lab.example"])) as custom:
        assert custom.get("/", headers={"Host": "lab.example:80"}).status_code == 200
        assert custom.get("/", headers={"Host": "localhost"}).status_code == 400
    with TestClient(create_app(allowed_hosts=["*"])) as anything:
        assert anything.get("/", headers={"Host": "whatever.example"}).status_code == 200


# -- one error format, headers everywhere -------------------------------------------------


def test_every_status_has_the_headers_and_a_message(client):
    assert_error_format(client.get("/no/such/page"), 404)
    assert "method not allowed" in assert_error_format(client.get("/api/run"), 405)
    assert_error_format(client.post("/api/run", content=b"{not json"), 422)
    assert_error_format(client.post("/api/run", json={"steps": 5}), 422)
    for path in ("/", "/api/meta", "/static/app.js"):
        response = client.get(path)
        assert response.status_code == 200
        for key, value in SECURITY_HEADERS.items():
            assert response.headers[key] == value


def test_a_bug_is_a_500_with_the_same_format(monkeypatch):
    from fastapi.testclient import TestClient

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(web_app.engine, "trajectory", broken)
    with TestClient(create_app(), base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        message = assert_error_format(c.post("/api/run", json=SMALL_RUN), 500)
    assert "internal error" in message and "secret detail" not in message  # no internals leak


def test_docs_are_off_and_the_schema_stays(client):
    assert_error_format(client.get("/docs"), 404)
    assert_error_format(client.get("/redoc"), 404)
    assert client.get("/openapi.json").json()["info"]["title"] == "steplab web lab"


# -- strict types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": True}, "steps"),
        ({"steps": "200"}, "steps"),
        ({"steps": 20.0}, "steps"),
        ({"seed": "1"}, "seed"),
        ({"start": ["1", 2]}, "start.0"),
        ({"start": [1, 2, 3]}, "start"),
        ({"problem": {"name": "rosenbrock", "noise": "0.5"}}, "problem.noise"),
        ({"optimizers": [{"name": "adam", "hyperparameters": {"lr": "0.1"}}]}, "optimizers.0"),
    ],
)
def test_types_are_strict(client, change, field):
    message = assert_error_format(client.post("/api/run", json={**SMALL_RUN, **change}), 422)
    assert message.startswith(field), message


def test_integers_still_pass_where_floats_are_expected(client):
    body = {
        **SMALL_RUN,
        "start": [1, 2],
        "optimizers": [{"name": "sgd", "hyperparameters": {"lr": 1}}],
    }
    data = client.post("/api/run", json=body).json()
    assert data["start"] == [1.0, 2.0] and data["runs"][0]["config"]["lr"] == 1.0


# -- bounded work ---------------------------------------------------------------------------


def test_a_request_over_its_budget_is_stopped_at_the_budget():
    from fastapi.testclient import TestClient

    with TestClient(create_app(limits=Limits(budget_s=0.5)), base_url="http://127.0.0.1") as c:
        started = time.monotonic()
        response = c.post("/api/run", json=HEAVY_RUN)
        elapsed = time.monotonic() - started
        message = assert_error_format(response, 422)
        assert "more than the 0.5 s budget" in message and "of 12 optimizers done" in message
        assert elapsed < 5  # stopped near 0.5 s, not after the minute the work needs
        sweep = {**HEAVY_RUN, "optimizers": [{"name": "adam"}] * 2, "points": 40}
        assert "budget" in assert_error_format(c.post("/api/sweep", json=sweep), 422)
        assert c.post("/api/run", json=SMALL_RUN).status_code == 200  # the worker is free


def test_saturated_lab_answers_429_and_a_gone_client_frees_its_worker():
    limits = Limits(workers=1, max_waiting=0, queue_wait_s=0.2, budget_s=60)
    with serving(limits=limits) as (host, port):
        # A heavy request occupies the only worker; its client then leaves.
        sock = socket.create_connection((host, port), timeout=10)
        body = json.dumps(HEAVY_RUN).encode()
        sock.sendall(
            b"POST /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        time.sleep(0.5)
        status, headers, data = request(port, "POST", "/api/run", SMALL_RUN)
        assert status == 429 and headers["Retry-After"] == "2"
        assert "the lab is busy" in data["message"]
        assert headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        status, _, _ = request(port, "GET", "/")  # the page is served while it computes
        assert status == 200
        sock.close()  # the client goes away: its work must stop (it had a minute left)
        deadline = time.monotonic() + 10
        while True:
            status, _, data = request(port, "POST", "/api/run", SMALL_RUN)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200, data


def test_limits_are_validated():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        Limits(workers=0)
    with pytest.raises(ValueError, match="budget_s must be a number of seconds"):
        Limits(budget_s=float("nan"))
    # the bounds themselves (mutation study: `< 3600` -> `<= 3600` survived)
    with pytest.raises(ValueError, match=r"budget_s must be a number of seconds in \(0, 3600\)"):
        Limits(budget_s=3600)
    with pytest.raises(ValueError, match=r"queue_wait_s must be a number of seconds"):
        Limits(queue_wait_s=0)
    assert Limits(budget_s=3599.5).budget_s == 3599.5
    assert Limits(retry_after_s=3600).retry_after_s == 3600 and Limits(retry_after_s=1)


def test_meta_tells_the_budget(client):
    assert client.get("/api/meta").json()["limits"]["budget_s"] == Limits().budget_s


def test_default_limits_are_those_docs_weblab_md_quotes():
    import os

    limits = Limits()
    assert (limits.budget_s, limits.queue_wait_s, limits.max_waiting) == (10.0, 3.0, 8)
    assert limits.retry_after_s == 2 and web_app.MAX_REFUSED_CLIENTS == 4096
    assert limits.workers == max(1, min(4, (os.cpu_count() or 2) - 1))
    assert MAX_BODY_BYTES == 64 * 1024
