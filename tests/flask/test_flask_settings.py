"""PAGERDUTY_* settings: app.config first, then the environment; clear errors at init_app."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pd_integrations import AlertManager, ConfigurationError, Severity
from pd_integrations.delivery import lifecycle
from pd_integrations.flask import PagerDuty, PagerDutyState, get_state, load_settings
from pd_integrations.monitor import DEFAULT_EXCLUDE_PATHS
from pd_integrations.state import MemoryState
from pd_integrations.state.redis import RedisState

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
    assert settings.exclude_paths == ("/metrics", "/static/*")
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
        ("PAGERDUTY_STATE_URL", "http://redis.internal:6379", "memory://, redis://"),
        ("PAGERDUTY_STATE_URL", "redis://redis.internal:port/0", "not a valid Redis URL"),
        ("PAGERDUTY_STATE_URL", 6379, "must be a URL string"),
        ("PAGERDUTY_SPOOL", 42, "path of the SQLite spool file"),
        ("PAGERDUTY_FLUSH_TIMEOUT", -1, "number of seconds, 0 or more"),
        ("PAGERDUTY_FLUSH_TIMEOUT", "soon", "number of seconds, 0 or more"),
        ("PAGERDUTY_FLUSH_TIMEOUT", float("inf"), "number of seconds, 0 or more"),
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

    assert "(from the environment)" in str(caught.value)


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


# -- shared state, spool and flush timeout ------------------------------------------------

DELIVERY_VARS = ("PAGERDUTY_STATE_URL", "PAGERDUTY_SPOOL", "PAGERDUTY_FLUSH_TIMEOUT")
# Nothing listens on port 1: building the Redis backend does not connect.
REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def delivery_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The routing key set, and none of the developer's own delivery variables."""
    for name in DELIVERY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", KEY)
    return monkeypatch


@pytest.fixture
def initialised() -> Iterator[list[PagerDutyState]]:
    """States to close at the end of the test (their dispatchers, threads and spools)."""
    states: list[PagerDutyState] = []
    yield states
    for state in states:
        state.close(1.0)


def init(states: list[PagerDutyState], **config: Any) -> PagerDutyState:
    app = Flask("delivery")
    app.config.update(config)
    PagerDuty(app)
    states.append(get_state(app))
    return states[-1]


def test_delivery_defaults() -> None:
    settings = load_settings({}, {})
    assert settings.state_url is None
    assert settings.spool is None
    assert settings.flush_timeout == 2.0


def test_delivery_settings_from_the_environment() -> None:
    env = {
        "PAGERDUTY_STATE_URL": " redis://:s3cret@redis.internal:6379/0 ",
        "PAGERDUTY_SPOOL": "/var/lib/shop/pagerduty.spool",
        "PAGERDUTY_FLUSH_TIMEOUT": "7.5",
    }
    settings = load_settings({}, env)

    assert settings.state_url == "redis://:s3cret@redis.internal:6379/0"
    assert settings.spool == "/var/lib/shop/pagerduty.spool"
    assert settings.flush_timeout == 7.5
    assert "s3cret" not in repr(settings)


def test_delivery_settings_in_app_config_win(tmp_path: Path) -> None:
    env = {"PAGERDUTY_STATE_URL": REDIS_URL, "PAGERDUTY_FLUSH_TIMEOUT": "9"}
    config: dict[str, Any] = {
        "PAGERDUTY_STATE_URL": "memory://",
        "PAGERDUTY_SPOOL": tmp_path / "pagerduty.spool",  # a Path is fine
        "PAGERDUTY_FLUSH_TIMEOUT": 0,  # 0: do not wait at exit
    }
    settings = load_settings(config, env)

    assert settings.state_url == "memory://"
    assert settings.spool == str(tmp_path / "pagerduty.spool")
    assert settings.flush_timeout == 0.0


def test_an_invalid_state_url_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGERDUTY_STATE_URL", "mysql://:hunter2@db/0")

    with pytest.raises(ConfigurationError) as caught:
        PagerDuty(Flask("bad"))

    message = str(caught.value)
    assert message.startswith("PAGERDUTY_STATE_URL must be a memory://, redis://")
    assert "(from the environment)" in message
    assert "hunter2" not in message


def test_a_redis_url_without_the_redis_package_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what find_spec sees when it is missing
    app = Flask("bad")
    app.config["PAGERDUTY_STATE_URL"] = REDIS_URL

    with pytest.raises(ConfigurationError, match=r"needs the redis package"):
        PagerDuty(app)


def test_a_redis_url_reaches_the_alert_manager(
    delivery_env: pytest.MonkeyPatch, initialised: list[PagerDutyState]
) -> None:
    state = init(initialised, PAGERDUTY_STATE_URL=REDIS_URL)

    assert isinstance(state.alerts.state, RedisState)
    assert state.alerts.state.description == REDIS_URL


def test_a_memory_url_and_no_url_keep_state_in_the_process(
    delivery_env: pytest.MonkeyPatch, initialised: list[PagerDutyState]
) -> None:
    assert isinstance(init(initialised, PAGERDUTY_STATE_URL="memory://").alerts.state, MemoryState)
    assert isinstance(init(initialised).alerts.state, MemoryState)


def test_the_environment_reaches_the_alert_manager(
    delivery_env: pytest.MonkeyPatch, initialised: list[PagerDutyState], tmp_path: Path
) -> None:
    spool = tmp_path / "env.spool"
    delivery_env.setenv("PAGERDUTY_STATE_URL", REDIS_URL)
    delivery_env.setenv("PAGERDUTY_SPOOL", str(spool))
    delivery_env.setenv("PAGERDUTY_FLUSH_TIMEOUT", "0.5")

    dispatcher = init(initialised).alerts.dispatcher

    assert dispatcher is not None
    assert isinstance(initialised[0].alerts.state, RedisState)
    assert dispatcher.spool_path == str(spool)
    assert dispatcher.exit_flush_timeout == 0.5


def test_spool_and_flush_timeout_reach_the_dispatcher(
    delivery_env: pytest.MonkeyPatch, initialised: list[PagerDutyState], tmp_path: Path
) -> None:
    spool = tmp_path / "pagerduty.spool"
    state = init(initialised, PAGERDUTY_SPOOL=str(spool), PAGERDUTY_FLUSH_TIMEOUT="3")

    dispatcher = state.alerts.dispatcher
    assert dispatcher is not None
    assert dispatcher.spool_path == str(spool)
    assert dispatcher.spool is not None  # the file was opened
    assert spool.exists()
    assert dispatcher.exit_flush_timeout == 3.0


def test_creating_the_manager_installs_the_sigterm_flush(
    default_sigterm: None, monkeypatch: pytest.MonkeyPatch, initialised: list[PagerDutyState]
) -> None:
    # No routing key: the manager has no dispatcher, so only init_app can install it.
    for name in ("PAGERDUTY_ROUTING_KEY", "PAGERDUTY_INTEGRATION_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert not lifecycle.installed()

    init(initialised)

    assert lifecycle.installed()


def test_a_manager_passed_in_leaves_sigterm_alone(
    default_sigterm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PAGERDUTY_ROUTING_KEY", "PAGERDUTY_INTEGRATION_KEY"):
        monkeypatch.delenv(name, raising=False)
    alerts = AlertManager()
    try:
        PagerDuty(Flask("shared"), alerts=alerts)
        assert not lifecycle.installed()
    finally:
        alerts.close(1.0)


def test_a_server_with_its_own_sigterm_handler_keeps_it(
    default_sigterm: None, monkeypatch: pytest.MonkeyPatch, initialised: list[PagerDutyState]
) -> None:
    for name in ("PAGERDUTY_ROUTING_KEY", "PAGERDUTY_INTEGRATION_KEY"):
        monkeypatch.delenv(name, raising=False)

    def server_handler(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, server_handler)

    init(initialised)

    assert signal.getsignal(signal.SIGTERM) is server_handler


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ({}, {}, 300.0),
        ({}, {"PAGERDUTY_REFRESH_AFTER": "60"}, 60.0),
        ({}, {"PAGERDUTY_REFRESH_AFTER": "off"}, 0.0),
        ({"PAGERDUTY_REFRESH_AFTER": 0}, {"PAGERDUTY_REFRESH_AFTER": "60"}, 0.0),
        ({"PAGERDUTY_REFRESH_AFTER": "off"}, {}, 0.0),
        ({"PAGERDUTY_REFRESH_AFTER": "90"}, {}, 90.0),
    ],
)
def test_refresh_after_setting(
    config: dict[str, Any], env: dict[str, str], expected: float
) -> None:
    assert load_settings(config, env).refresh_after == expected


def test_an_invalid_refresh_after_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="PAGERDUTY_REFRESH_AFTER must be a number"):
        load_settings({"PAGERDUTY_REFRESH_AFTER": -5}, {})
    with pytest.raises(ConfigurationError, match="refresh_after must be a number"):
        PagerDuty(refresh_after="soon")


def test_refresh_after_reaches_the_alert_manager(
    delivery_env: pytest.MonkeyPatch, initialised: list[PagerDutyState]
) -> None:
    assert init(initialised, PAGERDUTY_REFRESH_AFTER="off").alerts.refresh_after == 0.0
    # The keyword wins over the app's config.
    app = Flask("keyword")
    app.config.update(PAGERDUTY_REFRESH_AFTER=60)
    PagerDuty(app, refresh_after=15)
    initialised.append(get_state(app))
    assert get_state(app).alerts.refresh_after == 15.0


def test_refresh_after_cannot_go_with_a_ready_alert_manager() -> None:
    with AlertManager(None) as alerts, pytest.raises(TypeError, match="refresh_after"):
        PagerDuty(alerts=alerts, refresh_after=60)
