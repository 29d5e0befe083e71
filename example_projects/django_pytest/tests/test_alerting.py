"""mysite's alerting, tested with pytest-django's fixtures and ``pagerduty_events``."""

from __future__ import annotations

import pytest
from django.test import Client
from orders.models import Order
from pytest_django import Settings

from pd_integrations.testing import CapturedEvents


def test_a_healthy_request_pages_nobody(client: Client, pagerduty_events: CapturedEvents) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/no-such-page/").status_code == 404  # client errors never page
    assert pagerduty_events.events == []


@pytest.mark.django_db
def test_the_item_price_bug_pages_once(client: Client, pagerduty_events: CapturedEvents) -> None:
    cancelled = Order.objects.create(customer="ann", total_cents=1200, items=0)
    for _ in range(3):
        # pytest-django's client raises what the view raised; the page went out before.
        with pytest.raises(ZeroDivisionError):
            client.get(f"/orders/{cancelled.pk}/item-price/")

    (event,) = pagerduty_events.triggers  # one page, not three
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "mysite"
    assert payload["summary"].startswith("[500] ZeroDivisionError")
    assert payload["custom_details"]["route"] == "/orders/<int:pk>/item-price/"
    assert event["links"][0]["href"] == "https://runbooks.example.com/mysite/errors"


@pytest.mark.django_db
def test_orders_with_items_and_missing_orders_page_nobody(
    client: Client, pagerduty_events: CapturedEvents
) -> None:
    order = Order.objects.create(customer="bob", total_cents=1200, items=3)
    assert client.get(f"/orders/{order.pk}/item-price/").json()["item_cents"] == 400
    assert client.get(f"/orders/{order.pk + 1}/item-price/").status_code == 404
    assert pagerduty_events.events == []


def test_a_handled_503_does_not_page_by_default(
    client: Client, pagerduty_events: CapturedEvents
) -> None:
    assert client.get("/maintenance/").status_code == 503
    assert pagerduty_events.events == []


def test_a_handled_503_pages_when_the_settings_ask(
    client: Client, settings: Settings, pagerduty_events: CapturedEvents
) -> None:
    # For this test only: pytest-django restores PAGERDUTY afterwards, and the change
    # rebuilds the AlertManager with the new settings.
    settings.PAGERDUTY = {
        **settings.PAGERDUTY,
        "ALERT_ON_HANDLED_5XX": True,
        "SEVERITY_FOR_STATUS": {503: "warning"},
    }
    assert client.get("/maintenance/").status_code == 503

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["summary"].startswith("[503]")


@pytest.mark.django_db
def test_an_ignored_exception_pages_nobody(
    client: Client, settings: Settings, pagerduty_events: CapturedEvents
) -> None:
    settings.PAGERDUTY = {**settings.PAGERDUTY, "IGNORE_EXCEPTIONS": ["builtins.ZeroDivisionError"]}
    cancelled = Order.objects.create(customer="cy", total_cents=500, items=0)
    with pytest.raises(ZeroDivisionError):
        client.get(f"/orders/{cancelled.pk}/item-price/")
    assert pagerduty_events.events == []
