"""Signed PagerDuty webhook deliveries for the webhook tests (core and every framework)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from pd_integrations.webhooks import SIGNATURE_HEADER, WEBHOOK_ID_HEADER, sign_body

SECRET = "whsec-test-0123456789abcdefghijklmnopqrstuv"
OTHER_SECRET = "whsec-rotated-abcdefghijklmnopqrstuvwxyz0123"
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
