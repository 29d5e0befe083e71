"""With the middleware installed, the app answers exactly as it does without it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message

from pd_integrations import AlertManager
from pd_integrations.starlette import PagerDutyMiddleware
from pd_integrations.testing import CapturedEvents

from .apps import Flavour

REQUESTS = [
    ("GET", "/hello"),
    ("HEAD", "/hello"),
    ("GET", "/items/42"),
    ("HEAD", "/items/42"),
    ("GET", "/stream/fast"),
    ("HEAD", "/stream/fast"),
    ("GET", "/boom/1"),
    ("HEAD", "/boom/1"),
    ("GET", "/forbidden"),
    ("GET", "/unavailable"),
    ("GET", "/nowhere"),
    ("POST", "/hello"),
    ("GET", "/background/ok"),
]


async def call_asgi(app: ASGIApp, method: str, path: str) -> tuple[list[Message], str | None]:
    """Every message the app sends, and the exception it raised (type and text), if any."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"user-agent", b"raw")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception as exc:
        return sent, f"{type(exc).__qualname__}: {exc}"
    return sent, None


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_asgi_messages_are_identical(
    flavour: Flavour,
    alerts: AlertManager,
    pagerduty_events: CapturedEvents,
    method: str,
    path: str,
) -> None:
    bare = asyncio.run(call_asgi(flavour.build(bare=True), method, flavour.url(path)))
    watched = asyncio.run(
        call_asgi(flavour.build(alerts=alerts, slow_request_ms=1), method, flavour.url(path))
    )

    assert watched == bare
    assert bare[0], "the app answered"


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_responses_through_the_test_client_are_identical(
    flavour: Flavour,
    alerts: AlertManager,
    pagerduty_events: CapturedEvents,
    method: str,
    path: str,
) -> None:
    def fetch(app: ASGIApp) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.request(method, flavour.url(path))
        return response.status_code, response.headers.raw, response.content

    bare = fetch(flavour.build(bare=True))
    watched = fetch(flavour.build(alerts=alerts, slow_request_ms=1))

    assert watched == bare


def test_async_client_sees_the_same_answers(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    async def fetch(app: ASGIApp) -> list[tuple[int, dict[str, str], bytes]]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            answers = []
            for method, path in REQUESTS:
                response = await c.request(method, flavour.url(path))
                answers.append((response.status_code, dict(response.headers), response.content))
            return answers

    bare = asyncio.run(fetch(flavour.build(bare=True)))
    watched = asyncio.run(fetch(flavour.build(alerts=alerts)))

    assert watched == bare
    assert [status for status, _, _ in watched][:2] == [200, 200]


def test_a_client_that_leaves_is_not_a_server_error(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    async def upload(request: Request) -> Response:
        await request.body()
        return PlainTextResponse("stored")

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    app.add_middleware(PagerDutyMiddleware, alerts=alerts)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)

    with pytest.raises(ClientDisconnect):  # for the server to drop, as without us
        asyncio.run(run())

    assert pagerduty_events.events == []
