from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pd_integrations import AlertManager
from pd_integrations.health import CheckStatus, HealthMonitor, OverallStatus
from pd_integrations.testing import CapturedEvents

from .spec import assert_valid_event
from .transport import wait_until


class Switch:
    """A check whose health the test flips; counts how often it ran."""

    def __init__(self, healthy: bool = True) -> None:
        self.healthy = healthy
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.healthy


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", dedup_key_prefix="prod", rate_limit=None)
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture
def health(alerts: AlertManager) -> Iterator[HealthMonitor]:
    monitor = HealthMonitor(alerts, environment="prod")
    try:
        yield monitor
    finally:
        monitor.stop()


def actions(events: CapturedEvents) -> list[tuple[str, str]]:
    return [(e["event_action"], e["dedup_key"]) for e in events.events]


def test_n_failures_trigger_once_and_m_successes_resolve_once(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    health = HealthMonitor(alerts, failure_threshold=3, recovery_threshold=2)
    db = health.register("db", Switch(healthy=False))

    for run in range(1, 3):
        report = health.run()
        assert report["db"].status is CheckStatus.UNHEALTHY
        assert report["db"].consecutive_failures == run
        assert not report["db"].alerting
    assert pagerduty_events.events == []

    for _ in range(5):  # the third failure pages; the ones after it do not
        assert health.run()["db"].alerting
    key = "prod:health_check:db"
    assert actions(pagerduty_events) == [("trigger", key)]
    (trigger,) = pagerduty_events.triggers
    assert_valid_event(trigger.pop("_path"), trigger)
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == "Health check failed: db (check returned False)"
    details = trigger["payload"]["custom_details"]
    assert details["alert_type"] == "health_check"
    assert details["check"] == "db"
    assert details["error"] == "check returned False"
    assert details["consecutive_failures"] == 3

    db.healthy = True
    assert health.run()["db"].alerting  # one success is not yet a recovery
    assert len(pagerduty_events.events) == 1
    report = health.run()
    assert not report["db"].alerting
    for _ in range(3):
        health.run()
    assert actions(pagerduty_events) == [("trigger", key), ("resolve", key)]
    assert alerts.get_alert(key) is None


def test_a_blip_below_the_threshold_does_not_page(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    cache = health.register("cache", Switch())
    for healthy in (False, True, False, True, False, True):
        cache.healthy = healthy
        health.run()
    assert pagerduty_events.events == []


def test_a_raising_check_is_unhealthy_with_the_error(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    @health.check(failure_threshold=1, runbook="https://runbooks.example.com/queue")
    def queue() -> bool:
        raise ConnectionRefusedError("broker at amqp://guest:guest@mq:5672 refused")

    report = health.run()
    result = report["queue"]
    assert result.status is CheckStatus.UNHEALTHY
    assert result.error is not None
    assert result.error.startswith("ConnectionRefusedError: broker at amqp://[Filtered]@mq")
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["custom_details"]["error"] == result.error
    assert trigger["links"] == [{"href": "https://runbooks.example.com/queue", "text": "Runbook"}]
    assert report.to_dict(errors=False)["checks"]["queue"] == {
        "status": "unhealthy",
        "duration_ms": result.duration_ms,
        "alerting": True,
    }


def test_a_sync_check_that_hangs_times_out(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    release = threading.Event()
    calls: list[int] = []

    def stuck() -> bool:
        calls.append(1)
        return release.wait(30)

    health.register("stuck", stuck, timeout=0.05, failure_threshold=1)
    try:
        began = time.monotonic()
        first = health.run()["stuck"]
        assert time.monotonic() - began < 5
        assert first.status is CheckStatus.UNHEALTHY
        assert first.error == "timed out after 0.05s"
        # Still hung: reported again without starting a second copy of it.
        second = health.run()["stuck"]
        assert second.status is CheckStatus.UNHEALTHY
        assert second.error is not None
        assert "still running" in second.error
        assert calls == [1]
        (trigger,) = pagerduty_events.triggers
        assert trigger["payload"]["custom_details"]["error"] == "timed out after 0.05s"
    finally:
        release.set()
    # Once it returns, the next run calls it again.
    assert wait_until(lambda: health.run()["stuck"].healthy)
    assert len(calls) >= 2


def test_async_checks(health: HealthMonitor, pagerduty_events: CapturedEvents) -> None:
    state = {"ok": True}

    @health.check("api", failure_threshold=1)
    async def api() -> bool:
        await asyncio.sleep(0)
        return state["ok"]

    @health.check("slow_api", timeout=0.05, failure_threshold=1)
    async def slow_api() -> None:
        await asyncio.sleep(30)

    report = asyncio.run(health.arun())
    assert report["api"].healthy
    assert report["slow_api"].error == "timed out after 0.05s"
    # The sync entry point runs async checks too.
    state["ok"] = False
    report = health.run()
    assert report["api"].status is CheckStatus.UNHEALTHY
    assert report["slow_api"].error == "timed out after 0.05s"
    assert [t["payload"]["custom_details"]["check"] for t in pagerduty_events.triggers] == [
        "slow_api",
        "api",
    ]


def test_sync_checks_under_arun(health: HealthMonitor) -> None:
    release = threading.Event()
    health.register("disk", lambda: True)
    health.register("nfs", lambda: release.wait(30), timeout=0.05)

    async def main() -> Any:
        return await health.arun()

    try:
        report = asyncio.run(main())
    finally:
        release.set()
    assert report["disk"].healthy
    assert report["nfs"].error == "timed out after 0.05s"


def test_dependents_of_a_failing_check_do_not_page(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    db = health.register("db", Switch(healthy=False), failure_threshold=1)
    api = health.register("api", Switch(healthy=False), depends_on=["db"], failure_threshold=1)
    search = health.register("search", Switch(), depends_on=["api"])
    for _ in range(3):
        report = health.run()
        assert report["api"].status is CheckStatus.SKIPPED
        assert report["api"].error == "dependency down: db"
        assert report["search"].error == "dependency down: api"
    assert api.calls == 0
    assert search.calls == 0
    (trigger,) = pagerduty_events.triggers
    details = trigger["payload"]["custom_details"]
    assert details["check"] == "db"
    assert details["dependents"] == ["api", "search"]

    # The dependency recovers: now the dependent's own failure is its own page.
    db.healthy = True
    report = health.run()
    assert report["api"].status is CheckStatus.UNHEALTHY
    assert report["search"].status is CheckStatus.SKIPPED
    assert actions(pagerduty_events) == [
        ("trigger", "prod:health_check:db"),
        ("resolve", "prod:health_check:db"),
        ("trigger", "prod:health_check:api"),
    ]


def test_the_report_serves_a_health_endpoint(health: HealthMonitor) -> None:
    db = health.register("db", Switch())
    disk = health.register("disk", Switch(), severity="warning")
    assert health.last_report is None

    report = health.run()
    assert report.status is OverallStatus.HEALTHY
    assert report.http_status == 200
    body = report.to_dict()
    assert body["status"] == "healthy"
    assert body["checked_at"].endswith("Z")
    assert set(body["checks"]) == {"db", "disk"}
    assert health.last_report is report

    disk.healthy = False
    report = health.run()
    assert report.status is OverallStatus.DEGRADED
    assert report.http_status == 200
    assert report.to_dict()["checks"]["disk"]["error"] == "check returned False"

    db.healthy = False
    report = health.run()
    assert report.status is OverallStatus.UNHEALTHY
    assert not report.healthy
    assert report.http_status == 503
    with pytest.raises(KeyError):
        report["nope"]


def test_check_results_are_read_generously(health: HealthMonitor) -> None:
    class Unjudgeable:
        def __bool__(self) -> bool:
            raise ValueError("ambiguous")

    health.register("none", lambda: None)
    health.register("true", lambda: True)
    health.register("false", lambda: False)
    health.register("zero", lambda: 0)  # type: ignore[type-var]
    health.register("odd", Unjudgeable)  # type: ignore[type-var]
    report = health.run()
    assert [c.name for c in report.checks if c.healthy] == ["none", "true"]
    assert report["zero"].error == "check returned 0"


def test_periodic_runs_on_a_thread(health: HealthMonitor, pagerduty_events: CapturedEvents) -> None:
    db = health.register("db", Switch(healthy=False))
    health.start(0.01)
    assert health.running
    with pytest.raises(RuntimeError, match="already"):
        health.start(0.01)
    assert wait_until(lambda: len(pagerduty_events.triggers) == 1)
    db.healthy = True
    assert wait_until(lambda: len(pagerduty_events.resolves) == 1)
    assert health.stop(timeout=5)
    assert not health.running
    calls = db.calls
    time.sleep(0.05)
    assert db.calls == calls
    assert health.stop()  # stopping twice is fine
    health.start(0.01)  # and it can start again
    assert wait_until(lambda: db.calls > calls)


def test_periodic_runs_in_an_event_loop(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    async def check() -> bool:
        return False

    health.register("upstream", check)

    async def lifespan() -> None:
        task = asyncio.create_task(health.run_periodically(0.01))
        for _ in range(500):
            if pagerduty_events._bodies or (
                health.last_report is not None and health.last_report["upstream"].alerting
            ):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(lifespan())
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["custom_details"]["check"] == "upstream"


def test_concurrent_runs_page_once(health: HealthMonitor, pagerduty_events: CapturedEvents) -> None:
    health.register("db", Switch(healthy=False))
    threads = [threading.Thread(target=lambda: [health.run() for _ in range(5)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(pagerduty_events.triggers) == 1


def test_registration_is_validated(health: HealthMonitor) -> None:
    health.register("db", Switch())
    with pytest.raises(ValueError, match="already registered"):
        health.register("db", Switch())
    with pytest.raises(ValueError, match="registered first"):
        health.register("api", Switch(), depends_on=["cache"])
    with pytest.raises(ValueError, match="name"):
        health.register("", Switch())
    with pytest.raises(TypeError, match="callable"):
        health.register("x", "not a function")  # type: ignore[type-var]
    with pytest.raises(ValueError, match="threshold"):
        health.register("x", Switch(), failure_threshold=0)
    with pytest.raises(ValueError, match="timeout"):
        health.register("x", Switch(), timeout=0)
    with pytest.raises(ValueError, match="severity"):
        health.register("x", Switch(), severity="fatal")
    with pytest.raises(ValueError, match="interval"):
        health.start(0)
    assert health.names == ["db"]


def test_the_decorator_names_checks_after_the_function(health: HealthMonitor) -> None:
    @health.check()
    def redis() -> bool:
        return True

    assert health.names == ["redis"]
    assert redis() is True  # the function is returned unchanged


def test_a_check_raising_cancelled_error_is_just_unhealthy(health: HealthMonitor) -> None:
    async def flaky() -> bool:
        raise asyncio.CancelledError

    health.register("flaky", flaky)
    health.register("after", lambda: True)
    report = asyncio.run(health.arun())
    assert report["flaky"].status is CheckStatus.UNHEALTHY
    assert report["flaky"].error is not None
    assert report["flaky"].error.startswith("asyncio.exceptions.CancelledError")
    assert [c.name for c in report.checks] == ["flaky", "after"]


def test_a_report_only_run_neither_pages_nor_moves_the_counts(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    health = HealthMonitor(alerts, failure_threshold=1)
    health.register("db", Switch(healthy=False))
    for _ in range(3):
        report = health.run(alert=False)
        assert report["db"].status is CheckStatus.UNHEALTHY
        assert report["db"].consecutive_failures == 0
    assert asyncio.run(health.arun(alert=False))["db"].status is CheckStatus.UNHEALTHY
    assert pagerduty_events.events == []
    assert health.run()["db"].alerting  # a normal run still pages on the first failure
    assert len(pagerduty_events.triggers) == 1
