"""The app, and the AlertManager / monitors it builds once per process."""

from __future__ import annotations

import threading

from django.apps import apps
from django.test import Client

import pd_integrations.django as pd_django
from pd_integrations.django import conf, runtime
from pd_integrations.django.apps import PagerDutyConfig
from pd_integrations.testing import CapturedEvents

from .conftest import ROUTING_KEY, pagerduty


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
