"""The Flask webhook blueprint, through Flask's test client.

The contract shared with the other frameworks is in ``tests/webhook_payloads.py``; here
is what only Flask has: config secrets, blueprints, streamed WSGI input and background
work run when the WSGI server closes the response.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from flask import Flask, current_app
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from pd_integrations.errors import ConfigurationError
from pd_integrations.flask.webhooks import config_secrets, webhook_blueprint
from pd_integrations.webhooks import WebhookReceiver
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
    signed_headers,
)

PATH = "/pagerduty/webhooks"
MAX_BODY = 4096
ENV_VAR = "PAGERDUTY_WEBHOOK_SECRET"


@pytest.fixture(autouse=True)
def no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(config_secrets, max_body_bytes=MAX_BODY)


@pytest.fixture
def app(receiver: WebhookReceiver) -> Flask:
    app = Flask("webhooks")
    app.config[ENV_VAR] = [OTHER_SECRET, SECRET]
    app.register_blueprint(webhook_blueprint(receiver))
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def poster(client: FlaskClient, path: str = PATH) -> Post:
    def post(body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        response = client.post(path, data=body, headers=dict(headers))
        return response.status_code, response.get_data()

    return post


@pytest.mark.parametrize("check", CONTRACT, ids=CONTRACT_IDS)
def test_the_webhook_contract(check: Check, client: FlaskClient, receiver: WebhookReceiver) -> None:
    check(Endpoint(poster(client), receiver.on, MAX_BODY))


def test_a_body_without_content_length_is_read_only_up_to_the_cap(
    app: Flask, receiver: WebhookReceiver
) -> None:
    calls = record_calls(receiver.on)
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(1000):
            pulled.append(n)
            yield b"x" * 1024

    # The test client needs a seekable body; a chunked upload is built by hand.
    environ = EnvironBuilder(
        PATH, method="POST", headers=list(signed_headers(b"x").items())
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = _Stream(chunks())
    environ["wsgi.input_terminated"] = True
    _, status, _ = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    assert status.startswith("413")
    assert len(pulled) < 10  # stopped just past the 4 KiB cap, not after 1000 KiB
    assert calls == []


class _Stream:
    """A request body that can only be read, chunk by chunk, like a socket."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def read(self, size: int = -1) -> bytes:
        return next(self.chunks, b"")


def test_get_is_not_allowed(client: FlaskClient) -> None:
    assert client.get(PATH).status_code == 405


class Recorder:
    """WSGI middleware logging when the response starts, ends and is closed."""

    def __init__(self, app: Any, log: list[str]) -> None:
        self.app = app
        self.log = log

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        def recording_start(status: str, headers: Any, exc_info: Any = None) -> Any:
            self.log.append(f"start_response {status}")
            return start_response(status, headers, exc_info)

        body = self.app(environ, recording_start)
        try:
            yield from body
            self.log.append("body sent")
        finally:
            if hasattr(body, "close"):
                body.close()


def test_background_handlers_run_after_the_response(app: Flask, receiver: WebhookReceiver) -> None:
    log: list[str] = []
    register_background_handlers(receiver.on, log, lambda: f"sync handler in {current_app.name}")
    app.wsgi_app = Recorder(app.wsgi_app, log)  # type: ignore[method-assign]
    response = app.test_client().post(PATH, data=delivery("incident.resolved")[0], buffered=True)
    assert response.status_code == 400  # no signature: no handler, no background work
    log.clear()
    body, headers = delivery("incident.resolved")
    response = app.test_client().post(PATH, data=body, headers=headers, buffered=True)
    assert response.status_code == 200
    assert log == [
        "foreground handler",
        "start_response 200 OK",
        "body sent",
        "async handler",
        "sync handler in webhooks",
    ]


def test_secrets_come_from_the_config_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = WebhookReceiver(config_secrets)
    app = Flask("from-env")
    with pytest.raises(ConfigurationError, match="PAGERDUTY_WEBHOOK_SECRET"):
        app.register_blueprint(webhook_blueprint(receiver))

    monkeypatch.setenv(ENV_VAR, f"{OTHER_SECRET} {SECRET}")
    app = Flask("from-env")
    app.register_blueprint(webhook_blueprint(receiver))
    assert poster(app.test_client())(*delivery())[0] == 200

    app = Flask("from-config")
    app.config[ENV_VAR] = OTHER_SECRET  # the app's setting wins over the environment
    app.register_blueprint(webhook_blueprint(receiver))
    post = poster(app.test_client())
    assert post(*delivery())[0] == 401
    assert post(*delivery(secret=OTHER_SECRET))[0] == 200


def test_a_default_blueprint_and_a_custom_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, SECRET)
    app = Flask("default")
    app.register_blueprint(webhook_blueprint(path="/hooks/pd", name="pd_hooks"))
    assert poster(app.test_client(), "/hooks/pd")(*delivery("pagey.ping"))[0] == 200
