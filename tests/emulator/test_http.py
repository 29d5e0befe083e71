"""The HTTP layer: keep-alive, body limits, malformed requests, lifecycle, the CLI."""

from __future__ import annotations

import gc
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import httpx
import pytest

import pd_integrations
from pd_integrations.emulator import Emulator, httpserver

from .conftest import trigger_body

BODY = json.dumps(trigger_body("raw")).encode()


def exchange(emulator: Emulator, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes and read until the server closes the connection.

    ``Host: x`` in ``data`` becomes the emulator's address (others are refused).
    """
    data = data.replace(b"\r\nHost: x\r\n", b"\r\nHost: 127.0.0.1:%d\r\n" % emulator.port)
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer.split(b" ", 2)[1])


def post_head(length: int | str, extra: str = "") -> bytes:
    return (
        f"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def test_keep_alive_serves_many_requests_on_one_connection(emulator: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    try:
        sockets = set()
        for i in range(5):
            body = json.dumps(trigger_body(f"k{i}"))
            connection.request("POST", "/v2/enqueue", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 202
            assert response.getheader("Connection") is None
            response.read()
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
    finally:
        connection.close()
    assert len(emulator.alerts()) == 5


def test_body_shorter_than_its_content_length(emulator: Emulator) -> None:
    answer = exchange(emulator, post_head(len(BODY) + 50) + BODY, half_close=True)
    assert status_of(answer) == 400
    assert b"incomplete" in answer
    assert emulator.alerts() == []


def test_body_that_never_arrives_does_not_hang(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "BODY_TIMEOUT", 0.2)
    started = time.monotonic()
    answer = exchange(emulator, post_head(len(BODY) + 50) + BODY)  # and then silence
    assert status_of(answer) == 400
    assert b"Connection: close" in answer
    assert time.monotonic() - started < 3


def test_huge_content_length_is_refused_without_reading(emulator: Emulator) -> None:
    answer = exchange(emulator, post_head(50 * 1024 * 1024))
    assert status_of(answer) == 400
    assert b"larger than 512 KB" in answer
    assert b"Connection: close" in answer


@pytest.mark.parametrize(
    "length",
    ["abc", "-1", "1e3", "12, 13", "٣"],
)
def test_invalid_content_length(emulator: Emulator, length: str) -> None:
    answer = exchange(emulator, post_head(length) + BODY)
    assert status_of(answer) == 400


def test_conflicting_content_lengths(emulator: Emulator) -> None:
    answer = exchange(emulator, post_head(len(BODY), f"Content-Length: {len(BODY) + 1}\r\n") + BODY)
    assert status_of(answer) == 400


def chunked(*parts: bytes, trailer: bytes = b"") -> bytes:
    head = (
        b"POST /v2/enqueue HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return head + body + b"0\r\n" + trailer + b"\r\n"


def test_chunked_bodies(emulator: Emulator) -> None:
    assert status_of(exchange(emulator, chunked(BODY[:10], BODY[10:]))) == 202
    assert status_of(exchange(emulator, chunked(BODY, trailer=b"X-Trailer: 1\r\n"))) == 202
    broken = chunked(BODY).replace(b"%x\r\n" % len(BODY), b"zz\r\n")
    assert status_of(exchange(emulator, broken)) == 400
    big = b"x" * (600 * 1024)
    answer = exchange(emulator, chunked(big, big))
    assert status_of(answer) == 400
    assert b"larger than 512 KB" in answer
    assert len(emulator.alerts()) == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"BREW /v2/enqueue HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-H: v\r\n" * 200 + b"\r\n",
        b"GET /%zz%00/../api/alerts?status=%ff HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"POST /v2/enqueue HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /api/faults HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\xff\xfe\x00",
    ],
)
def test_malformed_requests_never_get_a_5xx(emulator: Emulator, request_bytes: bytes) -> None:
    answer = exchange(emulator, request_bytes, half_close=True)
    if answer:  # some garbage is simply hung up on
        assert 400 <= status_of(answer) < 500
    # The server is still healthy.
    assert httpx.get(f"{emulator.url}/api/health").status_code == 200


def test_stop_is_fast_with_idle_keep_alive_connections() -> None:
    before = set(threading.enumerate())
    emulator = Emulator(port=0).start()
    clients = [httpx.Client(base_url=emulator.url) for _ in range(3)]
    for client in clients:
        assert client.get("/api/health").status_code == 200  # left open, idle
    started = time.monotonic()
    emulator.stop()
    # Idle keep-alive connections would otherwise hold it for their 60 s timeout; the
    # margin is for a loaded machine.
    assert time.monotonic() - started < 5
    assert [t for t in threading.enumerate() if t not in before] == []
    for client in clients:
        with pytest.raises(httpx.TransportError):
            client.get("/api/health")
        client.close()
    emulator.stop()  # idempotent
    assert not emulator.running
    with pytest.raises(RuntimeError, match="stopped"):
        emulator.start()


def test_no_resource_warnings() -> None:
    gc.collect()  # earlier tests' garbage must not be blamed on this one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with Emulator(port=0, tls=True) as emulator:
            port = emulator.port
            context = emulator.client_ssl_context()
            with httpx.Client(base_url=emulator.url, verify=context) as client:
                client.get("/api/health")
            # An idle keep-alive connection the server must close itself.
            idle = socket.create_connection(("127.0.0.1", port))
        idle.close()
        del emulator
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert [str(w.message) for w in leaks if str(port) in str(w.message)] == []


def test_addresses() -> None:
    emulator = Emulator(port=0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.url
    with emulator:
        assert emulator.url == f"http://127.0.0.1:{emulator.port}"
        assert emulator.events_url == f"{emulator.url}/v2/enqueue"
        assert emulator.change_events_url == f"{emulator.url}/v2/change/enqueue"
        assert emulator.console_url == f"{emulator.url}/"
        assert emulator.ca_file is None
        assert emulator.ca_pem is None
        assert repr(emulator) == f"<Emulator {emulator.url}>"
        with pytest.raises(RuntimeError, match="tls"):
            emulator.client_ssl_context()


def test_wildcard_host_gives_a_loopback_url() -> None:
    with Emulator("0.0.0.0", port=0) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{emulator.url}/api/health").status_code == 200


def test_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        emulator = Emulator("::1", port=0).start()
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    with emulator:
        assert emulator.url.startswith("http://[::1]:")
        assert httpx.get(f"{emulator.url}/api/health").status_code == 200


def test_quiet_by_default_and_verbose_on_request(capfd: pytest.CaptureFixture[str]) -> None:
    with Emulator(port=0) as quiet:
        httpx.post(quiet.events_url, json=trigger_body("q"))
        exchange(quiet, b"nonsense\r\n\r\n", half_close=True)
    assert capfd.readouterr().err == ""
    with Emulator(port=0, verbose=True) as loud:
        httpx.post(loud.events_url, json=trigger_body("v"))
    assert "POST /v2/enqueue" in capfd.readouterr().err


# -- python -m pd_integrations.emulator -----------------------------------------------------


def run_cli(*args: str) -> subprocess.Popen[str]:
    # The child must import the same pd_integrations as this test does.
    package_root = str(Path(pd_integrations.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": package_root}
    return subprocess.Popen(
        [sys.executable, "-m", "pd_integrations.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cli_runs_until_terminated(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    process = run_cli("--port", "0", "--tls", "--ca-file", str(ca_file), "--rate-limit", "off")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("PagerDuty emulator listening on https://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        lines = [process.stdout.readline() for _ in range(4)]
        assert f"CA file:    {ca_file}" in "".join(lines)
        context = __import__("ssl").create_default_context(cafile=str(ca_file))
        response = httpx.post(f"{url}/v2/enqueue", json=trigger_body("cli"), verify=context)
        assert response.status_code == 202
        health = httpx.get(f"{url}/api/stats", verify=context).json()
        assert health["rate_limit_per_minute"] is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_cli_fault_flags() -> None:
    process = run_cli("--port", "0", "--error-rate", "1", "--seed", "5", "--latency", "0")
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        assert httpx.post(f"{url}/v2/enqueue", json=trigger_body("x")).status_code >= 500
        faults = httpx.get(f"{url}/api/faults").json()
        assert (faults["error_rate"], faults["seed"]) == (1.0, 5)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0


@pytest.mark.parametrize(
    "args",
    [["--ca-file", "x.pem"], ["--error-rate", "2"], ["--rate-limit", "-3"], ["--latency", "x"]],
)
def test_cli_rejects_bad_flags(args: list[str]) -> None:
    process = run_cli("--port", "0", *args)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "error" in stderr
