"""Pantry's webhook endpoint: PagerDuty's deliveries keep the incident list current."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pd_integrations.flask import get_state
from pd_integrations.testing import CapturedEvents
from pd_integrations.webhooks import sign_body

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_example_app import Store, create_app, webhooks

SECRET = "pantry-webhook-secret"  # noqa: S105 - a test value


@pytest.fixture
def app(pagerduty_events: CapturedEvents) -> Any:
    webhooks.forget_deliveries()  # the receiver outlives each app and test
    app = create_app({"PAGERDUTY_WEBHOOK_SECRET": SECRET})
    yield app
    get_state(app).close(timeout=1.0)


def deliver(client: FlaskClient, event_type: str, status: str, webhook_id: str) -> int:
    """POST what PagerDuty sends: the raw JSON body, signed with the subscription secret."""
    event = {
        "id": f"01EV{webhook_id}",
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": "2024-05-01T10:00:00Z",
        "agent": None,
        "client": None,
        "data": {"id": "PINC7", "type": "incident", "status": status, "title": "Jam crash"},
    }
    body = json.dumps({"event": event}).encode()
    headers = {"X-PagerDuty-Signature": sign_body(body, SECRET), "X-Webhook-Id": webhook_id}
    # buffered=True: the test client then closes the response, as a WSGI server does,
    # which runs the background handlers.
    response = client.post("/pagerduty/webhooks", data=body, headers=headers, buffered=True)
    return response.status_code


def store(app: Flask) -> Store:
    found = app.extensions["pantry_store"]
    assert isinstance(found, Store)
    return found


def test_incident_states_are_tracked(app: Flask) -> None:
    client = app.test_client()
    assert deliver(client, "incident.triggered", "triggered", "pantry-1") == 200
    assert deliver(client, "incident.resolved", "resolved", "pantry-2") == 200
    assert deliver(client, "incident.resolved", "resolved", "pantry-2") == 200  # redelivered

    assert client.get("/incidents").get_json() == {"PINC7": "resolved"}
    # Ran after the response (in call_on_close), and once.
    assert store(app).postmortems == ["Postmortem: Jam crash"]


def test_forged_deliveries_are_refused(app: Flask) -> None:
    client = app.test_client()
    response = client.post(
        "/pagerduty/webhooks",
        data=b'{"event":{}}',
        headers={"X-PagerDuty-Signature": "v1=" + "0" * 64},
    )
    assert response.status_code == 401
    assert client.get("/incidents").get_json() == {}
