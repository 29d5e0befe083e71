"""Heartbeat monitors through the public API, with a fake wall clock and captured events."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pd_integrations import AlertManager
from pd_integrations.heartbeats import Heartbeats, SQLiteStore
from pd_integrations.testing import CapturedEvents
from tests.clock import FakeClock

pytest_plugins = ["tests.redis_server"]

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_missed_run_triggers_once_and_a_late_run_resolves(
    monitors: Heartbeats, clock: FakeClock, events: CapturedEvents
) -> None:
    monitors.add("sync", interval=600, grace=60)
    clock.advance(659)
    assert monitors.check() == []
    clock.advance(1)
    [(slug, action)] = monitors.check()
    assert slug == "sync"
    assert action.reason == "missed"
    clock.advance(3600)
    assert monitors.check() == []  # still the same missed run: no second page
    [trigger] = events.triggers
    assert trigger["dedup_key"] == monitors.dedup_key("sync")
    assert trigger["payload"]["custom_details"]["reason"] == "missed"
    assert "missed" in trigger["payload"]["summary"]

    with monitors.run("sync"):  # the late run
        clock.advance(5)
    assert [event["dedup_key"] for event in events.resolves] == [monitors.dedup_key("sync")]
    assert len(events.triggers) == 1


def test_a_run_past_max_runtime_triggers_and_its_end_resolves(
    monitors: Heartbeats, clock: FakeClock, events: CapturedEvents
) -> None:
    monitors.add("report", interval=3600, max_runtime=300)
    monitors.check_in("report", "in_progress")
    clock.advance(299)
    assert monitors.check() == []
    clock.advance(1)
    [(_, action)] = monitors.check()
    assert action.reason == "overrun"
    clock.advance(60)
    assert monitors.check() == []
    monitors.check_in("report", "ok")
    assert len(events.triggers) == 1
    assert len(events.resolves) == 1


def test_failures_page_after_the_threshold_and_a_success_resolves(
    monitors: Heartbeats, clock: FakeClock, events: CapturedEvents
) -> None:
    monitors.add("etl", interval=60, failure_threshold=2, severity="critical")

    @monitors.job("etl", interval=60, failure_threshold=2, severity="critical")
    def etl(fail: bool) -> str:
        if fail:
            raise RuntimeError("upstream down")
        return "done"

    with pytest.raises(RuntimeError):
        etl(True)
    assert events.triggers == []
    clock.advance(60)
    with pytest.raises(RuntimeError):
        etl(True)
    [trigger] = events.triggers
    assert trigger["payload"]["severity"] == "critical"
    details = trigger["payload"]["custom_details"]
    assert details["reason"] == "failed"
    assert details["exception"] == "RuntimeError"
    assert details["failures_in_a_row"] == 2
    clock.advance(60)
    assert etl(False) == "done"
    assert len(events.resolves) == 1


def test_a_timezone_aware_cron_schedule_follows_daylight_saving(
    monitors: Heartbeats, clock: FakeClock, events: CapturedEvents
) -> None:
    # 2026-03-29: Berlin skips 02:00-03:00, so the 02:30 run is due at 03:00 CEST.
    clock.now = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN).timestamp()
    monitors.add("nightly", schedule="30 2 * * *", timezone="Europe/Berlin", grace=600)
    [info] = monitors.monitors()
    assert info.state.expected == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN).timestamp()
    clock.now = datetime(2026, 3, 29, 3, 9, 59, tzinfo=BERLIN).timestamp()
    assert monitors.check() == []
    clock.now = datetime(2026, 3, 29, 3, 10, tzinfo=BERLIN).timestamp()
    assert [action.reason for _, action in monitors.check()] == ["missed"]
    monitors.check_in("nightly", "ok")
    [info] = monitors.monitors()
    # The next night is back on summer time: 02:30 CEST, 23.5 hours later.
    assert info.state.expected == datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN).timestamp()
    # In October 02:30 happens twice; the run is due at the first one only.
    clock.now = datetime(2026, 10, 24, 3, 0, tzinfo=BERLIN).timestamp()
    monitors.check_in("nightly", "ok")
    [info] = monitors.monitors()
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0).timestamp()
    assert info.state.expected == first
    clock.now = first + 3600 + 1  # the second 02:30 (CET): long past the grace
    assert len(monitors.check()) == 1
    assert len(events.triggers) == 2
    assert len(events.resolves) == 1


def test_check_ins_are_shared_through_the_sqlite_file(
    alerts: AlertManager, clock: FakeClock, events: CapturedEvents, tmp_path: Path
) -> None:
    path = tmp_path / "heartbeats.sqlite3"
    app = Heartbeats(alerts, store=SQLiteStore(path), watchdog=False, clock=clock)
    wrapper = Heartbeats(alerts, store=SQLiteStore(path), watchdog=False, clock=clock)
    try:
        app.add("backup", interval=3600, grace=60)
        clock.advance(3000)
        wrapper.check_in("backup", "ok")  # declared by the app only: the spec is shared
        clock.advance(3600 + 59)
        assert app.check() == []  # the wrapper's run moved the deadline for the app too
        clock.advance(2)
        assert len(app.watch_once() or []) == 1
        assert wrapper.watch_once() is None  # the app's watchdog holds the lease
        [info] = wrapper.monitors()
        assert info.status == "missed"
    finally:
        app.close()
        wrapper.close()
    assert len(events.triggers) == 1


def test_two_watchdogs_on_one_redis_send_one_trigger_per_missed_run(
    alerts: AlertManager,
    clock: FakeClock,
    events: CapturedEvents,
    redis_url: str,
    redis_prefix: str,
) -> None:
    url = f"{redis_url}?prefix={redis_prefix}"
    first = Heartbeats(alerts, state_url=url, path="unused", watchdog=False, clock=clock)
    second = Heartbeats(alerts, state_url=url, path="unused", watchdog=False, clock=clock)
    try:
        first.add("sync", interval=60, grace=10)
        second.add("sync", interval=60, grace=10)
        for _ in range(3):  # three missed runs, each watchdog watching every second
            for _ in range(80):
                clock.advance(1)
                first.watch_once()
                second.watch_once()
                first.check()  # even without the lease, the shared record decides once
                second.check()
            assert len(events.triggers) == len(events.resolves) + 1
            first.check_in("sync", "ok")
            assert len(events.resolves) == len(events.triggers)
        assert len(events.triggers) == 3
    finally:
        first.close()
        second.close()


def test_bad_input_is_a_clear_error_and_a_broken_store_never_raises(
    alerts: AlertManager, clock: FakeClock, monitors: Heartbeats
) -> None:
    with pytest.raises(ValueError, match="status"):
        monitors.check_in("x", "done")
    with pytest.raises(ValueError, match="no monitor named"):
        monitors.check_in("never-declared", "ok")
    with pytest.raises(ValueError, match="cron"):
        monitors.add("bad", schedule="61 * * * *")
    with pytest.raises(ValueError, match="exactly one"):
        monitors.add("both", schedule="* * * * *", interval=60)
    with pytest.raises(ValueError, match="time zone"):
        monitors.add("tz", schedule="* * * * *", timezone="Mars/Olympus")
    broken = Heartbeats(
        alerts, state_url="redis://127.0.0.1:1/0", path="unused", watchdog=False, clock=clock
    )
    broken.add("job", interval=60)  # logged, not raised
    broken.check_in("job", "ok")
    assert broken.check() == []
    broken.close()
