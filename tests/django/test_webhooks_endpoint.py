"""The Django webhook view, through Django's test clients (WSGI and ASGI).

The contract shared with the other frameworks is in ``tests/webhook_payloads.py``; here
it runs under both WSGI and ASGI, next to what only Django has: the named URL, the CSRF
exemption, background work after the response under each protocol, and the settings.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.core import checks
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client
from django.urls import reverse

from pd_integrations.django import conf, runtime
from pd_integrations.django.webhooks import receiver
from pd_integrations.webhooks import DEFAULT_MAX_BODY_BYTES, Handler
from tests.transport import wait_until
from tests.webhook_payloads import (
    CONTRACT,
    CONTRACT_IDS,
    OTHER_SECRET,
    SECRET,
    Check,
    Endpoint,
    Post,
    delivery,
    record_calls,
    register_background_handlers,
)

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


def wsgi_post(client: Client) -> Post:
    def post(body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        response = client.post(PATH, data=body, content_type="application/json", headers=headers)
        return response.status_code, response.content

    return post


def asgi_post(async_client: AsyncClient) -> Post:
    def post(body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        request = async_client.post(
            PATH, data=body, content_type="application/json", headers=headers
        )
        response = asyncio.run(request)
        return response.status_code, response.content

    return post


@pytest.fixture(params=["wsgi", "asgi"])
def endpoint(request: pytest.FixtureRequest, client: Client, async_client: AsyncClient) -> Endpoint:
    post = wsgi_post(client) if request.param == "wsgi" else asgi_post(async_client)
    return Endpoint(post, on, DEFAULT_MAX_BODY_BYTES)


@pytest.mark.parametrize("check", CONTRACT, ids=CONTRACT_IDS)
def test_the_webhook_contract(check: Check, endpoint: Endpoint) -> None:
    check(endpoint)


def test_the_url_is_named() -> None:
    assert reverse("pagerduty_webhooks:webhook") == PATH


def test_no_csrf_token_is_needed() -> None:
    calls = record_calls(on)
    post = wsgi_post(Client(enforce_csrf_checks=True))
    assert post(*delivery("pagey.ping"))[0] == 200
    assert calls == ["pagey.ping"]


def test_get_is_not_allowed(client: Client) -> None:
    assert client.get(PATH).status_code == 405


def test_background_handlers_run_after_the_response_under_wsgi() -> None:
    log: list[str] = []
    register_background_handlers(on, log)
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
    register_background_handlers(on, log)
    body, headers = delivery("incident.resolved")
    response = asyncio.run(
        async_client.post(PATH, data=body, content_type="application/json", headers=headers)
    )
    assert response.status_code == 200
    assert wait_until(lambda: len(log) == 3)
    assert log == ["foreground handler", "async handler", "sync handler"]


def test_secrets_from_the_environment_and_lists(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_calls(on)
    post = wsgi_post(client)
    with pagerduty(WEBHOOK_SECRET=[OTHER_SECRET, SECRET]):
        assert post(*delivery("pagey.ping"))[0] == 200
    with pagerduty():
        assert post(*delivery("pagey.ping"))[0] == 500  # retried once it is set
        monkeypatch.setenv(ENV_VAR, f"{OTHER_SECRET},{SECRET}")
        runtime.reset()
        assert post(*delivery("pagey.ping"))[0] == 200
        assert conf.get().origin("webhook_secret") == f"environment variable {ENV_VAR}"
    assert calls == ["pagey.ping", "pagey.ping"]


@pytest.mark.parametrize("value", [5, ["ok", ""], ["ok", 3], {"a": "b"}])
def test_a_malformed_secret_setting_is_a_system_check_error(value: object) -> None:
    with pagerduty(WEBHOOK_SECRET=value):
        errors = [m for m in checks.run_checks() if m.id == "pd_integrations.E017"]
        assert len(errors) == 1
        assert "PAGERDUTY['WEBHOOK_SECRET'] must be a string or a list" in errors[0].msg
        assert conf.get().webhook_secret == ()


def test_the_summary_counts_secrets_without_showing_them() -> None:
    with pagerduty(WEBHOOK_SECRET=f"{SECRET} {OTHER_SECRET}"):
        summary = conf.get().summary()
        assert summary["webhook_secret"] == 2
        assert conf.get().origin("webhook_secret") == "PAGERDUTY['WEBHOOK_SECRET']"
        assert SECRET not in repr(conf.get())
        assert SECRET not in repr(summary)
