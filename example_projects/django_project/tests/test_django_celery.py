"""The shop's Celery tasks, run eagerly (in the test's process, no broker needed).

Each test builds ``PagerDuty(celery_app)`` while ``pagerduty_events`` captures events,
with the example's own task settings, and puts the project's integration back after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# isort: off
# The example's Django setup and its per-test fixture (settings, captured events).
from test_django_example import example_project  # noqa: F401

# These need the example on sys.path and Django configured (by the import above).
from pdexample import celery as project_celery
from pdexample import settings as example_settings
from pdexample.shop import catalog
from pdexample.shop.inventory import SERVICE
from pdexample.shop.tasks import build_sales_report, email_receipt, sync_inventory
# isort: on

from pd_integrations.celery import PagerDuty
from pd_integrations.testing import CapturedEvents


@pytest.fixture
def tasks(
    example_project: None,  # noqa: F811 - the imported fixture, applied first
    pagerduty_events: CapturedEvents,
) -> Iterator[PagerDuty]:
    # The project's own integration would report the same failures: this test's one
    # replaces it, with the example's task settings.
    project_celery.pagerduty.disconnect()
    pagerduty = PagerDuty(
        project_celery.app,
        slow_task_ms=example_settings.CELERY_PAGERDUTY_SLOW_TASK_MS,
        task_overrides=example_settings.CELERY_PAGERDUTY_TASK_OVERRIDES,
    )
    yield pagerduty
    pagerduty.disconnect()
    assert pagerduty.alerts is not None
    pagerduty.alerts.close(5)
    project_celery.pagerduty.connect()


def test_healthy_tasks_page_nobody(tasks: PagerDuty, pagerduty_events: CapturedEvents) -> None:
    assert sync_inventory.apply().get() == "synced"
    assert email_receipt.apply((1,)).get() == 5926
    assert build_sales_report.apply().get() == "report"
    assert pagerduty_events.events == []


def test_the_receipt_bug_pages_once_for_all_us_orders(
    tasks: PagerDuty, pagerduty_events: CapturedEvents
) -> None:
    us_orders = [order.id for order in catalog.ORDERS.values() if order.country == "US"] + [
        catalog.place_order(catalog.PRODUCTS[1], 1, "US").id
    ]

    for order_id in us_orders:
        assert email_receipt.apply((order_id,)).failed()

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"].startswith("Task shop.email_receipt failed: KeyError")
    assert event["payload"]["custom_details"]["task"] == "shop.email_receipt"


def test_an_inventory_outage_pages_after_the_retries_and_the_next_sync_resolves(
    tasks: PagerDuty, pagerduty_events: CapturedEvents
) -> None:
    SERVICE.online = False
    assert sync_inventory.apply().failed()  # eager: the two retries run at once
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["custom_details"]["attempt"] == 3

    SERVICE.online = True
    assert sync_inventory.apply().get() == "synced"
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_a_slow_report_warns(tasks: PagerDuty, pagerduty_events: CapturedEvents) -> None:
    build_sales_report.apply((1.2,))  # its own threshold: 1 s

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["summary"].startswith("Slow task: shop.build_sales_report")
