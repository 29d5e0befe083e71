"""The shop's background tasks: what pages, what does not.

- ``sync_inventory`` retries while the inventory service is down (no page), and pages
  once if it is still down after its retries;
- ``email_receipt`` has the receipt bug of the web view (US orders have no tax rate):
  it fails for good at once, one ``critical`` alert for every US order;
- ``build_sales_report`` slower than its own threshold of 1 s: a warning.

The thresholds and severities are in ``CELERY_PAGERDUTY_TASK_OVERRIDES`` (settings.py).
"""

from __future__ import annotations

import time

from celery import Task, shared_task

from .catalog import ORDERS, order_total_cents
from .inventory import SERVICE, InventoryUnavailable


@shared_task(name="shop.sync_inventory", bind=True, max_retries=2, default_retry_delay=5)
def sync_inventory(self: Task) -> str:
    if not SERVICE.ping():
        raise self.retry(exc=InventoryUnavailable("inventory service is not answering"))
    return "synced"


@shared_task(name="shop.email_receipt")
def email_receipt(order_id: int) -> int:
    return order_total_cents(ORDERS[order_id])


@shared_task(name="shop.build_sales_report")
def build_sales_report(seconds: float = 0.0) -> str:
    time.sleep(seconds)
    return "report"
