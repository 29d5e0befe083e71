"""Calling Django's WSGI and ASGI handlers directly, the way servers do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler

if TYPE_CHECKING:
    from _typeshed import OptExcInfo


def wsgi_environ(method: str, path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    setup_testing_defaults(environ)
    return environ


def start_response(
    status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
) -> Callable[[bytes], object]:
    """A server's ``start_response`` that ignores what it is given."""
    return lambda data: None


def call_wsgi(method: str, path: str) -> tuple[str, list[tuple[str, str]], bytes]:
    handler = WSGIHandler()
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def remember(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        started.append((status, headers))
        return lambda data: None

    result: Iterable[bytes] = handler(wsgi_environ(method, path), remember)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    ((status, headers),) = started
    return status, headers, body


async def call_asgi(method: str, path: str) -> list[dict[str, Any]]:
    handler = ASGIHandler()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    received = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError("unreachable")

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(dict(message))

    await handler(scope, receive, send)
    return sent
