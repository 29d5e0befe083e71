"""The bookshop's alerting, tested the way users test theirs: with ``pagerduty_events``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi_example_app import create_app
from starlette.testclient import TestClient

from pd_integrations import AlertManager
from pd_integrations.testing import CapturedEvents, capture_events


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="bookshop-test", rate_limit=None)
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture
def app(alerts: AlertManager) -> FastAPI:
    return create_app(
        alerts=alerts, slow_request_ms=250, report_seconds=0.5, confirmation_seconds=0.4
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def order(client: TestClient, country: str = "DE") -> int:
    response = client.post("/orders", json={"book_id": 1, "quantity": 2, "country": country})
    assert response.status_code == 201, response.text
    order_id: int = response.json()["id"]
    return order_id


def test_browsing_and_ordering_page_nobody(
    client: TestClient, app: FastAPI, pagerduty_events: CapturedEvents
) -> None:
    assert client.get("/").json()["service"] == "bookshop"
    assert len(client.get("/books").json()) == 3
    assert client.get("/books/2").json()["title"] == "The Phoenix Project"
    order_id = order(client)
    assert client.get(f"/orders/{order_id}/invoice").json()["tax_cents"] == 1596

    # The confirmation e-mail (150 ms, over the 50 ms threshold) ran after the
    # response: it is not part of the request's time.
    assert app.state.shop.confirmations == [order_id]
    assert pagerduty_events.events == []


def test_client_errors_page_nobody(client: TestClient, pagerduty_events: CapturedEvents) -> None:
    assert client.get("/books/999").status_code == 404
    assert client.get("/orders/999/invoice").status_code == 404
    assert client.post("/orders", json={"book_id": 999}).status_code == 422
    assert client.post("/orders", json={"book_id": 1, "quantity": 0}).status_code == 422
    assert client.get("/no/such/page").status_code == 404

    assert pagerduty_events.events == []


def test_the_invoice_bug_pages_once_critical(
    client: TestClient, pagerduty_events: CapturedEvents
) -> None:
    first, second = order(client, "IS"), order(client, "IS")

    for order_id in (first, second):
        response = client.get(f"/orders/{order_id}/invoice")
        assert response.status_code == 500

    (event,) = pagerduty_events.triggers
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == "[500] KeyError: 'IS' - GET /orders/{order_id}/invoice"
    assert payload["custom_details"]["route"] == "/orders/{order_id}/invoice"
    assert payload["custom_details"]["exception_type"] == "KeyError"


def test_a_slow_sales_report_warns(client: TestClient, pagerduty_events: CapturedEvents) -> None:
    assert client.get("/reports/sales").status_code == 200

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["summary"].startswith("Slow request: GET /reports/sales took ")


def test_a_payments_outage_triggers_and_recovery_resolves(
    client: TestClient, pagerduty_events: CapturedEvents
) -> None:
    assert client.get("/health").json()["status"] == "healthy"

    client.post("/admin/payments/down")
    assert client.post("/orders", json={"book_id": 1}).status_code == 503  # handled: no page
    assert [client.get("/health").status_code for _ in range(2)] == [503, 503]
    client.post("/admin/payments/up")
    assert client.get("/health").status_code == 200

    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["summary"].startswith("Health check failed: payments")
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_without_a_routing_key_the_shop_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    with capture_events(set_routing_key=False) as sent:
        app = create_app(slow_request_ms=1, report_seconds=0.01)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/books/1").status_code == 200
            order_id = order(client, "IS")
            assert client.get(f"/orders/{order_id}/invoice").status_code == 500
            assert client.get("/reports/sales").status_code == 200
            client.post("/admin/payments/down")
            assert client.get("/health").status_code == 503

    assert sent.events == []
