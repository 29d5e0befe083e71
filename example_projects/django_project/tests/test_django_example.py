"""The example shop's alerting, tested the way you would test your own project's.

Django can be configured once per process. Run alone (``pytest`` in the example's
directory), it is configured from ``pdexample.settings``. Collected together with other
Django tests that configured it first, each test here runs under ``override_settings``
with the example's settings instead. Either way every test captures PagerDuty events
(``pagerduty_events``: nothing reaches PagerDuty) and gets an AlertManager built for it.

(This setup lives here rather than in a conftest.py, so that the examples of the
library's repository do not each bring a module named ``conftest``.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import Client, override_settings

EXAMPLE_DIR = str(Path(__file__).resolve().parents[1])
if EXAMPLE_DIR not in sys.path:
    sys.path.insert(0, EXAMPLE_DIR)
if not settings.configured:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdexample.settings")
    django.setup()

# These need the example on sys.path and Django configured.
from pdexample import settings as example_settings  # noqa: E402
from pdexample.shop import catalog  # noqa: E402
from pdexample.shop.inventory import SERVICE  # noqa: E402

import pd_integrations.django as pagerduty_django  # noqa: E402
from pd_integrations.testing import CapturedEvents  # noqa: E402

PAGERDUTY = example_settings.PAGERDUTY
# The settings that make up the example; the rest (logging...) are whoever's came first.
APPLIED = (
    "ALLOWED_HOSTS",
    "CACHES",
    "DEBUG",
    "INSTALLED_APPS",
    "MIDDLEWARE",
    "PAGERDUTY",
    "ROOT_URLCONF",
)


def example_overrides() -> dict[str, Any]:
    missing = object()
    wanted = {name: getattr(example_settings, name) for name in APPLIED}
    return {k: v for k, v in wanted.items() if getattr(settings, k, missing) != v}


@pytest.fixture(autouse=True)
def example_project(pagerduty_events: CapturedEvents) -> Iterator[None]:
    catalog.reset()
    SERVICE.online = True
    with override_settings(**example_overrides()):
        # The routing key comes from the environment (set by pagerduty_events), so the
        # AlertManager is rebuilt now, and closed while events are still captured.
        pagerduty_django.reset()
        yield
        pagerduty_django.reset()


def client() -> Client:
    # Like a real server: a view's exception becomes the 500 page, not a test error.
    return Client(raise_request_exception=False)


def test_the_shop_works_and_pages_nobody(pagerduty_events: CapturedEvents) -> None:
    shop = client()
    assert shop.get("/").status_code == 200
    assert len(shop.get("/products/").json()["products"]) == 3
    assert shop.get("/orders/1/receipt/").json() == {"order": 1, "total_cents": 5926}
    assert shop.get("/healthz/").json()["status"] == "healthy"
    assert pagerduty_events.events == []


def test_the_receipt_bug_pages_once_for_all_us_orders(pagerduty_events: CapturedEvents) -> None:
    shop = client()
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


def test_client_errors_do_not_page(pagerduty_events: CapturedEvents) -> None:
    shop = client()
    assert shop.get("/products/99/").status_code == 404
    assert shop.post("/orders/", "not json", content_type="application/json").status_code == 400
    assert shop.get("/orders/").status_code == 405
    assert pagerduty_events.events == []


def test_a_slow_report_raises_a_warning(pagerduty_events: CapturedEvents) -> None:
    with override_settings(PAGERDUTY={**PAGERDUTY, "SLOW_REQUEST_MS": 50}):
        assert client().get("/reports/sales/", {"seconds": "0.1"}).status_code == 200
        (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["dedup_key"] == "slow_request:/reports/sales/"
    assert event["payload"]["custom_details"]["status"] == 200


def test_the_csv_export_is_timed_to_its_last_row(pagerduty_events: CapturedEvents) -> None:
    slow_export = {**PAGERDUTY, "SLOW_ROUTES": {"/export/orders.csv": 50}}
    with override_settings(PAGERDUTY=slow_export):
        response = client().get("/export/orders.csv", {"delay": "0.05"})
        assert pagerduty_events.events == []  # the view returned at once
        assert response.getvalue().decode().splitlines()[0] == "id,product,quantity,country"
        (event,) = pagerduty_events.triggers
    assert event["dedup_key"] == "slow_request:/export/orders.csv"
    assert event["payload"]["custom_details"]["duration_ms"] >= 100


def test_low_stock_raises_its_own_warning(pagerduty_events: CapturedEvents) -> None:
    order = {"product": 3, "quantity": 2, "country": "FR"}
    response = client().post("/orders/", json.dumps(order), content_type="application/json")
    assert response.status_code == 201

    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"] == "Low stock: Pour-over kettle (4 left)"
    assert event["dedup_key"] == "low_stock:3"


def test_the_inventory_health_check_triggers_and_resolves(
    pagerduty_events: CapturedEvents,
) -> None:
    shop = client()
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
