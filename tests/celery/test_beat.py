"""Celery beat entries become heartbeat monitors, checked in from Celery's task signals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

celery = pytest.importorskip("celery")

from celery.schedules import crontab, schedule  # noqa: E402

from pd_integrations import AlertManager  # noqa: E402
from pd_integrations.celery.beat import beat_monitors, monitor_beat  # noqa: E402
from pd_integrations.heartbeats import Heartbeats, MemoryStore  # noqa: E402
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents, capture_events  # noqa: E402
from tests.clock import FakeClock  # noqa: E402

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    with capture_events() as captured:
        yield captured


@pytest.fixture
def app() -> Any:
    app = celery.Celery("beat-tests", broker="memory://", backend="cache+memory://")
    app.conf.timezone = "Europe/Berlin"
    app.conf.beat_schedule = {
        "nightly report": {"task": "reports.nightly", "schedule": crontab(minute=30, hour=2)},
        "sync": {"task": "reports.sync", "schedule": schedule(timedelta(minutes=5))},
        "cleanup": {"task": "reports.cleanup", "schedule": 120},
    }

    @app.task(name="reports.nightly")
    def nightly() -> str:
        return "done"

    @app.task(name="reports.sync")
    def sync(fail: bool = False) -> None:
        if fail:
            raise ConnectionError("the warehouse is unreachable")

    return app


def test_beat_entries_become_monitors_checked_in_by_task_signals(
    app: Any, events: CapturedEvents
) -> None:
    clock = FakeClock(START)
    alerts = AlertManager(TEST_ROUTING_KEY, source="tests", state_url="memory://")
    monitors = Heartbeats(alerts, store=MemoryStore(), watchdog=False, clock=clock)
    try:
        monitor_beat(app, alerts, grace=60, heartbeats=monitors)
        assert beat_monitors(app) is monitors
        found = {info.spec.slug: info for info in monitors.monitors()}
        assert sorted(found) == ["beat:cleanup", "beat:nightly-report", "beat:sync"]
        assert found["beat:nightly-report"].spec.schedule.describe() == (
            "30 2 * * * (Europe/Berlin)"
        )
        assert found["beat:sync"].spec.schedule.describe() == "every 300s"
        assert found["beat:cleanup"].spec.schedule.describe() == "every 120s"

        app.tasks["reports.nightly"].apply()
        nightly = {info.spec.slug: info for info in monitors.monitors()}["beat:nightly-report"]
        assert nightly.state.last_status == "ok"
        assert nightly.state.last_check_in == START

        # A beat task failing for good pages its monitor; its next success resolves it.
        app.tasks["reports.sync"].apply(kwargs={"fail": True})
        [trigger] = events.triggers
        assert trigger["dedup_key"] == monitors.dedup_key("beat:sync")
        assert trigger["payload"]["custom_details"]["exception"] == "ConnectionError"
        clock.advance(300)
        app.tasks["reports.sync"].apply()
        assert len(events.resolves) == 1

        # Nothing ran "cleanup" (due at +120 s, 60 s of grace): the watchdog finds it missed.
        assert [slug for slug, _ in monitors.check()] == ["beat:cleanup"]
    finally:
        monitors.close()
        alerts.close()
