"""PAGERDUTY_* settings: app.config first, then the environment; clear errors at init_app."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from pd_integrations import ConfigurationError, Severity
from pd_integrations.flask import PagerDuty, get_state, load_settings
from pd_integrations.monitor import DEFAULT_EXCLUDE_PATHS

KEY = "abcdefghijklmnopqrstuvwxyz012345"


def test_defaults() -> None:
    settings = load_settings({}, {})

    assert settings.routing_key is None
    assert settings.events_base_url == "https://events.pagerduty.com"
    assert settings.slow_request_ms is None
    assert settings.exclude_paths == DEFAULT_EXCLUDE_PATHS  # /health is among them
    assert settings.alert_on_handled_5xx is False
    assert settings.dedup_by == "fingerprint"
    assert settings.health_path == "/health"
    assert settings.health_interval is None
    assert settings.health_show_errors is False


def test_environment_fallbacks() -> None:
    env = {
        "PAGERDUTY_INTEGRATION_KEY": KEY,
        "PAGERDUTY_EVENTS_BASE_URL": "http://127.0.0.1:8765/",
        "APP_NAME": "shop",
        "APP_ENV": "staging",
        "APP_URL": "https://shop.example.com",
        "PAGERDUTY_SLOW_REQUEST_MS": "750",
        "PAGERDUTY_SLOW_ROUTES": '{"/reports": 5000, "/export": null}',
        "PAGERDUTY_EXCLUDE_PATHS": "/metrics, /static/*",
        "PAGERDUTY_ALERT_ON_HANDLED_5XX": "yes",
        "PAGERDUTY_DEDUP_BY": "route",
        "PAGERDUTY_RUNBOOKS": '{"*": "https://runbooks.example.com"}',
        "PAGERDUTY_HEALTH_INTERVAL": "30",
        "PAGERDUTY_IGNORE_EXCEPTIONS": (
            "builtins.KeyboardInterrupt, concurrent.futures.CancelledError"
        ),
    }
    settings = load_settings({}, env)

    assert settings.routing_key == KEY
    assert settings.routing_key_origin == "environment variable PAGERDUTY_INTEGRATION_KEY"
    assert settings.events_base_url == "http://127.0.0.1:8765"
    assert (settings.source, settings.environment) == ("shop", "staging")
    assert settings.client_url == "https://shop.example.com"
    assert settings.slow_request_ms == 750.0
    assert settings.slow_routes == {"/reports": 5000.0, "/export": None}
    assert settings.exclude_paths == ("/metrics", "/static/*", "/health")
    assert settings.alert_on_handled_5xx is True
    assert settings.dedup_by == "route"
    assert settings.runbooks == {"*": "https://runbooks.example.com"}
    assert settings.health_interval == 30.0
    assert [t.__name__ for t in settings.ignore_exceptions] == [
        "KeyboardInterrupt",
        "CancelledError",
    ]


def test_app_config_wins_over_the_environment() -> None:
    env = {"PAGERDUTY_ROUTING_KEY": "x" * 32, "APP_NAME": "env-name", "APP_ENV": "env"}
    config: dict[str, Any] = {
        "PAGERDUTY_ROUTING_KEY": KEY,
        "PAGERDUTY_SOURCE": "config-name",
        "PAGERDUTY_ENVIRONMENT": "prod",
        "PAGERDUTY_SLOW_REQUEST_MS": None,  # None turns it off, even if the env sets it
        "PAGERDUTY_SEVERITY_FOR_STATUS": {503: "warning", "504": None},
        "PAGERDUTY_HEALTH_PATH": None,
    }
    settings = load_settings(config, {**env, "PAGERDUTY_SLOW_REQUEST_MS": "100"})

    assert settings.routing_key == KEY
    assert settings.routing_key_origin == "app.config"
    assert (settings.source, settings.environment) == ("config-name", "prod")
    assert settings.slow_request_ms is None
    assert settings.severity_for_status == {503: Severity.WARNING, 504: None}
    assert settings.health_path is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PAGERDUTY_SLOW_REQUEST_MS", "fast", "positive number of milliseconds"),
        ("PAGERDUTY_SLOW_REQUEST_MS", -5, "positive number of milliseconds"),
        ("PAGERDUTY_SLOW_REQUEST_MS", True, "positive number of milliseconds"),
        ("PAGERDUTY_SLOW_ROUTES", {"/x": 0}, "positive milliseconds or None"),
        ("PAGERDUTY_SLOW_ROUTES", "[1, 2]", "mapping"),
        ("PAGERDUTY_SLOW_ROUTES", "{not json", "not valid JSON"),
        ("PAGERDUTY_EXCLUDE_PATHS", [1, 2], "list of strings"),
        ("PAGERDUTY_ALERT_ON_HANDLED_5XX", "maybe", "true or false"),
        ("PAGERDUTY_DEDUP_BY", "url", "'fingerprint' or 'route'"),
        ("PAGERDUTY_SEVERITY_FOR_STATUS", {404: "error"}, "5xx status codes"),
        ("PAGERDUTY_SEVERITY_FOR_STATUS", {500: "loud"}, "5xx status codes"),
        ("PAGERDUTY_RUNBOOKS", {"*": 3}, "runbook URLs"),
        ("PAGERDUTY_EVENTS_BASE_URL", "ftp://events.example.com", "http:// or https://"),
        ("PAGERDUTY_EVENTS_BASE_URL", "http://host:99999", "http:// or https://"),
        ("PAGERDUTY_HEALTH_PATH", "health", "starting with /"),
        ("PAGERDUTY_HEALTH_INTERVAL", "0", "positive number of seconds"),
        ("PAGERDUTY_HEALTH_FAILURE_THRESHOLD", 0, "at least 1"),
        ("PAGERDUTY_HEALTH_RECOVERY_THRESHOLD", 1.5, "at least 1"),
        ("PAGERDUTY_IGNORE_EXCEPTIONS", "no.such.Error", "exception classes"),
        ("PAGERDUTY_IGNORE_EXCEPTIONS", ["builtins.len"], "exception classes"),
        ("PAGERDUTY_SOURCE", 42, "must be a string"),
    ],
)
def test_invalid_settings_name_the_setting(name: str, value: object, message: str) -> None:
    app = Flask("bad")
    app.config[name] = value

    with pytest.raises(ConfigurationError, match=message) as caught:
        PagerDuty(app)

    assert str(caught.value).startswith(f"{name} ")
    assert "(from app.config)" in str(caught.value)
    assert "pagerduty" not in app.extensions


def test_invalid_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_SLOW_REQUEST_MS", "soon")

    with pytest.raises(ConfigurationError) as caught:
        PagerDuty(Flask("bad"))

    assert "environment variable PAGERDUTY_SLOW_REQUEST_MS" in str(caught.value)


def test_malformed_routing_key_is_named_and_masked() -> None:
    app = Flask("bad")
    app.config["PAGERDUTY_ROUTING_KEY"] = "short-but-secret-key"

    with pytest.raises(ConfigurationError, match="PAGERDUTY_ROUTING_KEY") as caught:
        PagerDuty(app)

    assert "short-but-secret-key" not in str(caught.value)


def test_settings_reach_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", KEY)
    app = Flask("configured")
    app.config.update(
        PAGERDUTY_SLOW_REQUEST_MS="250",
        PAGERDUTY_SLOW_ROUTES={"GET /reports": 3000},
        PAGERDUTY_COMPONENT="checkout",
        PAGERDUTY_HEALTH_FAILURE_THRESHOLD=3,
        PAGERDUTY_AUTO_RESOLVE_AFTER=None,
    )
    PagerDuty(app)
    state = get_state(app)
    try:
        assert state.monitor.slow_request_ms == 250.0
        assert state.monitor.slow_threshold("GET", "/reports") == 3.0
        assert state.monitor.component == "checkout"
        assert state.health.failure_threshold == 3
        assert state.alerts.auto_resolve_after is None
        assert state.alerts.enabled
    finally:
        state.close(1.0)
