"""Releases: detected from each documented variable, stamped on alerts, announced once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pd_integrations import AlertManager
from pd_integrations.context.release import RELEASE_ENV_VARS, announce_release
from pd_integrations.settings import load
from pd_integrations.settings.build import build_alerts
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents

pytest_plugins = ["tests.redis_server"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "context.md"
ALL_VARIABLES = ("PAGERDUTY_RELEASE", *(name for name, _ in RELEASE_ENV_VARS))


@pytest.mark.parametrize("variable", [name for name, _ in RELEASE_ENV_VARS])
def test_the_release_is_detected_from_each_documented_variable(variable: str) -> None:
    settings = load({}, origin="test", ref=lambda s: s.name, environ={variable: " abc123\n"})
    assert settings.release == "abc123"
    assert settings.origin("release") == f"environment variable {variable}"


def test_pagerduty_release_wins_over_every_detected_variable() -> None:
    environ = {name: f"from-{name}" for name in ALL_VARIABLES}
    settings = load({}, origin="test", ref=lambda s: s.name, environ=environ)
    assert settings.release == "from-PAGERDUTY_RELEASE"


def test_the_first_variable_in_the_documented_order_wins() -> None:
    first, second = RELEASE_ENV_VARS[0][0], RELEASE_ENV_VARS[-1][0]
    settings = load({}, origin="test", ref=lambda s: s.name, environ={second: "b", first: "a"})
    assert settings.release == "a"


def test_no_variable_no_release() -> None:
    assert load({}, origin="test", ref=lambda s: s.name, environ={}).release is None


def test_the_docs_list_every_variable_read() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in ALL_VARIABLES:
        assert f"`{name}`" in text, name


@pytest.fixture
def release_alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    settings = load(
        {"routing_key": TEST_ROUTING_KEY, "release": "2026.12.1"},
        origin="test",
        ref=lambda s: s.name,
        environ={},
    )
    alerts = build_alerts(settings)
    yield alerts
    alerts.close()


def test_the_release_is_stamped_on_every_alert(
    release_alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    release_alerts.error("Disk almost full")
    release_alerts.alert(
        "Queue stuck", "critical", alert_type="queue", custom_details={"queue": "mail"}
    )
    triggers = pagerduty_events.triggers
    assert len(triggers) == 2
    for event in triggers:
        assert event["payload"]["custom_details"]["release"] == "2026.12.1"
    assert triggers[1]["payload"]["custom_details"]["queue"] == "mail"


def test_announce_release_sends_one_change_event_per_process(
    pagerduty_events: CapturedEvents,
) -> None:
    first = AlertManager(TEST_ROUTING_KEY)
    second = AlertManager(TEST_ROUTING_KEY)
    try:
        sent = [announce_release(m, "memory-release-1") for m in (first, second, first)]
    finally:
        first.close()
        second.close()
    assert sent == [True, False, False]
    (change,) = pagerduty_events.changes
    assert change["payload"]["summary"] == "Release memory-release-1 started"
    assert change["payload"]["custom_details"] == {"release": "memory-release-1"}


def test_the_announce_release_setting_announces_at_start(
    pagerduty_events: CapturedEvents,
) -> None:
    given = {"routing_key": TEST_ROUTING_KEY, "announce_release": True}
    settings = load(given, origin="test", ref=lambda s: s.name, environ={"K_REVISION": "svc-7"})
    build_alerts(settings).close()
    build_alerts(settings).close()  # a second worker of the same process
    (change,) = pagerduty_events.changes
    assert change["payload"]["custom_details"] == {"release": "svc-7"}


def test_without_announce_release_nothing_is_announced(pagerduty_events: CapturedEvents) -> None:
    given = {"routing_key": TEST_ROUTING_KEY, "release": "quiet-1"}
    build_alerts(load(given, origin="test", ref=lambda s: s.name, environ={})).close()
    assert pagerduty_events.changes == []


def test_redis_state_announces_a_release_once_for_every_process(
    redis_url: str, redis_prefix: str, pagerduty_events: CapturedEvents
) -> None:
    separator = "&" if "?" in redis_url else "?"
    url = f"{redis_url}{separator}prefix={redis_prefix}"
    workers = [AlertManager(TEST_ROUTING_KEY, state_url=url) for _ in range(4)]
    try:
        # Each worker's state is its own Redis client, as in separate processes; the
        # in-process fallback cannot be what dedupes them: the key is in Redis.
        sent = [announce_release(worker, "redis-release-1") for worker in workers]
        again = announce_release(workers[0], "redis-release-2")
    finally:
        for worker in workers:
            worker.close()
    assert sent.count(True) == 1
    assert again is True
    summaries = [change["payload"]["summary"] for change in pagerduty_events.changes]
    assert summaries == ["Release redis-release-1 started", "Release redis-release-2 started"]
