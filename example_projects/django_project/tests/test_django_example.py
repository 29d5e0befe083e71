"""The example shop's alerting, tested the way you would test your own project's.

pytest-django configures Django from ``pdexample.settings`` (``DJANGO_SETTINGS_MODULE`` in
this example's pyproject.toml). Every test captures PagerDuty events
(``pagerduty_events``: nothing reaches PagerDuty) and gets an AlertManager built for it;
a test that needs other alerting settings changes ``settings.PAGERDUTY``.

(The fixtures live here rather than in a conftest.py, so that the examples of the
library's repository do not each bring a module named ``conftest``.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.test import Client
from pdexample.shop import catalog
from pdexample.shop.inventory import SERVICE
from pytest_django import Settings

import pd_integrations.django as pagerduty_django
from pd_integrations.testing import CapturedEvents


@pytest.fixture(autouse=True)
def example_project(pagerduty_events: CapturedEvents) -> Iterator[None]:
    catalog.reset()
    SERVICE.online = True
    # The routing key comes from the environment (set by pagerduty_events), so the
    # AlertManager is rebuilt now, and closed while events are still captured.
    pagerduty_django.reset()
    yield
    pagerduty_django.reset()


@pytest.fixture
def shop(client: Client) -> Client:
    """pytest-django's ``client``, answering like a server: a view's exception becomes
    the 500 page, not a test error."""
    client.raise_request_exception = False
    return client


def test_the_shop_works_and_pages_nobody(shop: Client, pagerduty_events: CapturedEvents) -> None:
    assert shop.get("/").status_code == 200
    assert len(shop.get("/products/").json()["products"]) == 3
    assert shop.get("/orders/1/receipt/").json() == {"order": 1, "total_cents": 5926}
    assert shop.get("/healthz/").json()["status"] == "healthy"
    assert pagerduty_events.events == []


def test_the_receipt_bug_pages_once_for_all_us_orders(
    shop: Client, pagerduty_events: CapturedEvents
) -> None:
    created = shop.post(
        "/orders/", {"product": 1, "quantity": 1, "country": "US"}, content_type="application/json"
    )
    assert created.status_code == 201

    assert shop.get("/orders/2/receipt/").status_code == 500
    assert shop.get(f"/orders/{created.json()['id']}/receipt/").status_code == 500

    (event,) = pagerduty_events.triggers
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == "[500] KeyError: 'US' - GET /orders/<int:pk>/receipt/"
    assert payload["source"] == "pdexample-shop"
    assert payload["custom_details"]["route"] == "/orders/<int:pk>/receipt/"
    assert event["links"] == [
        {"href": "https://runbooks.example.com/shop/errors", "text": "Runbook (exception)"}
    ]


def test_client_errors_do_not_page(shop: Client, pagerduty_events: CapturedEvents) -> None:
    assert shop.get("/products/99/").status_code == 404
    assert shop.post("/orders/", "not json", content_type="application/json").status_code == 400
    assert shop.get("/orders/").status_code == 405
    assert pagerduty_events.events == []


def test_a_slow_report_raises_a_warning(
    shop: Client, settings: Settings, pagerduty_events: CapturedEvents
) -> None:
    settings.PAGERDUTY = {**settings.PAGERDUTY, "SLOW_REQUEST_MS": 50}  # this test only
    assert shop.get("/reports/sales/", {"seconds": "0.1"}).status_code == 200
    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["dedup_key"] == "slow_request:/reports/sales/"
    assert event["payload"]["custom_details"]["status"] == 200


def test_the_csv_export_is_timed_to_its_last_row(
    shop: Client, settings: Settings, pagerduty_events: CapturedEvents
) -> None:
    settings.PAGERDUTY = {**settings.PAGERDUTY, "SLOW_ROUTES": {"/export/orders.csv": 50}}
    response = shop.get("/export/orders.csv", {"delay": "0.05"})
    assert pagerduty_events.events == []  # the view returned at once
    assert response.getvalue().decode().splitlines()[0] == "id,product,quantity,country"
    (event,) = pagerduty_events.triggers
    assert event["dedup_key"] == "slow_request:/export/orders.csv"
    assert event["payload"]["custom_details"]["duration_ms"] >= 100


def test_low_stock_raises_its_own_warning(shop: Client, pagerduty_events: CapturedEvents) -> None:
    order = {"product": 3, "quantity": 2, "country": "FR"}
    response = shop.post("/orders/", json.dumps(order), content_type="application/json")
    assert response.status_code == 201

    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"] == "Low stock: Pour-over kettle (4 left)"
    assert event["dedup_key"] == "low_stock:3"


def test_the_inventory_health_check_triggers_and_resolves(
    shop: Client, pagerduty_events: CapturedEvents
) -> None:
    SERVICE.online = False
    order = {"product": 1, "quantity": 1, "country": "DE"}
    refused = shop.post("/orders/", order, content_type="application/json")
    assert refused.status_code == 503  # handled: the health check is what pages
    for _ in range(2):  # two failures in a row (the default threshold)
        probe = shop.get("/healthz/")
        assert probe.status_code == 503
    assert probe.json()["checks"]["inventory"]["status"] == "unhealthy"
    (trigger,) = pagerduty_events.triggers
    assert trigger["dedup_key"] == "health_check:inventory"
    assert trigger["links"][0]["href"] == "https://runbooks.example.com/shop/inventory"

    SERVICE.online = True
    assert shop.get("/healthz/").status_code == 200
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]
