"""Pantry's alerting, tested the way users test theirs: with ``pagerduty_events``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pd_integrations.flask import get_state
from pd_integrations.testing import CapturedEvents

# The app module lives next to this tests/ directory, not in an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_example_app import Store, create_app


@pytest.fixture
def app(pagerduty_events: CapturedEvents) -> Iterator[Flask]:
    # Created after pagerduty_events set its routing key, so alerting is on.
    app = create_app({"PAGERDUTY_SLOW_REQUEST_MS": 50, "REPORT_SECONDS": 0.1})
    yield app
    get_state(app).close(timeout=1.0)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def store(app: Flask) -> Store:
    found = app.extensions["pantry_store"]
    assert isinstance(found, Store)
    return found


def test_browsing_sends_nothing(client: FlaskClient, pagerduty_events: CapturedEvents) -> None:
    assert client.get("/").json == {"shop": "Pantry", "products": 3}
    assert client.get("/products/1").status_code == 200
    assert client.get("/products/99").status_code == 404
    assert client.post("/orders", json={"product_id": 1, "quantity": 999}).status_code == 400
    assert client.post("/orders", json={"product_id": 1, "quantity": 2}).status_code == 201
    assert client.get("/export.csv", buffered=True).data.startswith(b"id,name,stock\r\n")
    assert client.get("/health").status_code == 200

    assert pagerduty_events.events == []


def test_the_price_history_bug_pages_once(
    client: FlaskClient, pagerduty_events: CapturedEvents
) -> None:
    assert client.get("/products/3/price-history").status_code == 500
    assert client.get("/products/3/price-history").status_code == 500

    (event,) = pagerduty_events.triggers
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "pantry"
    assert payload["summary"].startswith("[500] ZeroDivisionError")
    assert payload["custom_details"]["route"] == "/products/<int:product_id>/price-history"
    assert event["links"][0]["href"] == "https://runbooks.example.com/pantry/bugs"


def test_slow_report_is_a_warning(client: FlaskClient, pagerduty_events: CapturedEvents) -> None:
    assert client.get("/reports/daily").status_code == 200

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["custom_details"]["route"] == "/reports/daily"


def test_payment_outage_answers_503_and_alerts(
    client: FlaskClient, pagerduty_events: CapturedEvents
) -> None:
    client.post("/admin/payments/down")

    response = client.post("/orders", json={"product_id": 1}, headers={"X-Request-ID": "order-77"})

    assert response.status_code == 503
    assert response.json == {"error": "payment provider timed out", "request_id": "order-77"}
    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["custom_details"]["request_id"] == "order-77"


def test_health_check_pages_on_failure_and_resolves_on_recovery(
    app: Flask, client: FlaskClient, pagerduty_events: CapturedEvents
) -> None:
    store(app).payments_up = False
    assert client.get("/health").status_code == 503
    assert pagerduty_events.triggers == []  # one failure is a blip
    assert client.get("/health").status_code == 503
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["summary"].startswith("Health check failed: payments")

    store(app).payments_up = True
    assert client.get("/health").status_code == 200
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_flask_pagerduty_test_command(app: Flask, pagerduty_events: CapturedEvents) -> None:
    result = app.test_cli_runner().invoke(args=["pagerduty", "test"])

    assert result.exit_code == 0, result.output
    assert len(pagerduty_events.triggers) == 1
    assert len(pagerduty_events.resolves) == 1
