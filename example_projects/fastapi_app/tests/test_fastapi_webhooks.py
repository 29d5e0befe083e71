"""The bookshop's webhook endpoint: PagerDuty's deliveries keep the incident board current."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi_example_app import create_app
from starlette.testclient import TestClient

from pd_integrations import AlertManager
from pd_integrations.testing import CapturedEvents
from pd_integrations.webhooks import sign_body

SECRET = "bookshop-webhook-secret"  # noqa: S105 - a test value
URL = "/pagerduty/webhooks"


@pytest.fixture
def app(pagerduty_events: CapturedEvents) -> Iterator[FastAPI]:
    alerts = AlertManager(source="bookshop-test", rate_limit=None)
    try:
        yield create_app(alerts=alerts, webhook_secret=SECRET)
    finally:
        alerts.close()


def deliver(client: TestClient, event_type: str, status: str, webhook_id: str) -> int:
    """POST what PagerDuty sends: the raw JSON body, signed with the subscription secret."""
    body = (
        '{"event":{"id":"01EV' + webhook_id + '","event_type":"' + event_type + '",'
        '"resource_type":"incident","occurred_at":"2024-05-01T10:00:00Z",'
        '"agent":{"id":"PUSR1","type":"user_reference","summary":"Ann Oncall"},"client":null,'
        '"data":{"id":"PINC1","type":"incident","number":7,"status":"' + status + '",'
        '"title":"[500] KeyError: \'IS\'","urgency":"high"}}}'
    ).encode()
    headers = {"X-PagerDuty-Signature": sign_body(body, SECRET), "X-Webhook-Id": webhook_id}
    return client.post(URL, content=body, headers=headers).status_code


def test_incident_states_are_tracked(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert deliver(client, "incident.triggered", "triggered", "w1") == 200
        assert deliver(client, "incident.acknowledged", "acknowledged", "w2") == 200
        assert deliver(client, "incident.acknowledged", "acknowledged", "w2") == 200  # again

        board = client.get("/incidents").json()
    assert board["PINC1"]["status"] == "acknowledged"
    assert board["PINC1"]["by"] == "Ann Oncall"
    # The chat post ran after the response of the trigger, once.
    assert app.state.shop.chat == ["incident.triggered: [500] KeyError: 'IS'"]


def test_forged_deliveries_are_refused(app: FastAPI) -> None:
    body = b'{"event":{"id":"E1","event_type":"incident.resolved"}}'
    with TestClient(app) as client:
        response = client.post(URL, content=body, headers={"X-PagerDuty-Signature": "v1=00"})
        assert response.status_code == 401
        assert client.get("/incidents").json() == {}


def test_without_a_secret_there_is_no_endpoint(
    pagerduty_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGERDUTY_WEBHOOK_SECRET", raising=False)
    alerts = AlertManager(source="bookshop-test", rate_limit=None)
    try:
        with TestClient(create_app(alerts=alerts)) as client:
            assert client.post(URL, content=b"{}").status_code == 404
    finally:
        alerts.close()
