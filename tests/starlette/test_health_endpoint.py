"""The health route: a JSON report, 200 or 503, paging on the way down and resolving up."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.testclient import TestClient

from pd_integrations import AlertManager
from pd_integrations.health import HealthMonitor, HealthReport
from pd_integrations.starlette import health_endpoint, health_route
from pd_integrations.testing import CapturedEvents
from tests.clock import FakeClock
from tests.test_health import Gate

from .apps import timed_by
from .conftest import valid_triggers

SLOW_REQUEST_MS = 1
CHECK_SECONDS = 0.01
"""How long each check takes on the middleware's clock: ten times its threshold."""


class Switch:
    """A dependency the test turns off and on; each call is slow on ``clock``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.up = True
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        self.clock.advance(CHECK_SECONDS)
        if not self.up:
            raise ConnectionError("connection refused by cache:6379")
        return True


def build(kind: str, health: HealthMonitor, clock: FakeClock, **route: Any) -> Starlette:
    if kind == "starlette":
        app = Starlette(routes=[health_route(health, **route)])
    elif kind == "fastapi-route":
        app = FastAPI()
        app.router.routes.append(health_route(health, **route))
    else:
        app = FastAPI()
        app.add_route("/health", health_endpoint(health, **route))
    app.add_middleware(timed_by(clock), alerts=health.alerts, slow_request_ms=SLOW_REQUEST_MS)
    return app


KINDS = ["starlette", "fastapi-route", "fastapi-add-route"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_check_pages_once_and_recovery_resolves(
    alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock, kind: str
) -> None:
    switch = Switch(clock)
    health = HealthMonitor(alerts, failure_threshold=2)
    health.register("cache", switch)
    client = TestClient(build(kind, health, clock))

    ok = client.get("/health")
    assert ok.status_code == 200
    assert ok.json()["status"] == "healthy"
    assert ok.json()["checks"]["cache"]["status"] == "healthy"
    assert ok.headers["cache-control"] == "no-store"

    switch.up = False
    statuses = [client.get("/health").status_code for _ in range(3)]
    assert statuses == [503, 503, 503]
    down = client.get("/health").json()
    assert down["status"] == "unhealthy"
    assert down["checks"]["cache"]["alerting"] is True
    assert "error" not in down["checks"]["cache"], "errors stay private by default"

    switch.up = True
    assert client.get("/health").status_code == 200

    (trigger,) = valid_triggers(pagerduty_events)
    assert trigger["payload"]["summary"].startswith("Health check failed: cache")
    assert "connection refused" in trigger["payload"]["custom_details"]["error"]
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]
    # /health is excluded from slow-request alerts by default: its every request took
    # 10 ms, ten times the threshold, and none raised one.
    assert switch.calls == 6
    assert len(pagerduty_events.triggers) == 1


def test_errors_can_be_shown_and_head_works(
    alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    switch = Switch(clock)
    switch.up = False
    health = HealthMonitor(alerts)
    health.register("cache", switch)
    client = TestClient(build("starlette", health, clock, errors=True, path="/healthz"))

    body = client.get("/healthz").json()
    assert body["checks"]["cache"]["error"].startswith("ConnectionError: connection refused")
    head = client.head("/healthz")
    assert head.status_code == 503
    assert head.content == b""


def test_a_recent_report_is_served_without_running_the_checks(
    alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    switch = Switch(clock)
    health = HealthMonitor(alerts)
    health.register("cache", switch)
    client = TestClient(build("starlette", health, clock, max_age=60))

    for _ in range(3):
        assert client.get("/health").status_code == 200

    assert switch.calls == 1


def test_overlapping_probes_share_one_run_of_a_slow_check(
    alerts: AlertManager,
    pagerduty_events: CapturedEvents,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three probes at once on a healthy check still running: three 200s, no page."""
    health = HealthMonitor(alerts, failure_threshold=1)
    db = health.register("db", Gate())
    entered = threading.Semaphore(0)
    arun = health.arun

    async def arun_then_signal(*, alert: bool = True) -> HealthReport:
        run = asyncio.ensure_future(arun(alert=alert))
        for _ in range(20):  # lets the run reach the check: it is in flight from here
            await asyncio.sleep(0)
        entered.release()
        return await run

    monkeypatch.setattr(health, "arun", arun_then_signal)
    statuses: list[int] = []
    with TestClient(build("fastapi-add-route", health, clock)) as client:
        probes = [
            threading.Thread(target=lambda: statuses.append(client.get("/health").status_code))
            for _ in range(3)
        ]
        for probe in probes:
            probe.start()
        assert all(entered.acquire(timeout=30) for _ in probes)
        db.opened.set()
        for probe in probes:
            probe.join(30)

    assert statuses == [200, 200, 200]
    assert db.calls == 1
    assert pagerduty_events.events == []
