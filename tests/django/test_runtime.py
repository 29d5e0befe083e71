"""The app, and the AlertManager / monitors it builds once per process."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.apps import apps
from django.test import Client

import pd_integrations.django as pd_django
from pd_integrations.django import conf, runtime
from pd_integrations.django.apps import PagerDutyConfig
from pd_integrations.health import HealthMonitor
from pd_integrations.state import MemoryState
from pd_integrations.state.redis import RedisState
from pd_integrations.testing import CapturedEvents

from .conftest import ROUTING_KEY, pagerduty
from .health import cache, upstream


def health_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pd_integrations-health" and t.is_alive()]


def test_the_app_is_installed_under_its_label() -> None:
    config = apps.get_app_config("pd_integrations")
    assert isinstance(config, PagerDutyConfig)
    assert config.name == "pd_integrations.django"


def test_nothing_is_built_before_the_first_request(events: CapturedEvents) -> None:
    assert runtime._current is None
    Client().get("/")
    assert runtime._current is not None


def test_the_public_accessors(events: CapturedEvents) -> None:
    alerts = pd_django.alert_manager()
    assert alerts is not None
    assert alerts.enabled
    assert pd_django.request_monitor() is runtime.current().monitor
    assert pd_django.health_monitor() is runtime.current().health
    key = alerts.warning("Queue backing up")
    (event,) = events.triggers
    assert event["dedup_key"] == key


def test_the_monitor_gets_the_settings(events: CapturedEvents) -> None:
    with pagerduty(
        ROUTING_KEY=ROUTING_KEY,
        SLOW_REQUEST_MS=100,
        SLOW_ROUTES={"/export/": None},
        ALERT_ON_HANDLED_5XX=True,
        DEDUP_BY="route",
        RUNBOOKS={"*": "https://runbooks.example.com"},
        COMPONENT="web",
        ENVIRONMENT="prod",
    ):
        monitor = pd_django.request_monitor()
        alerts = pd_django.alert_manager()
    assert monitor is not None
    assert alerts is not None
    assert monitor.slow_threshold("GET", "/export/") is None
    assert monitor.slow_threshold("GET", "/other/") == 0.1
    assert monitor.alert_on_handled_5xx
    assert monitor.dedup_by == "route"
    assert monitor.runbooks == {"*": "https://runbooks.example.com"}
    assert (monitor.component, monitor.environment) == ("web", "prod")
    assert alerts.dedup_key_prefix == "prod"
    assert alerts.source == "django-tests"


def test_without_a_key_there_is_a_disabled_manager_and_no_monitor() -> None:
    built = runtime.current()
    assert built.alerts is not None
    assert not built.alerts.enabled
    assert built.monitor is None
    assert built.health is not None
    assert built.error is None


def test_a_malformed_key_builds_nothing() -> None:
    with pagerduty(ROUTING_KEY="0123"):
        built = runtime.current()
    assert (built.alerts, built.monitor, built.health) == (None, None, None)
    assert built.error is not None
    assert "0123" not in built.error


def test_periodic_checks_start_only_for_the_serving_runtime(events: CapturedEvents) -> None:
    checks = {"upstream": "tests.django.health.upstream"}
    with pagerduty(HEALTH_CHECKS=checks, HEALTH_INTERVAL=60):
        settings = conf.get()
        offline = runtime.build(settings, background=False)
        assert offline.health is not None
        assert not offline.health.running
        runtime.close(offline)
        serving = runtime.current().health
        assert serving is not None
        assert serving.running
        assert len(health_threads()) == 1
    assert not serving.running


def test_declared_health_checks_run_as_checks_registered_in_code() -> None:
    checks = {
        "upstream": "tests.django.health.upstream",
        "search": {
            "CHECK": "tests.django.health.cache",
            "DEPENDS_ON": ["upstream"],
            "SEVERITY": "error",
            "RECOVERY_THRESHOLD": 3,
        },
    }
    with pagerduty(HEALTH_CHECKS=checks, HEALTH_FAILURE_THRESHOLD=4, HEALTH_TIMEOUT=2):
        health = runtime.current().health
    assert health is not None

    direct = HealthMonitor(health.alerts, failure_threshold=4, default_timeout=2)
    direct.register("upstream", upstream)
    direct.register(
        "search", cache, depends_on=["upstream"], severity="error", recovery_threshold=3
    )

    assert health.names == direct.names
    for name in direct.names:
        assert health.options(name) == direct.options(name), name


# Nothing listens on port 1: building the Redis backend does not connect.
REDIS_URL = "redis://127.0.0.1:1/0"


def test_delivery_settings_reach_the_alert_manager(events: CapturedEvents, tmp_path: Path) -> None:
    spool = tmp_path / "pagerduty.spool"
    with pagerduty(
        ROUTING_KEY=ROUTING_KEY, STATE_URL=REDIS_URL, SPOOL=str(spool), FLUSH_TIMEOUT=0.5
    ):
        alerts = pd_django.alert_manager()
    assert alerts is not None
    assert isinstance(alerts.state, RedisState)
    assert alerts.state.description == REDIS_URL
    dispatcher = alerts.dispatcher
    assert dispatcher is not None
    assert dispatcher.spool_path == str(spool)
    assert spool.exists()
    assert dispatcher.exit_flush_timeout == 0.5


def test_delivery_settings_from_the_environment_reach_the_alert_manager(
    events: CapturedEvents, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spool = tmp_path / "env.spool"
    monkeypatch.setenv("PAGERDUTY_STATE_URL", REDIS_URL)
    monkeypatch.setenv("PAGERDUTY_SPOOL", str(spool))
    monkeypatch.setenv("PAGERDUTY_FLUSH_TIMEOUT", "3")
    runtime.reset()
    alerts = pd_django.alert_manager()
    assert alerts is not None
    assert isinstance(alerts.state, RedisState)
    assert alerts.dispatcher is not None
    assert alerts.dispatcher.spool_path == str(spool)
    assert alerts.dispatcher.exit_flush_timeout == 3.0


def test_a_memory_url_keeps_state_in_the_process(events: CapturedEvents) -> None:
    with pagerduty(ROUTING_KEY=ROUTING_KEY, STATE_URL="memory://"):
        alerts = pd_django.alert_manager()
    assert alerts is not None
    assert isinstance(alerts.state, MemoryState)


def test_invalid_delivery_variables_do_not_disable_alerting(
    events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reported by the system checks; at run time the defaults are used, alerting works."""
    monkeypatch.setenv("PAGERDUTY_STATE_URL", "mysql://db/0")
    monkeypatch.setenv("PAGERDUTY_FLUSH_TIMEOUT", "soon")
    runtime.reset()
    alerts = pd_django.alert_manager()
    assert alerts is not None
    assert alerts.enabled
    assert isinstance(alerts.state, MemoryState)
    assert alerts.dispatcher is not None
    assert alerts.dispatcher.exit_flush_timeout == 2.0
    alerts.warning("Queue backing up")
    assert len(events.triggers) == 1


def test_refresh_after_reaches_the_alert_manager(events: CapturedEvents) -> None:
    with pagerduty(ROUTING_KEY=ROUTING_KEY, REFRESH_AFTER="off"):
        alerts = pd_django.alert_manager()
        assert alerts is not None
        assert alerts.refresh_after == 0.0
    with pagerduty(ROUTING_KEY=ROUTING_KEY, REFRESH_AFTER=42):
        alerts = pd_django.alert_manager()
        assert alerts is not None
        assert alerts.refresh_after == 42.0
