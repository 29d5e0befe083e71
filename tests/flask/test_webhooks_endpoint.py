"""The Flask webhook blueprint, through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, current_app
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from pd_integrations.errors import ConfigurationError
from pd_integrations.flask_webhooks import config_secrets, webhook_blueprint
from pd_integrations.webhooks import SIGNATURE_HEADER, WebhookEvent, WebhookReceiver
from tests.webhook_payloads import OTHER_SECRET, SECRET, delivery, signed_headers

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


@pytest.fixture
def calls(receiver: WebhookReceiver) -> list[str]:
    seen: list[str] = []

    @receiver.on("incident.*", "pagey.ping")
    def record(event: WebhookEvent) -> None:
        seen.append(event.event_type)

    return seen


def post(client: FlaskClient, body: bytes | Iterable[bytes], headers: dict[str, str]) -> int:
    return client.post(PATH, data=body, headers=headers).status_code


def test_a_valid_delivery_is_handled_once(client: FlaskClient, calls: list[str]) -> None:
    body, headers = delivery("incident.acknowledged")
    response = client.post(PATH, data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted", "events": 1}
    assert calls == ["incident.acknowledged"]
    assert post(client, body, headers) == 200  # the redelivery
    assert calls == ["incident.acknowledged"]


def test_bad_signatures_are_refused(client: FlaskClient, calls: list[str]) -> None:
    body, headers = delivery(secret="not-the-secret")
    assert post(client, body, headers) == 401
    del headers[SIGNATURE_HEADER]
    assert post(client, body, headers) == 400
    assert calls == []


def test_ping_and_unknown_types_are_accepted(client: FlaskClient, calls: list[str]) -> None:
    assert post(client, *delivery("pagey.ping")) == 200
    assert post(client, *delivery("something.else")) == 200
    assert calls == ["pagey.ping"]


def test_malformed_bodies_are_refused(client: FlaskClient, calls: list[str]) -> None:
    body = b'{"event": {"id": "E1"}}'
    assert post(client, body, signed_headers(body)) == 400
    assert calls == []


def test_oversized_bodies_are_refused(client: FlaskClient, calls: list[str]) -> None:
    big = b'{"event": {"padding": "' + b"x" * MAX_BODY + b'"}}'
    assert post(client, big, signed_headers(big)) == 413
    assert calls == []


def test_a_body_without_content_length_is_read_only_up_to_the_cap(
    app: Flask, calls: list[str]
) -> None:
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


def test_a_failing_handler_answers_500_and_the_retry_is_handled(
    client: FlaskClient, receiver: WebhookReceiver
) -> None:
    attempts: list[str] = []

    @receiver.on("incident.triggered")
    def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("chat is down")

    body, headers = delivery()
    assert post(client, body, headers) == 500
    assert post(client, body, headers) == 200
    assert post(client, body, headers) == 200
    assert len(attempts) == 2


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

    @receiver.on("incident.resolved", background=True)
    async def status_page(event: WebhookEvent) -> None:
        log.append("async handler")

    @receiver.on("incident.resolved", background=True)
    def ticket(event: WebhookEvent) -> None:
        log.append(f"sync handler in {current_app.name}")

    @receiver.on("incident.resolved")
    def foreground(event: WebhookEvent) -> None:
        log.append("foreground handler")

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
    assert post(app.test_client(), *delivery()) == 200

    app = Flask("from-config")
    app.config[ENV_VAR] = OTHER_SECRET  # the app's setting wins over the environment
    app.register_blueprint(webhook_blueprint(receiver))
    assert post(app.test_client(), *delivery()) == 401
    assert post(app.test_client(), *delivery(secret=OTHER_SECRET)) == 200


def test_a_default_blueprint_and_a_custom_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, SECRET)
    app = Flask("default")
    app.register_blueprint(webhook_blueprint(path="/hooks/pd", name="pd_hooks"))
    assert post_to(app.test_client(), "/hooks/pd") == 200


def post_to(client: FlaskClient, path: str) -> int:
    body, headers = delivery("pagey.ping")
    return client.post(path, data=body, headers=headers).status_code
