"""The console page in a real browser: headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` package (``python3 dev.py test`` installs it when
missing); Playwright never downloads one here. Without it these tests are skipped.
Each test opens the console first and sends events afterwards with the library's own
client, so every update it sees arrives through the page's polling, never a reload.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from pd_integrations import EventsClient
from pd_integrations.emulator import Emulator

from .conftest import ROUTING_KEY

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
# Generous: two test workers and two browsers may share two busy cores.
TIMEOUT_MS = 15_000
LAUNCH_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: install Debian's chromium package "
            "(python3 dev.py test does) to run the console's browser tests"
        )
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh temporary profile and removes it on close.
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def console_emulator() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def client(console_emulator: Emulator) -> Iterator[EventsClient]:
    with EventsClient(
        ROUTING_KEY, source="checkout-web-1", base_url=console_emulator.url
    ) as events:
        yield events


class Console:
    """The console page, with every script error and console error it reported."""

    def __init__(self, page: Page, emulator: Emulator) -> None:
        self.page = page
        self.emulator = emulator
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                self.problems.append(f"console {message.type}: {message.text}")
                if message.type in {"error", "warning"}
                else None
            ),
        )

    def open(self) -> None:
        """Load the page (no alerts yet) and mark the window, to prove no reload later."""
        self.page.goto(self.emulator.console_url)
        expect(self.page.get_by_test_id("connection-status")).to_have_text("live")
        expect(self.page.get_by_test_id("no-alerts")).to_be_visible()
        self.page.evaluate("() => { window.loadedOnce = true; }")

    def row(self, dedup_key: str) -> Locator:
        return self.page.locator(f'[data-testid="alert-row"][data-dedup-key="{dedup_key}"]')

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("() => window.loadedOnce === true"), "the page was reloaded"

    def assert_clean(self) -> None:
        assert self.problems == []


@pytest.fixture
def console(browser: Browser, console_emulator: Emulator) -> Iterator[Console]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC"
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield Console(context.new_page(), console_emulator)
    finally:
        context.close()


def test_alert_appears_live_and_is_acknowledged_then_resolved(
    console: Console, console_emulator: Emulator, client: EventsClient
) -> None:
    console.open()
    client.trigger("Checkout error rate above 5%", "critical", dedup_key="checkout-errors")

    row = console.row("checkout-errors")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("alert-summary")).to_have_text("Checkout error rate above 5%")
    expect(row.get_by_test_id("alert-severity")).to_have_text("critical")
    expect(row.get_by_test_id("alert-status")).to_have_text("triggered")
    expect(row.get_by_test_id("alert-source")).to_have_text("checkout-web-1")
    expect(row.get_by_test_id("alert-count")).to_have_text("1")
    expect(console.page.get_by_test_id("no-alerts")).to_be_hidden()
    console.assert_not_reloaded()
    (alert,) = console_emulator.alerts()
    expect(row).to_have_attribute("data-alert-id", alert["id"])

    row.get_by_test_id("ack-button").click()
    expect(row).to_have_attribute("data-status", "acknowledged")
    expect(row.get_by_test_id("alert-status")).to_have_text("acknowledged")
    expect(row.get_by_test_id("ack-button")).to_be_disabled()
    expect(row.get_by_test_id("resolve-button")).to_be_enabled()
    acknowledged = console_emulator.alert(alert["id"])
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["log"][-1]["action"] == "acknowledge"
    assert acknowledged["log"][-1]["via"] == "console"

    # The app triggers again: the page shows the new count, the alert stays acknowledged.
    client.trigger("Checkout error rate above 5%", "critical", dedup_key="checkout-errors")
    expect(row.get_by_test_id("alert-count")).to_have_text("2")
    expect(row.get_by_test_id("alert-status")).to_have_text("acknowledged")

    row.get_by_test_id("resolve-button").click()
    expect(row).to_have_attribute("data-status", "resolved")
    expect(row.get_by_test_id("alert-status")).to_have_text("resolved")
    expect(row.get_by_test_id("resolve-button")).to_be_disabled()
    expect(row.get_by_test_id("ack-button")).to_be_disabled()
    assert console_emulator.alerts(status="resolved") == [console_emulator.alert(alert["id"])]
    assert console_emulator.alerts(status="acknowledged") == []
    expect(console.page.get_by_test_id("stats")).to_contain_text("1 resolved")
    console.assert_not_reloaded()
    console.assert_clean()


def test_details_pane_shows_custom_details_and_acts(
    console: Console, console_emulator: Emulator, client: EventsClient
) -> None:
    custom_details = {
        "error_rate": 0.07,
        "region": "eu-west-1",
        "hosts": ["web-1", "web-2"],
        "last_error": {"status": 502, "path": "/checkout/pay"},
    }
    console.open()
    client.trigger(
        "Payment provider timeouts",
        "error",
        dedup_key="payments-timeouts",
        component="payments",
        group="checkout",
        custom_details=custom_details,
        links=[{"href": "https://runbooks.example.com/payments", "text": "Runbook"}],
    )
    row = console.row("payments-timeouts")
    expect(row).to_have_count(1)
    (alert,) = console_emulator.alerts()

    row.click()
    expect(row).to_have_class("selected")
    details = console.page.get_by_test_id("alert-details")
    expect(details.get_by_test_id("detail-summary")).to_have_text("Payment provider timeouts")
    expect(details.get_by_test_id("detail-status")).to_have_text("triggered")
    expect(details.get_by_test_id("detail-severity")).to_have_text("error")
    expect(details.get_by_test_id("detail-dedup-key")).to_have_text("payments-timeouts")
    expect(details.get_by_test_id("detail-component")).to_have_text("payments")
    expect(details.get_by_test_id("detail-id")).to_have_text(alert["id"])
    shown = json.loads(details.get_by_test_id("detail-custom-details").inner_text())
    assert shown == custom_details == alert["custom_details"]
    link = details.get_by_test_id("detail-link").get_by_role("link")
    expect(link).to_have_text("Runbook")
    expect(link).to_have_attribute("href", "https://runbooks.example.com/payments")
    expect(details.get_by_test_id("log-entry")).to_have_count(1)
    expect(details.get_by_test_id("log-action")).to_have_text(["trigger"])
    assert console.page.url.endswith(f"#alert={alert['id']}")

    details.get_by_test_id("detail-ack-button").click()
    expect(details.get_by_test_id("detail-status")).to_have_text("acknowledged")
    expect(details.get_by_test_id("detail-ack-button")).to_be_disabled()
    expect(details.get_by_test_id("log-action")).to_have_text(["trigger", "acknowledge"])
    expect(row.get_by_test_id("alert-status")).to_have_text("acknowledged")
    assert console_emulator.alert(alert["id"])["status"] == "acknowledged"
    console.assert_not_reloaded()

    # "#alert=<id>" keeps the details open across a reload.
    console.page.reload()
    expect(details.get_by_test_id("detail-summary")).to_have_text("Payment provider timeouts")
    expect(details.get_by_test_id("detail-status")).to_have_text("acknowledged")
    console.assert_clean()


def test_alert_content_is_shown_as_text_never_as_markup(
    console: Console, console_emulator: Emulator, client: EventsClient
) -> None:
    summary = '<img src=x onerror="document.body.dataset.pwned = 1">Disk full'
    source = "<b>db1</b>"
    custom_details = {"note": "</pre><script>document.body.dataset.pwned = 2</script>"}
    console.open()
    client.trigger(
        summary,
        "warning",
        dedup_key="<i>disk</i>",
        source=source,
        custom_details=custom_details,
        links=[{"href": "javascript:document.body.dataset.pwned = 3", "text": "click me"}],
    )
    row = console.row("<i>disk</i>")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("alert-summary")).to_have_text(summary)
    expect(row.get_by_test_id("alert-source")).to_have_text(source)
    row.click()
    details = console.page.get_by_test_id("alert-details")
    expect(details.get_by_test_id("detail-summary")).to_have_text(summary)
    expect(details.get_by_test_id("detail-source")).to_have_text(source)
    shown = json.loads(details.get_by_test_id("detail-custom-details").inner_text())
    assert shown == custom_details
    # A javascript: link stays inert text.
    link = details.get_by_test_id("detail-link")
    expect(link).to_contain_text("javascript:document.body.dataset.pwned = 3")
    expect(link.locator("a")).to_have_count(0)

    page = console.page
    for tag in ("img", "b", "i", "script"):
        expect(page.locator(f"main {tag}")).to_have_count(0)
    assert page.evaluate("() => document.body.dataset.pwned === undefined")
    console.assert_not_reloaded()
    # A markup injection would also show up here, as a CSP violation.
    console.assert_clean()


def test_status_filter_hides_resolved_alerts(
    console: Console, console_emulator: Emulator, client: EventsClient
) -> None:
    console.open()
    client.trigger("Queue backlog growing", "warning", dedup_key="queue")
    client.trigger("Cache hit ratio low", "info", dedup_key="cache")
    client.resolve("cache")
    expect(console.row("queue")).to_have_count(1)
    expect(console.row("cache")).to_have_attribute("data-status", "resolved")

    console.page.get_by_test_id("status-filter").select_option("open")
    expect(console.row("cache")).to_have_count(0)
    expect(console.row("queue")).to_have_count(1)
    console.page.get_by_test_id("status-filter").select_option("resolved")
    expect(console.row("queue")).to_have_count(0)
    expect(console.row("cache")).to_have_count(1)
    console.assert_clean()
