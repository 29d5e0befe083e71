"""Signed PagerDuty webhook deliveries for the webhook tests (core and every framework),
and the endpoint contract every framework's webhook endpoint is checked against.

A framework's test file describes its endpoint as an :class:`Endpoint` (a ``post``
adapter over its real test client, and how handlers are registered) and runs every
check of :data:`CONTRACT` on it; only what is genuinely framework-specific stays there.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pd_integrations.webhooks import (
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    Handler,
    WebhookEvent,
    sign_body,
)

SECRET = "whsec-test-0123456789abcdefghijklmnopqrstuv"
OTHER_SECRET = "whsec-rotated-abcdefghijklmnopqrstuvwxyz0123"
# Configured nowhere (some endpoints accept OTHER_SECRET as a rotated secret).
WRONG_SECRET = "whsec-wrong-zyxwvutsrqponmlkjihgfedcba98765"
VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "webhook-v3-signature-vector.json").read_text("utf-8")
)
_ids = itertools.count(1)


def incident_data(incident_id: str = "PINC001", **fields: Any) -> dict[str, Any]:
    return {
        "id": incident_id,
        "type": "incident",
        "self": f"https://api.pagerduty.com/incidents/{incident_id}",
        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
        "number": 42,
        "status": "triggered",
        "incident_key": "prod:exception:0a1b2c3d",
        "title": "[500] KeyError: 'IS' - GET /orders/{order_id}/invoice",
        "urgency": "high",
        "service": {"id": "PSVC001", "type": "service_reference", "summary": "Bookshop"},
        "assignees": [{"id": "PUSR001", "type": "user_reference", "summary": "Ann Oncall"}],
        "escalation_policy": {"id": "PEP0001", "type": "escalation_policy_reference"},
        "teams": [{"id": "PTEAM01", "type": "team_reference", "summary": "Shop"}],
        "priority": None,
        "created_at": "2024-05-01T10:00:00Z",
        **fields,
    }


def envelope(
    event_type: str = "incident.triggered",
    data: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    resource_type: str | None = None,
) -> dict[str, Any]:
    """A v3 body: ``{"event": {...}}``; ``data`` defaults to an incident for incident events."""
    if data is None:
        data = incident_data() if event_type.startswith("incident.") else {"type": "ping"}
    return {
        "event": {
            "id": event_id or f"01EVENT{next(_ids):019d}",
            "event_type": event_type,
            "resource_type": resource_type or event_type.partition(".")[0],
            "occurred_at": "2024-05-01T10:00:05.123Z",
            "agent": {"id": "PUSR002", "type": "user_reference", "summary": "Bob Responder"},
            "client": None,
            "data": data,
        }
    }


def encode(document: object) -> bytes:
    """Compact JSON, as PagerDuty sends it."""
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def signed_headers(
    body: bytes, *, secret: str = SECRET, webhook_id: str | None = None
) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: sign_body(body, secret),
        WEBHOOK_ID_HEADER: webhook_id or f"webhook-{next(_ids)}",
        "Content-Type": "application/json",
        "User-Agent": "PagerDuty-Webhook/V3.0",
    }


def delivery(
    event_type: str = "incident.triggered",
    *,
    webhook_id: str | None = None,
    secret: str = SECRET,
    data: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A signed delivery: the raw body and the headers PagerDuty sends with it."""
    body = encode(envelope(event_type, data))
    return body, signed_headers(body, secret=secret, webhook_id=webhook_id)


# -- the endpoint contract ----------------------------------------------------------------

Post = Callable[[bytes, Mapping[str, str]], tuple[int, bytes]]
"""Sends one request through a framework's test client: raw body and headers in, status
code and raw response body out."""


class Registrar(Protocol):
    """``WebhookReceiver.on``, or a wrapper that also undoes the registration after the test."""

    def __call__(
        self, *patterns: str, background: bool = False
    ) -> Callable[[Handler], Handler]: ...


@dataclass(frozen=True)
class Endpoint:
    """A framework's webhook endpoint, as the contract checks drive it."""

    post: Post
    on: Registrar
    max_body_bytes: int


Check = Callable[[Endpoint], None]


def record_calls(on: Registrar) -> list[str]:
    """Registers a handler for incidents and pings; returns the event types it was called with."""
    seen: list[str] = []

    @on("incident.*", "pagey.ping")
    def record(event: WebhookEvent) -> None:
        seen.append(event.event_type)

    return seen


def status(endpoint: Endpoint, body: bytes, headers: Mapping[str, str]) -> int:
    return endpoint.post(body, headers)[0]


def a_valid_delivery_is_handled_once(endpoint: Endpoint) -> None:
    calls = record_calls(endpoint.on)
    body, headers = delivery("incident.acknowledged")
    code, answer = endpoint.post(body, headers)
    assert (code, json.loads(answer)) == (200, {"status": "accepted", "events": 1})
    assert calls == ["incident.acknowledged"]
    assert status(endpoint, body, headers) == 200  # the redelivery: accepted, not handled again
    assert calls == ["incident.acknowledged"]


def bad_signatures_are_refused(endpoint: Endpoint) -> None:
    calls = record_calls(endpoint.on)
    body, headers = delivery(secret=WRONG_SECRET)
    assert status(endpoint, body, headers) == 401
    del headers[SIGNATURE_HEADER]
    assert status(endpoint, body, headers) == 400
    assert calls == []


def the_signature_is_checked_on_the_raw_body(endpoint: Endpoint) -> None:
    calls = record_calls(endpoint.on)
    # Spaced unlike json.dumps would re-encode it: a re-serialised body would not verify.
    body = (
        b'{ "event" : {"id":"E1","event_type":"pagey.ping","occurred_at":"2024-01-01T00:00:00Z"}}'
    )
    assert status(endpoint, body, {SIGNATURE_HEADER: sign_body(body, SECRET)}) == 200
    assert calls == ["pagey.ping"]


def ping_and_unknown_types_are_accepted(endpoint: Endpoint) -> None:
    calls = record_calls(endpoint.on)
    assert status(endpoint, *delivery("pagey.ping")) == 200
    assert status(endpoint, *delivery("something.else")) == 200
    assert calls == ["pagey.ping"]


def malformed_bodies_are_refused(endpoint: Endpoint) -> None:
    calls = record_calls(endpoint.on)
    for body in (b'{"event": {"id": "E1"}}', b""):
        assert status(endpoint, body, signed_headers(body)) == 400, body
    assert calls == []


def oversized_bodies_are_refused(endpoint: Endpoint) -> None:
    calls = record_calls(endpoint.on)
    big = oversized_body(endpoint.max_body_bytes)
    assert status(endpoint, big, signed_headers(big)) == 413
    assert calls == []


def oversized_body(max_body_bytes: int) -> bytes:
    return b'{"event": {"padding": "' + b"x" * max_body_bytes + b'"}}'


def a_failing_handler_answers_500_and_the_retry_is_handled(endpoint: Endpoint) -> None:
    attempts: list[str] = []

    @endpoint.on("incident.triggered")
    def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("chat is down")

    _check_the_retry(endpoint, attempts)


def a_failing_async_handler_answers_500_and_the_retry_is_handled(endpoint: Endpoint) -> None:
    attempts: list[str] = []

    @endpoint.on("incident.triggered")
    async def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("chat is down")

    _check_the_retry(endpoint, attempts)


def _check_the_retry(endpoint: Endpoint, attempts: list[str]) -> None:
    body, headers = delivery()
    assert status(endpoint, body, headers) == 500
    assert status(endpoint, body, headers) == 200  # PagerDuty's retry
    assert status(endpoint, body, headers) == 200  # a redelivery of the handled event
    assert len(attempts) == 2


CONTRACT: tuple[Check, ...] = (
    a_valid_delivery_is_handled_once,
    bad_signatures_are_refused,
    the_signature_is_checked_on_the_raw_body,
    ping_and_unknown_types_are_accepted,
    malformed_bodies_are_refused,
    oversized_bodies_are_refused,
    a_failing_handler_answers_500_and_the_retry_is_handled,
    a_failing_async_handler_answers_500_and_the_retry_is_handled,
)
CONTRACT_IDS = [check.__name__ for check in CONTRACT]


def register_background_handlers(
    on: Registrar, log: list[str], sync_note: Callable[[], str] = lambda: "sync handler"
) -> None:
    """For ``incident.resolved``: one foreground handler, then an async and a sync one in the
    background; each logs itself (the sync one logs ``sync_note()``, to show where it ran)."""

    @on("incident.resolved", background=True)
    async def status_page(event: WebhookEvent) -> None:
        log.append("async handler")

    @on("incident.resolved", background=True)
    def ticket(event: WebhookEvent) -> None:
        log.append(sync_note())

    @on("incident.resolved")
    def foreground(event: WebhookEvent) -> None:
        log.append("foreground handler")
