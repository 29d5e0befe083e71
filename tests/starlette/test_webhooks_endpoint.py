"""The Starlette/FastAPI webhook endpoint, through Starlette's test client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pd_integrations.starlette_webhooks import webhook_app, webhook_route
from pd_integrations.webhooks import SIGNATURE_HEADER, WebhookEvent, WebhookReceiver, sign_body
from tests.webhook_payloads import OTHER_SECRET, SECRET, delivery, signed_headers

PATH = "/pagerduty/webhooks"
MAX_BODY = 4096


def starlette_app(receiver: WebhookReceiver) -> ASGIApp:
    return Starlette(routes=[webhook_route(receiver)])


def fastapi_app(receiver: WebhookReceiver) -> ASGIApp:
    app = FastAPI()
    app.router.routes.append(webhook_route(receiver))
    return app


def fastapi_router_app(receiver: WebhookReceiver) -> ASGIApp:
    router = APIRouter()
    router.routes.append(webhook_route(receiver, "/webhooks"))
    app = FastAPI()
    app.include_router(router, prefix="/pagerduty")
    return app


def asgi_app_route(receiver: WebhookReceiver) -> ASGIApp:
    # Route() takes a plain ASGI app as its endpoint; Starlette still routes by method.
    return Starlette(routes=[Route(PATH, webhook_app(receiver))])


BUILDERS: dict[str, Callable[[WebhookReceiver], ASGIApp]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "fastapi-router": fastapi_router_app,
    "asgi-app": asgi_app_route,
}


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(SECRET, max_body_bytes=MAX_BODY)


@pytest.fixture(params=list(BUILDERS))
def client(request: pytest.FixtureRequest, receiver: WebhookReceiver) -> Iterator[TestClient]:
    with TestClient(BUILDERS[request.param](receiver), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def calls(receiver: WebhookReceiver) -> list[str]:
    seen: list[str] = []

    @receiver.on("incident.*", "pagey.ping", "brand.new")
    def record(event: WebhookEvent) -> None:
        seen.append(event.event_type)

    return seen


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> int:
    return client.post(PATH, content=body, headers=headers).status_code


def test_a_valid_delivery_is_handled_once(client: TestClient, calls: list[str]) -> None:
    body, headers = delivery("incident.acknowledged")
    response = client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "events": 1}
    assert calls == ["incident.acknowledged"]
    assert post(client, body, headers) == 200  # the redelivery
    assert calls == ["incident.acknowledged"]


def test_bad_signatures_are_refused(client: TestClient, calls: list[str]) -> None:
    body, headers = delivery(secret=OTHER_SECRET)
    assert post(client, body, headers) == 401
    del headers[SIGNATURE_HEADER]
    assert post(client, body, headers) == 400
    assert calls == []


def test_ping_and_unknown_types_are_accepted(client: TestClient, calls: list[str]) -> None:
    assert post(client, *delivery("pagey.ping")) == 200
    assert post(client, *delivery("something.else")) == 200
    assert calls == ["pagey.ping"]


def test_malformed_bodies_are_refused(client: TestClient, calls: list[str]) -> None:
    body = b'{"event": {"id": "E1"}}'
    assert post(client, body, signed_headers(body)) == 400
    assert post(client, b"", signed_headers(b"")) == 400
    assert calls == []


def test_oversized_bodies_are_refused(client: TestClient, calls: list[str]) -> None:
    big = b'{"event": {"padding": "' + b"x" * MAX_BODY + b'"}}'
    assert post(client, big, signed_headers(big)) == 413
    # Without Content-Length (chunked), the capped read refuses it too.
    chunks = iter([big[:1000], big[1000:3000], big[3000:]])
    response = client.post(PATH, content=chunks, headers=signed_headers(big))
    assert response.status_code == 413
    assert calls == []


def test_get_is_not_allowed(client: TestClient) -> None:
    assert client.get(PATH).status_code == 405


def test_the_asgi_app_can_be_mounted(receiver: WebhookReceiver, calls: list[str]) -> None:
    app = Starlette(routes=[Mount("/hooks", app=webhook_app(receiver))])
    with TestClient(app) as client:
        assert post_to(client, "/hooks/pagerduty", *delivery("pagey.ping")) == 200
        assert client.get("/hooks/pagerduty").status_code == 405
    assert calls == ["pagey.ping"]


def post_to(client: TestClient, path: str, body: bytes, headers: dict[str, str]) -> int:
    response = client.post(path, content=body, headers=headers, follow_redirects=False)
    return response.status_code


def test_a_failing_handler_answers_500_and_the_retry_is_handled(
    client: TestClient, receiver: WebhookReceiver
) -> None:
    attempts: list[str] = []

    @receiver.on("incident.triggered")
    async def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("chat is down")

    body, headers = delivery()
    assert post(client, body, headers) == 500
    assert post(client, body, headers) == 200
    assert post(client, body, headers) == 200
    assert len(attempts) == 2


class Recorder:
    """Records what the app sends, in order with what the handlers do."""

    def __init__(self, app: ASGIApp, log: list[str]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            self.log.append(message["type"])
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.mark.parametrize("builder", list(BUILDERS))
def test_background_handlers_run_after_the_response(builder: str) -> None:
    receiver = WebhookReceiver(SECRET)
    log: list[str] = []

    @receiver.on("incident.resolved", background=True)
    async def status_page(event: WebhookEvent) -> None:
        log.append("async handler")

    @receiver.on("incident.resolved", background=True)
    def ticket(event: WebhookEvent) -> None:
        log.append("sync handler")

    @receiver.on("incident.resolved")
    def foreground(event: WebhookEvent) -> None:
        log.append("foreground handler")

    app = Recorder(BUILDERS[builder](receiver), log)
    with TestClient(app) as client:
        assert post(client, *delivery("incident.resolved")) == 200
    assert log == [
        "foreground handler",
        "http.response.start",
        "http.response.body",
        "async handler",
        "sync handler",
    ]


def test_the_signature_is_checked_on_the_raw_body(client: TestClient, calls: list[str]) -> None:
    body = (
        b'{ "event" : {"id":"E1","event_type":"pagey.ping","occurred_at":"2024-01-01T00:00:00Z"}}'
    )
    headers = {SIGNATURE_HEADER: sign_body(body, SECRET)}
    assert post(client, body, headers) == 200
    assert calls == ["pagey.ping"]
