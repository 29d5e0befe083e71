"""The Starlette/FastAPI webhook endpoint, through Starlette's test client.

The contract shared with the other frameworks is in ``tests/webhook_payloads.py``; here
it runs once per way of routing the endpoint (Route, FastAPI, APIRouter, plain ASGI app),
next to what only Starlette has: chunked uploads, Mount, and ASGI message order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pd_integrations.starlette.webhooks import webhook_app, webhook_route
from pd_integrations.webhooks import WebhookReceiver
from tests.webhook_payloads import (
    CONTRACT,
    CONTRACT_IDS,
    SECRET,
    Check,
    Endpoint,
    Post,
    delivery,
    oversized_body,
    record_calls,
    register_background_handlers,
    signed_headers,
)

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


def poster(client: TestClient, path: str = PATH) -> Post:
    def post(body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        response = client.post(path, content=body, headers=headers, follow_redirects=False)
        return response.status_code, response.content

    return post


@pytest.mark.parametrize("check", CONTRACT, ids=CONTRACT_IDS)
def test_the_webhook_contract(check: Check, client: TestClient, receiver: WebhookReceiver) -> None:
    check(Endpoint(poster(client), receiver.on, MAX_BODY))


def test_a_chunked_oversized_body_is_refused(client: TestClient, receiver: WebhookReceiver) -> None:
    calls = record_calls(receiver.on)
    big = oversized_body(MAX_BODY)
    # Without Content-Length the endpoint cannot refuse up front: the capped read must.
    chunks = iter([big[:1000], big[1000:3000], big[3000:]])
    response = client.post(PATH, content=chunks, headers=signed_headers(big))
    assert response.status_code == 413
    assert calls == []


def test_get_is_not_allowed(client: TestClient) -> None:
    assert client.get(PATH).status_code == 405


def test_the_asgi_app_can_be_mounted(receiver: WebhookReceiver) -> None:
    calls = record_calls(receiver.on)
    app = Starlette(routes=[Mount("/hooks", app=webhook_app(receiver))])
    with TestClient(app) as client:
        assert poster(client, "/hooks/pagerduty")(*delivery("pagey.ping"))[0] == 200
        assert client.get("/hooks/pagerduty").status_code == 405
    assert calls == ["pagey.ping"]


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
    register_background_handlers(receiver.on, log)
    app = Recorder(BUILDERS[builder](receiver), log)
    with TestClient(app) as client:
        assert poster(client)(*delivery("incident.resolved"))[0] == 200
    assert log == [
        "foreground handler",
        "http.response.start",
        "http.response.body",
        "async handler",
        "sync handler",
    ]
