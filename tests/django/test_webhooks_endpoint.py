"""The Django webhook view, through Django's test clients (WSGI and ASGI)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.core import checks
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client
from django.urls import reverse

from pd_integrations.django import conf, runtime
from pd_integrations.django.webhooks import receiver
from pd_integrations.webhooks import (
    DEFAULT_MAX_BODY_BYTES,
    SIGNATURE_HEADER,
    Handler,
    WebhookEvent,
)
from tests.transport import wait_until
from tests.webhook_payloads import OTHER_SECRET, SECRET, delivery, signed_headers

from .conftest import pagerduty

PATH = "/pagerduty/webhooks"
ENV_VAR = "PAGERDUTY_WEBHOOK_SECRET"


_added: list[Handler] = []


def on(*patterns: str, background: bool = False) -> Callable[[Handler], Handler]:
    """``receiver.on``, undone after the test: the receiver is the process's (and the
    Django example project registers its own handlers on it)."""

    def register(handler: Handler) -> Handler:
        _added.append(handler)
        return receiver.on(*patterns, background=background)(handler)

    return register


@pytest.fixture(autouse=True)
def webhook_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV_VAR, raising=False)
    receiver.forget_deliveries()
    try:
        with pagerduty(WEBHOOK_SECRET=SECRET):
            yield
    finally:
        while _added:
            receiver.remove_handler(_added.pop())
        receiver.forget_deliveries()


@pytest.fixture
def calls() -> list[str]:
    seen: list[str] = []

    @on("incident.*", "pagey.ping")
    def record(event: WebhookEvent) -> None:
        seen.append(event.event_type)

    return seen


def post(client: Client, body: bytes, headers: dict[str, str]) -> int:
    response = client.post(PATH, data=body, content_type="application/json", headers=headers)
    return response.status_code


def test_the_url_is_named() -> None:
    assert reverse("pagerduty_webhooks:webhook") == PATH


def test_a_valid_delivery_is_handled_once(client: Client, calls: list[str]) -> None:
    body, headers = delivery("incident.acknowledged")
    response = client.post(PATH, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "events": 1}
    assert calls == ["incident.acknowledged"]
    assert post(client, body, headers) == 200  # the redelivery
    assert calls == ["incident.acknowledged"]


def test_no_csrf_token_is_needed(calls: list[str]) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert post(strict, *delivery("pagey.ping")) == 200
    assert calls == ["pagey.ping"]


def test_bad_signatures_are_refused(client: Client, calls: list[str]) -> None:
    body, headers = delivery(secret=OTHER_SECRET)
    assert post(client, body, headers) == 401
    del headers[SIGNATURE_HEADER]
    assert post(client, body, headers) == 400
    assert calls == []


def test_ping_and_unknown_types_are_accepted(client: Client, calls: list[str]) -> None:
    assert post(client, *delivery("pagey.ping")) == 200
    assert post(client, *delivery("something.else")) == 200
    assert calls == ["pagey.ping"]


def test_malformed_bodies_are_refused(client: Client, calls: list[str]) -> None:
    body = b'{"event": {"id": "E1"}}'
    assert post(client, body, signed_headers(body)) == 400
    assert calls == []


def test_oversized_bodies_are_refused(client: Client, calls: list[str]) -> None:
    big = b'{"event": {"padding": "' + b"x" * DEFAULT_MAX_BODY_BYTES + b'"}}'
    assert post(client, big, signed_headers(big)) == 413
    assert calls == []


def test_get_is_not_allowed(client: Client) -> None:
    assert client.get(PATH).status_code == 405


def test_a_failing_handler_answers_500_and_the_retry_is_handled(client: Client) -> None:
    attempts: list[str] = []

    @on("incident.triggered")
    def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("chat is down")

    body, headers = delivery()
    assert post(client, body, headers) == 500
    assert post(client, body, headers) == 200
    assert post(client, body, headers) == 200
    assert len(attempts) == 2


def test_under_asgi_too(async_client: AsyncClient, calls: list[str]) -> None:
    body, headers = delivery("incident.resolved")

    async def send() -> int:
        response = await async_client.post(
            PATH, data=body, content_type="application/json", headers=headers
        )
        return response.status_code

    assert asyncio.run(send()) == 200
    assert asyncio.run(send()) == 200
    assert calls == ["incident.resolved"]


def register_background(log: list[str]) -> None:
    @on("incident.resolved", background=True)
    async def status_page(event: WebhookEvent) -> None:
        log.append("async handler")

    @on("incident.resolved", background=True)
    def ticket(event: WebhookEvent) -> None:
        log.append("sync handler")

    @on("incident.resolved")
    def foreground(event: WebhookEvent) -> None:
        log.append("foreground handler")


def test_background_handlers_run_after_the_response_under_wsgi() -> None:
    log: list[str] = []
    register_background(log)
    body, headers = delivery("incident.resolved")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PATH,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()},
    }
    setup_testing_defaults(environ)

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        log.append(f"start_response {status}")
        return lambda data: None

    response = WSGIHandler()(environ, start_response)
    for _ in response:
        pass
    log.append("body sent")
    assert log == ["foreground handler", "start_response 200 OK", "body sent"]
    response.close()  # what the WSGI server does once the body went out
    assert log[3:] == ["async handler", "sync handler"]


def test_background_handlers_run_after_the_response_under_asgi(
    async_client: AsyncClient,
) -> None:
    log: list[str] = []
    register_background(log)
    body, headers = delivery("incident.resolved")
    response = asyncio.run(
        async_client.post(PATH, data=body, content_type="application/json", headers=headers)
    )
    assert response.status_code == 200
    assert wait_until(lambda: len(log) == 3)
    assert log == ["foreground handler", "async handler", "sync handler"]


def test_secrets_from_the_environment_and_lists(
    client: Client, monkeypatch: pytest.MonkeyPatch, calls: list[str]
) -> None:
    with pagerduty(WEBHOOK_SECRET=[OTHER_SECRET, SECRET]):
        assert post(client, *delivery("pagey.ping")) == 200
    with pagerduty():
        assert post(client, *delivery("pagey.ping")) == 500  # retried once it is set
        monkeypatch.setenv(ENV_VAR, f"{OTHER_SECRET},{SECRET}")
        runtime.reset()
        assert post(client, *delivery("pagey.ping")) == 200
        assert conf.get().webhook_secrets_origin == ENV_VAR
    assert calls == ["pagey.ping", "pagey.ping"]


@pytest.mark.parametrize("value", [5, ["ok", ""], ["ok", 3], {"a": "b"}])
def test_a_malformed_secret_setting_is_a_system_check_error(value: object) -> None:
    with pagerduty(WEBHOOK_SECRET=value):
        errors = [m for m in checks.run_checks() if m.id == "pd_integrations.E017"]
        assert len(errors) == 1
        assert "PAGERDUTY['WEBHOOK_SECRET'] must be a string or a list" in errors[0].msg
        assert conf.get().webhook_secrets == ()


def test_the_summary_counts_secrets_without_showing_them() -> None:
    with pagerduty(WEBHOOK_SECRET=f"{SECRET} {OTHER_SECRET}"):
        summary = conf.get().summary()
        assert summary["webhook_secrets"] == 2
        assert summary["webhook_secrets_origin"] == "PAGERDUTY['WEBHOOK_SECRET']"
        assert SECRET not in repr(conf.get())
        assert SECRET not in repr(summary)
