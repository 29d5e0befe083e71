"""A real Redis for the shared-state tests, as a pytest plugin module.

Test modules load it with ``pytest_plugins = ["tests.redis_server"]`` and ask for
``redis_url``. ``python3 dev.py test`` starts one throwaway server for the whole run and
passes its URL in ``PD_TEST_REDIS_URL``; without it the fixture starts
``/usr/bin/redis-server`` itself on a free loopback port, or skips when there is none.
Several xdist workers share one server, so every test works under its own key prefix
(``redis_prefix``) and deletes only its own keys.

It has no asserts to rewrite, and test modules import its helpers before pytest loads it
as a plugin: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

REDIS_URL_VARIABLE = "PD_TEST_REDIS_URL"
REDIS_BINARY = "/usr/bin/redis-server"
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def redis_binary() -> str | None:
    if Path(REDIS_BINARY).exists():
        return REDIS_BINARY
    return shutil.which("redis-server")


class RedisServer:
    """A ``redis-server`` on a loopback port that a test can stop and start again.

    The port stays the same across restarts, so clients configured with :attr:`url`
    reconnect to the new process.
    """

    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        found = binary or redis_binary()
        if found is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = found
        self.port = port or free_port()
        self._workdir = tempfile.TemporaryDirectory(prefix="pd-test-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--dir", self._workdir.name, "--loglevel", "warning"]
        self._process = subprocess.Popen(
            args, cwd=self._workdir.name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def with_query(url: str, **options: object) -> str:
    """``url`` with query options added (the state's ``prefix=``, ``socket_timeout=``...)."""
    parts = urlsplit(url)
    extra = urlencode({k: str(v) for k, v in options.items()})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a running Redis shared by the whole test run."""
    given = os.environ.get(REDIS_URL_VARIABLE, "").strip()
    if given:
        yield given
        return
    if redis_binary() is None:
        pytest.skip(f"no Redis: set {REDIS_URL_VARIABLE} or install redis-server")
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis  # the redis extra: only needed where Redis is

    prefix = f"pdtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def unique_routing_key() -> str:
    """A well-formed routing key no other test uses (emulator windows are per key)."""
    return uuid.uuid4().hex
