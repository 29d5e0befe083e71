from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from pd_integrations import AlertManager
from pd_integrations import health as health_module
from pd_integrations.emulator import Emulator
from pd_integrations.events import Link, Severity
from pd_integrations.health import (
    CheckOptions,
    CheckStatus,
    HealthMonitor,
    HealthReport,
    OverallStatus,
)
from pd_integrations.state import HealthState, MemoryState
from pd_integrations.testing import CapturedEvents

from .spec import assert_valid_event
from .transport import wait_until

T = TypeVar("T")


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


# Each a bad value of one option, and the whole message CheckOptions gives for it: the
# option's name, what it must be, the value.
BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"failure_threshold": 0}, "failure_threshold must be a whole number of at least 1, not 0"),
    ({"failure_threshold": 2.5}, "failure_threshold must be a whole number of at least 1, not 2.5"),
    (
        {"recovery_threshold": True},
        "recovery_threshold must be a whole number of at least 1, not True",
    ),
    ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
    ({"timeout": float("inf")}, "timeout must be a positive number of seconds, not inf"),
    ({"timeout": float("nan")}, "timeout must be a positive number of seconds, not nan"),
    ({"timeout": "2"}, "timeout must be a positive number of seconds, not '2'"),
    ({"severity": "fatal"}, "severity must be one of critical, error, warning, info, not 'fatal'"),
    ({"severity": None}, "severity must be one of critical, error, warning, info, not None"),
    ({"runbook": " "}, "runbook must be a URL or a Link, not ' '"),
    ({"depends_on": "db"}, "depends_on must be a list of check names, not 'db'"),
    ({"depends_on": ["db", ""]}, "depends_on must list check names, not ''"),
]


@pytest.mark.parametrize(("given", "problem"), BAD_OPTIONS)
def test_check_options_name_the_option_and_the_bad_value(
    given: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}$"):
        CheckOptions(**given)


@pytest.mark.parametrize(("given", "problem"), BAD_OPTIONS)
def test_registering_a_bad_option_names_the_check_however_it_is_written(
    health: HealthMonitor, given: dict[str, Any], problem: str
) -> None:
    message = "^" + re.escape(f"health check 'api': {problem}") + "$"
    with pytest.raises(ValueError, match=message):
        health.register("api", Switch(), **given)
    with pytest.raises(ValueError, match=message):

        @health.check(**given)
        def api() -> bool:
            return True

    assert health.names == []


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be a whole number of at least 1, not 0"),
        (
            {"recovery_threshold": 1.0},
            "recovery_threshold must be a whole number of at least 1, not 1.0",
        ),
        ({"default_timeout": -1}, "default_timeout must be a positive number of seconds, not -1"),
    ],
)
def test_a_monitor_refuses_bad_defaults_as_checks_refuse_bad_options(
    alerts: AlertManager, given: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}$"):
        HealthMonitor(alerts, **given)


def test_options_left_out_are_the_monitors_defaults_resolved_at_registration(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    health = HealthMonitor(alerts, failure_threshold=3, recovery_threshold=2, default_timeout=4)
    health.register("db", Switch(healthy=False))
    health.register(
        "api",
        Switch(),
        timeout=1,
        depends_on=["db"],
        severity="warning",
        runbook="https://runbooks.example.com/api",
        failure_threshold=1,
    )

    assert health.options("db") == CheckOptions(
        timeout=4.0, failure_threshold=3, recovery_threshold=2
    )
    assert health.options("api") == CheckOptions(
        timeout=1.0,
        depends_on=("db",),
        severity=Severity.WARNING,
        runbook=Link("https://runbooks.example.com/api", "Runbook"),
        failure_threshold=1,
        recovery_threshold=2,
    )
    with pytest.raises(KeyError):
        health.options("cache")

    # Resolved once, when registered: a default changed later is for later checks.
    health.failure_threshold = 1
    assert health.options("db").failure_threshold == 3
    for _ in range(2):
        health.run()
    assert pagerduty_events.triggers == []
    health.run()
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["custom_details"]["timeout_s"] == 4.0


def test_one_options_value_serves_several_checks(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    upstream = CheckOptions(
        severity="error", runbook="https://runbooks.example.com/upstream", failure_threshold=1
    )
    health.register("payments", Switch(healthy=False), options=upstream)

    @health.check("search", options=upstream)
    def search() -> bool:
        return False

    health.run()

    resolved = upstream.with_defaults(
        timeout=health.default_timeout, failure_threshold=99, recovery_threshold=1
    )
    assert health.options("payments") == health.options("search") == resolved
    assert resolved.failure_threshold == 1  # its own, not the default given
    assert len(pagerduty_events.triggers) == 2
    for trigger in pagerduty_events.triggers:
        assert trigger["payload"]["severity"] == "error"
        assert trigger["links"] == [
            {"href": "https://runbooks.example.com/upstream", "text": "Runbook"}
        ]


@pytest.mark.parametrize(
    "also",
    [
        {"timeout": 2},
        {"depends_on": ["db"]},
        {"severity": "error"},
        {"runbook": "https://runbooks.example.com/db"},
        {"failure_threshold": 1},
        {"recovery_threshold": 1},
    ],
)
def test_an_options_value_goes_alone(health: HealthMonitor, also: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="health check 'api': options= holds every option"):
        health.register("api", Switch(), options=CheckOptions(), **also)
    assert health.names == []


def test_options_must_be_check_options(health: HealthMonitor) -> None:
    with pytest.raises(TypeError, match=r"options= must be a CheckOptions, not \{'timeout': 2\}"):
        health.register("api", Switch(), options={"timeout": 2})  # type: ignore[arg-type]
    assert health.names == []


def test_check_options_are_a_value() -> None:
    options = CheckOptions(
        timeout=2, depends_on=["db"], severity="error", runbook="https://runbooks.example.com/x"
    )

    same = CheckOptions(
        timeout=2.0,
        depends_on=("db",),
        severity=Severity.ERROR,
        runbook=Link("https://runbooks.example.com/x", "Runbook"),
    )
    assert options == same
    assert hash(options) == hash(same)
    assert options.timeout == 2.0
    assert isinstance(options.timeout, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 3  # type: ignore[misc]
    # A variant is checked as the original was.
    assert dataclasses.replace(options, timeout=3).timeout == 3.0
    with pytest.raises(ValueError, match="recovery_threshold must be a whole number"):
        dataclasses.replace(options, recovery_threshold=0)
    # Only None takes the default.
    assert options.with_defaults(
        timeout=9, failure_threshold=3, recovery_threshold=2
    ) == dataclasses.replace(options, failure_threshold=3, recovery_threshold=2)


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


# -- overlapping runs ---------------------------------------------------------------------


class Gate:
    """A sync check that blocks until the test opens it, then passes or raises."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> bool:
        self.calls += 1
        self.entered.set()
        self.opened.wait(30)
        if self.error is not None:
            raise self.error
        return True


def waiting_for_a_check(thread: threading.Thread) -> bool:
    """``thread`` is blocked in the health monitor, waiting for a check's call to end."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        caller = frame.f_back
        if (
            frame.f_code.co_name == "wait"
            and frame.f_code.co_filename == threading.__file__
            and caller is not None
            and caller.f_code.co_filename == health_module.__file__
        ):
            return True
        frame = caller
    return False


def overlapping_runs(
    gate: Gate, n: int, run: Callable[[], T], *, open_gate: bool = True
) -> list[T]:
    """``n`` runs (or probes) on threads, all started while ``gate``'s first call is on."""
    reports: list[T] = []
    first = threading.Thread(target=lambda: reports.append(run()))
    first.start()
    assert gate.entered.wait(10)
    others = [threading.Thread(target=lambda: reports.append(run())) for _ in range(n - 1)]
    for thread in others:
        thread.start()
    # Every run has either joined the call (and waits) or is already done.
    assert wait_until(lambda: all(waiting_for_a_check(t) or not t.is_alive() for t in others))
    if open_gate:
        gate.opened.set()
    for thread in [first, *others]:
        thread.join(30)
    assert len(reports) == n
    return reports


@pytest.mark.parametrize("probes", [3, 20])
def test_overlapping_runs_share_the_call_in_flight(
    health: HealthMonitor, pagerduty_events: CapturedEvents, probes: int
) -> None:
    db = health.register("db", Gate())
    reports = overlapping_runs(db, probes, health.run)
    assert [r.http_status for r in reports] == [200] * probes
    assert all(r["db"].healthy and r["db"].error is None for r in reports)
    assert db.calls == 1
    assert pagerduty_events.events == []


@pytest.mark.parametrize("probes", [3, 20])
def test_overlapping_async_runs_share_a_sync_check_in_flight(
    health: HealthMonitor, pagerduty_events: CapturedEvents, probes: int
) -> None:
    db = health.register("db", Gate())

    async def main() -> list[HealthReport]:
        runs = [asyncio.create_task(health.arun()) for _ in range(probes)]
        for _ in range(20):  # lets every run reach the check (no thread involved)
            await asyncio.sleep(0)
        db.opened.set()
        return await asyncio.gather(*runs)

    reports = asyncio.run(main())
    assert [r.http_status for r in reports] == [200] * probes
    assert db.calls == 1
    assert pagerduty_events.events == []


def test_a_failure_shared_by_overlapping_runs_is_one_failure(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    db = health.register("db", Gate(ConnectionError("refused by db:5432")))  # threshold 2
    reports = overlapping_runs(db, 3, health.run)
    assert [r.http_status for r in reports] == [503] * 3
    assert {r["db"].error for r in reports} == {"ConnectionError: refused by db:5432"}
    assert db.calls == 1
    # One call failed once: below the threshold of two, however many runs shared it.
    assert pagerduty_events.events == []
    assert health.run()["db"].consecutive_failures == 2
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["custom_details"]["consecutive_failures"] == 2


def test_overlapping_runs_of_a_slow_check_all_time_out(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    db = health.register("db", Gate(), timeout=0.5, failure_threshold=1)
    try:
        reports = overlapping_runs(db, 3, health.run, open_gate=False)
        errors = [r["db"].error or "" for r in reports]
        assert "timed out after 0.5s" in errors
        # A run that joined in time times out with the call; one too late for that (a
        # busy machine) finds the call hung: neither reports a failure that is not one.
        assert all(
            e == "timed out after 0.5s" or e.startswith("still running after timing out")
            for e in errors
        )
        later = health.run()["db"]
        assert later.error == "still running after timing out earlier (timeout 0.5s)"
        assert db.calls == 1  # no second copy of a hung check
        assert len(pagerduty_events.triggers) == 1
    finally:
        db.opened.set()
    assert wait_until(lambda: health.run()["db"].healthy)
    assert db.calls == 2


class AsyncGate:
    """An async check that waits, on the loop that runs it, until the test opens it."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0
        self.cancelled = 0
        self.opened: asyncio.Event | None = None

    async def __call__(self) -> bool:
        self.calls += 1
        if self.opened is None:
            self.opened = asyncio.Event()
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return True

    def open(self) -> None:
        assert self.opened is not None
        self.opened.set()


async def yield_to_the_loop(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


@pytest.mark.parametrize("error", [None, TimeoutError("upstream read timed out")])
def test_overlapping_async_runs_share_an_async_check_in_flight(
    health: HealthMonitor, pagerduty_events: CapturedEvents, error: Exception | None
) -> None:
    api = health.register("api", AsyncGate(error), failure_threshold=2)

    async def main() -> list[HealthReport]:
        runs = [asyncio.create_task(health.arun()) for _ in range(20)]
        await yield_to_the_loop()
        api.open()
        return await asyncio.gather(*runs)

    reports = asyncio.run(main())
    assert api.calls == 1
    if error is None:
        assert [r.http_status for r in reports] == [200] * 20
    else:
        assert {r["api"].error for r in reports} == {"TimeoutError: upstream read timed out"}
    assert pagerduty_events.events == []  # one failed call is one failure


def test_overlapping_async_runs_of_a_slow_async_check_time_out(
    health: HealthMonitor, pagerduty_events: CapturedEvents
) -> None:
    api = health.register("api", AsyncGate(), timeout=0.3, failure_threshold=1)

    async def main() -> list[HealthReport]:
        runs = [asyncio.create_task(health.arun()) for _ in range(3)]
        reports = await asyncio.gather(*runs)
        await yield_to_the_loop()  # the check's own cancellation at its deadline
        return reports

    reports = asyncio.run(main())
    assert {r["api"].error for r in reports} == {"timed out after 0.3s"}
    assert api.calls == 1
    assert api.cancelled == 1
    assert len(pagerduty_events.triggers) == 1


def test_a_cancelled_async_run_cancels_the_check_it_alone_waited_for(
    health: HealthMonitor,
) -> None:
    api = health.register("api", AsyncGate())

    async def main() -> None:
        run = asyncio.create_task(health.arun())
        await yield_to_the_loop()
        assert api.calls == 1
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await yield_to_the_loop()

    asyncio.run(main())
    assert api.cancelled == 1


def test_a_sync_run_joins_an_async_run_in_flight(health: HealthMonitor) -> None:
    api = health.register("api", AsyncGate())

    async def main() -> tuple[HealthReport, HealthReport]:
        run = asyncio.create_task(health.arun())
        await yield_to_the_loop()
        reports: list[HealthReport] = []
        sync_run = threading.Thread(target=lambda: reports.append(health.run()))
        sync_run.start()
        while not (waiting_for_a_check(sync_run) or not sync_run.is_alive()):
            await asyncio.sleep(0.01)  # polling, the loop keeps running the check
        api.open()
        report = await run
        await asyncio.to_thread(sync_run.join, 30)
        return report, reports[0]

    first, second = asyncio.run(main())
    assert first["api"].healthy
    assert second["api"].healthy
    assert api.calls == 1


def test_a_sync_run_blocking_the_loop_does_not_wait_for_the_loops_call(
    health: HealthMonitor,
) -> None:
    calls: list[int] = []

    async def api() -> bool:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return True

    health.register("api", api, timeout=60)

    async def main() -> HealthReport:
        run = asyncio.create_task(health.arun())
        await yield_to_the_loop()
        assert calls == [1]
        try:
            return health.run()  # blocks this loop: waiting for its task would time out
        finally:
            run.cancel()

    report = asyncio.run(main())
    assert report["api"].healthy
    assert calls == [1, 1]


def test_a_checks_own_timeout_error_is_its_error_not_its_time_limit(
    health: HealthMonitor,
) -> None:
    async def api() -> bool:
        raise TimeoutError("upstream read timed out")

    health.register("api", api, timeout=60)
    expected = "TimeoutError: upstream read timed out"
    assert health.run()["api"].error == expected
    assert asyncio.run(health.arun())["api"].error == expected


def test_the_report_shows_whether_alerts_reach_pagerduty() -> None:
    # A revoked routing key: the app is healthy, its alerting is not. The endpoint keeps
    # answering 200 (nothing the load balancer should act on) and says so.
    with Emulator(port=0, rate_limit_per_minute=None) as emulator:
        emulator.revoke("healthdeliveryroutingkey00000001")
        alerts = AlertManager(
            "healthdeliveryroutingkey00000001",
            base_url=emulator.url,
            rate_limit=None,
            state_url="memory://",
        )
        monitor = HealthMonitor(alerts)
        try:
            monitor.register("db", Switch())
            assert monitor.run().to_dict()["delivery"]["ok"] is True
            alerts.critical("Payments down")
            assert alerts.flush(30)
            report = monitor.run()
            assert report.http_status == 200
            delivery = report.to_dict()["delivery"]
            assert delivery["ok"] is False
            assert delivery["rejected"] == 1
            assert "Invalid routing key" in delivery["problem"]
            assert "problem" not in report.to_dict(errors=False)["delivery"]
        finally:
            monitor.stop()
            alerts.close(5)


def test_a_worker_that_never_saw_the_failure_resolves_what_another_one_opened(
    pagerduty_events: CapturedEvents,
) -> None:
    # Two workers, each with its own in-process state: the probe that sees the
    # dependency healthy again reaches the worker that never saw it fail.
    paged = AlertManager(state_url="memory://", rate_limit=None)
    other = AlertManager(state_url="memory://", rate_limit=None)
    first = HealthMonitor(paged, failure_threshold=1, resolve_when_healthy=60)
    second = HealthMonitor(other, failure_threshold=1, resolve_when_healthy=60)
    try:
        dependency = Switch()
        first.register("payments", dependency)
        second.register("payments", dependency)
        dependency.healthy = False
        assert first.run().http_status == 503
        dependency.healthy = True
        assert second.run().http_status == 200
        assert second.run().http_status == 200  # within the minute: not again
        actions = [(e["event_action"], e["dedup_key"]) for e in pagerduty_events.events]
        assert actions == [
            ("trigger", "health_check:payments"),
            ("resolve", "health_check:payments"),
        ]
    finally:
        first.stop()
        second.stop()
        paged.close()
        other.close()


def test_a_single_worker_sends_no_resolve_for_what_it_never_saw_fail(
    pagerduty_events: CapturedEvents,
) -> None:
    alerts = AlertManager(state_url="memory://", rate_limit=None)
    monitor = HealthMonitor(alerts)  # automatic: not one of several workers here
    try:
        monitor.register("payments", Switch())
        assert monitor.resolve_when_healthy == 0
        monitor.run()
        assert pagerduty_events.events == []
    finally:
        monitor.stop()
        alerts.close()


# -- shared state: answers arriving late ----------------------------------------------------


class _SlowSharedState(MemoryState):
    """A state shared with other processes whose answers to this process come late."""

    decides_locally = False

    def __init__(self) -> None:
        super().__init__("h3althsl0wstat3k3y0000000000001")
        self.answers = threading.Semaphore(0)
        self.answered = 0

    def observe_health(
        self, key: str, healthy: bool, failure_threshold: int, recovery_threshold: int
    ) -> HealthState:
        assert self.answers.acquire(timeout=30)
        try:
            return super().observe_health(key, healthy, failure_threshold, recovery_threshold)
        finally:
            self.answered += 1


def test_a_late_answer_of_the_shared_state_does_not_undo_later_runs(
    pagerduty_events: CapturedEvents,
) -> None:
    state = _SlowSharedState()
    manager = AlertManager(source="web-1", rate_limit=None, state=state)
    monitor = HealthMonitor(manager, failure_threshold=3)
    monitor.register("db", lambda: False)
    try:
        reports = [monitor.run() for _ in range(3)]
        assert [r["db"].consecutive_failures for r in reports] == [1, 2, 3]
        assert reports[-1]["db"].alerting
        # The shared state answers for the first run only (1 failure): the two runs made
        # since still count, so the fourth run sees 4 failures, not 2.
        state.answers.release()
        assert wait_until(lambda: state.answered == 1)
        fourth = monitor.run()["db"]
        assert (fourth.consecutive_failures, fourth.alerting) == (4, True)
    finally:
        for _ in range(8):
            state.answers.release()
        manager.close()
