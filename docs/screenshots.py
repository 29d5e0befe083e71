"""Regenerate the documentation's screenshot of the emulator console.

    .venv/bin/python docs/screenshots.py

Starts an emulator, sends it a few realistic events with the library's own client,
opens the console in headless Chromium (Debian's ``chromium`` package, driven by
Playwright; no browser is downloaded) and saves ``docs/images/console.png``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from playwright.sync_api import FloatRect, expect, sync_playwright

from pd_integrations import EventsClient
from pd_integrations.emulator import Emulator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parent / "images" / "console.png"
# Wide enough for the alerts table to show its action buttons next to the details pane.
VIEWPORT = {"width": 1440, "height": 900}
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
TIMEOUT_MS = 15_000


def send_events(emulator: Emulator) -> str:
    """A small but realistic incident; returns the id of the alert to show in detail."""
    with EventsClient(ROUTING_KEY, source="checkout-web-1", base_url=emulator.url) as client:
        client.trigger(
            "TLS certificate for api.example.com expires in 7 days",
            "info",
            dedup_key="tls-expiry/api.example.com",
            source="cert-monitor",
        )
        client.resolve("tls-expiry/api.example.com")
        client.change(
            "Deployed checkout v2.14.0",
            source="deploy-bot",
            links=[{"href": "https://ci.example.com/checkout/builds/1482", "text": "Build 1482"}],
        )
        client.trigger(
            "Order queue backlog above 10,000 messages",
            "error",
            dedup_key="orders/backlog",
            source="orders-worker-3",
            component="rabbitmq",
            custom_details={"queue": "orders.created", "depth": 12_480, "consumers": 2},
        )
        client.acknowledge("orders/backlog")
        client.trigger(
            "Disk usage at 86% on db-replica-2",
            "warning",
            dedup_key="disk/db-replica-2",
            source="db-replica-2",
            component="postgres",
            custom_details={"mount": "/var/lib/postgresql", "used_percent": 86},
        )
        details = {
            "exception": "UpstreamError: 502 Bad Gateway",
            "endpoint": "POST /checkout/pay",
            "error_rate": "7.4% over 5 min",
            "affected_regions": ["eu-west-1", "us-east-1"],
            "release": "checkout@2.14.0",
        }
        for attempt in range(3):  # the app keeps failing: one alert, three triggers
            if attempt:
                time.sleep(1)  # so that "first seen" and "last seen" differ
            client.trigger(
                "Checkout: payment provider returning 502s",
                "critical",
                dedup_key="checkout/payments-502",
                component="payments",
                group="checkout",
                class_="UpstreamError",
                custom_details=details,
                links=[
                    {"href": "https://runbooks.example.com/checkout/payments", "text": "Runbook"},
                    {"href": "https://grafana.example.com/d/checkout", "text": "Dashboard"},
                ],
            )
    alerts = emulator.wait_for_alerts(4)
    (featured,) = (a for a in alerts if a["dedup_key"] == "checkout/payments-502")
    return str(featured["id"])


def main() -> None:
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: install Debian's chromium package first")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with Emulator(port=0) as emulator:
        featured = send_events(emulator)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
            )
            try:
                context = browser.new_context(
                    viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
                    color_scheme="light",
                    locale="en-GB",
                    timezone_id="UTC",
                )
                context.set_default_timeout(TIMEOUT_MS)
                page = context.new_page()
                page.goto(emulator.console_url)
                expect(page.get_by_test_id("connection-status")).to_have_text(
                    "live", timeout=TIMEOUT_MS
                )
                row = page.locator(f'[data-testid="alert-row"][data-alert-id="{featured}"]')
                row.click()
                expect(page.get_by_test_id("detail-summary")).to_have_text(
                    "Checkout: payment provider returning 502s", timeout=TIMEOUT_MS
                )
                expect(page.get_by_test_id("change-row")).to_have_count(1, timeout=TIMEOUT_MS)
                page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover highlight in the picture
                # End below the details' links and images, before the event log, whose
                # rows would otherwise be cut in half at the bottom edge.
                images = page.get_by_test_id("detail-images").bounding_box()
                assert images is not None
                height = min(VIEWPORT["height"], math.ceil(images["y"] + images["height"] + 16))
                clip: FloatRect = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}
                page.screenshot(path=str(OUTPUT), clip=clip)
            finally:
                browser.close()
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
