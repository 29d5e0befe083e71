"""The shop's webhook endpoint: PagerDuty's deliveries keep the incident states current."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.test import Client

# The example's per-test fixtures (captured events, a server-like client).
from test_django_example import example_project, shop  # noqa: F401

from pd_integrations.django import reset
from pd_integrations.django.webhooks import receiver
from pd_integrations.webhooks import sign_body

SECRET = "shop-webhook-secret"  # noqa: S105 - a test value


@pytest.fixture(autouse=True)
def webhook_secret(
    example_project: None,  # noqa: F811 - the imported fixture, applied first
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    from pdexample.shop import webhooks

    monkeypatch.setenv("PAGERDUTY_WEBHOOK_SECRET", SECRET)
    reset()  # the settings are read again, with the secret
    receiver.forget_deliveries()
    webhooks.reset()
    yield
    reset()


def deliver(
    shop: Client,  # noqa: F811 - the fixture's value, passed on by the test
    event_type: str,
    status: str,
    webhook_id: str,
    secret: str = SECRET,
) -> int:
    """POST what PagerDuty sends: the raw JSON body, signed with the subscription secret."""
    event = {
        "id": f"01EV{webhook_id}",
        "event_type": event_type,
        "resource_type": "incident",
        "occurred_at": "2024-05-01T10:00:00Z",
        "agent": None,
        "client": None,
        "data": {
            "id": "PSHOP1",
            "type": "incident",
            "status": status,
            "title": "[500] KeyError: 'US'",
            "assignees": [{"id": "PUSR1", "type": "user_reference", "summary": "Ann"}],
        },
    }
    body = json.dumps({"event": event}).encode()
    headers = {"X-PagerDuty-Signature": sign_body(body, secret), "X-Webhook-Id": webhook_id}
    response = shop.post(
        "/pagerduty/webhooks", data=body, content_type="application/json", headers=headers
    )
    return response.status_code


def test_incident_states_are_tracked(shop: Client) -> None:  # noqa: F811
    from pdexample.shop.webhooks import INCIDENTS, STATUS_PAGE

    assert deliver(shop, "incident.triggered", "triggered", "shop-1") == 200
    assert deliver(shop, "incident.acknowledged", "acknowledged", "shop-2") == 200
    assert deliver(shop, "incident.acknowledged", "acknowledged", "shop-2") == 200  # again

    state = INCIDENTS["PSHOP1"]
    assert (state.status, state.assignees, state.last_event) == (
        "acknowledged",
        ("Ann",),
        "incident.acknowledged",
    )
    # The test client closes each response, as a server does: the status page was
    # updated after the trigger's response, once.
    assert STATUS_PAGE == ["Investigating: [500] KeyError: 'US'"]


def test_forged_deliveries_are_refused(shop: Client) -> None:  # noqa: F811
    from pdexample.shop.webhooks import INCIDENTS

    forged = deliver(shop, "incident.resolved", "resolved", "shop-3", secret="guessed")  # noqa: S106
    assert forged == 401
    assert INCIDENTS == {}
