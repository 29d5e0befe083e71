"""The HTML report and the console's Insights view in headless Chromium.

The report file must open with no request leaving the page: every request the page
makes is recorded and must be the file itself. The console view must show the same
figures as the report for the month of ``dataset.py``. Screenshots go to ``tmp_path``;
with ``PD_DOCS_SCREENSHOTS=1`` they also replace the docs' ``docs/images/insights-*.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from pd_integrations.emulator import Emulator
from pd_integrations.insights import build_report, render_html
from pd_integrations.rest import RestClient

from .dataset import JUNE, MAY, MovableNow

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
TIMEOUT_MS = 15_000
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, locale="en-GB", timezone_id="UTC"
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _save(page: Page, tmp_path: Path, name: str, *, full_page: bool = True) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=full_page)
    assert shot.stat().st_size > 10_000
    if os.environ.get("PD_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(shot, DOCS_IMAGES / name)


def test_html_report_is_self_contained(
    page: Page, month: tuple[Emulator, MovableNow], tmp_path: Path
) -> None:
    emulator, _ = month
    with RestClient("token", base_url=emulator.rest_url) as client:
        report = build_report(
            client, since=MAY, until=JUNE, sla=timedelta(minutes=30), now=lambda: JUNE
        )
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    requests: list[Request] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request))
    page.on("console", lambda message: problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(path.as_uri())
    expect(page.locator("h1")).to_have_text("PagerDuty insights")
    expect(page.locator("figure svg")).to_have_count(3)
    expect(page.locator('svg[aria-label="Incidents per day"] rect')).to_have_count(31)
    expect(page.get_by_text("raise slow_request_ms for route /checkout")).to_be_visible()
    _save(page, tmp_path, "insights-report.png")
    assert [request.url for request in requests] == [path.as_uri()]
    assert problems == []


def test_console_insights_view_shows_the_reports_figures(
    page: Page, month: tuple[Emulator, MovableNow], tmp_path: Path
) -> None:
    emulator, _ = month
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.goto(emulator.console_url)
    view = page.get_by_test_id("insights-view")
    expect(view).to_be_hidden()
    page.get_by_test_id("insights-button").click()
    expect(view).to_be_visible()
    # The emulator's clock stands at June 1st: the last 90 days hold the whole month.
    page.get_by_test_id("insights-since").select_option("90d")
    expect(page.get_by_test_id("insights-incidents")).to_have_text("72")
    expect(page.get_by_test_id("insights-mtta-median")).to_have_text("3m00s")
    expect(page.get_by_test_id("insights-mttr-median")).to_have_text("5m00s")
    expect(page.get_by_test_id("insights-unacknowledged")).to_have_text("40")
    expect(page.get_by_test_id("insights-flapping")).to_have_text("10")
    expect(page.get_by_test_id("insights-out-of-hours")).to_have_text("42")
    # 30 min everywhere: the 45-minute payments resolves breach it too.
    expect(page.get_by_test_id("insights-sla-share")).to_have_text(f"{50 / 72 * 100:.1f}%")
    rows = page.get_by_test_id("insights-alert-row")
    expect(rows.first).to_have_attribute("data-alert-key", "health")
    expect(rows.first.get_by_test_id("insights-suggestion")).to_contain_text("failure_threshold")
    expect(page.locator('[data-testid="insights-chart-incidents"] rect')).to_have_count(90)
    page.get_by_test_id("insights-sla").fill("1h")
    page.get_by_test_id("insights-sla").dispatch_event("change")
    expect(page.get_by_test_id("insights-sla-share")).to_have_text(f"{70 / 72 * 100:.1f}%")
    _save(page, tmp_path, "insights-console.png", full_page=False)
    assert problems == []
