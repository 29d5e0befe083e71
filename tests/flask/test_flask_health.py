"""The health endpoint and health-check alerting."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from pd_integrations import AlertManager, ConfigurationError
from pd_integrations.flask import PagerDuty, get_state
from pd_integrations.health import HealthMonitor
from pd_integrations.testing import CapturedEvents
from tests.clock import FakeClock
from tests.spec import assert_valid_event
from tests.test_health import Gate, overlapping_runs
from tests.transport import wait_until

from .conftest import build_app, json_of

MakeApp = Callable[..., Flask]


def test_check_fails_triggers_once_and_recovery_resolves(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    """Seed parity: the health-check alert triggers on failure and resolves on recovery."""
    ext = PagerDuty()
    database = {"up": True}

    @ext.health.check("db", runbook="https://runbooks.example.com/db")
    def db() -> bool:
        if not database["up"]:
            raise ConnectionError("connection refused by db:5432 password=hunter2")
        return True

    client = make_app(ext=ext).test_client()
    assert client.get("/health").status_code == 200

    database["up"] = False
    first, second, third = (client.get("/health") for _ in range(3))
    assert [r.status_code for r in (first, second, third)] == [503, 503, 503]
    assert json_of(first)["checks"]["db"]["status"] == "unhealthy"
    assert "error" not in json_of(first)["checks"]["db"]  # errors stay private by default
    assert first.headers["Cache-Control"] == "no-store"
    (trigger,) = pagerduty_events.triggers  # after 2 failures (the default), once
    assert_valid_event(trigger.pop("_path"), trigger)
    assert trigger["payload"]["summary"].startswith("Health check failed: db (ConnectionError")
    assert "hunter2" not in str(trigger)
    assert trigger["links"] == [{"href": "https://runbooks.example.com/db", "text": "Runbook"}]

    database["up"] = True
    assert client.get("/health").status_code == 200
    assert client.get("/health").status_code == 200
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_endpoint_path_thresholds_and_errors_from_settings(
    make_app: MakeApp, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    ext = PagerDuty()

    def disk() -> bool:
        clock.advance(1.0)  # a probe far slower than the 1 µs threshold below
        return False

    ext.health.register("disk", disk)
    client = make_app(
        ext=ext,
        PAGERDUTY_HEALTH_PATH="/-/ready",
        PAGERDUTY_HEALTH_FAILURE_THRESHOLD=1,
        PAGERDUTY_HEALTH_SHOW_ERRORS=True,
        PAGERDUTY_ALERT_ON_HANDLED_5XX=True,
        PAGERDUTY_SLOW_REQUEST_MS=0.001,
    ).test_client()

    assert client.get("/health").status_code == 404
    started = clock.now
    response = client.get("/-/ready")

    assert clock.now - started == 1.0  # the probe was slow on the monitor's clock
    assert response.status_code == 503
    assert json_of(response)["checks"]["disk"]["error"] == "check returned False"
    # One trigger, for the check: the probe itself is neither a slow request nor a 5xx one.
    (trigger,) = pagerduty_events.triggers
    assert trigger["payload"]["custom_details"]["alert_type"] == "health_check"


def test_health_endpoint_can_be_turned_off(make_app: MakeApp) -> None:
    client = make_app(PAGERDUTY_HEALTH_PATH=None).test_client()
    assert client.get("/health").status_code == 404


def test_an_existing_health_route_is_left_alone(make_app: MakeApp) -> None:
    app = build_app()

    @app.route("/health")
    def own_health() -> str:
        return "mine"

    PagerDuty(app)
    try:
        assert app.test_client().get("/health").data == b"mine"
    finally:
        get_state(app).close(1.0)


def test_periodic_checks_only_when_configured(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    ext = PagerDuty()
    runs: list[float] = []

    def queue() -> bool:
        runs.append(time.monotonic())
        return False

    ext.health.register("queue", queue, failure_threshold=1)
    idle = make_app("idle", ext=ext)
    # A long interval: the background thread runs the checks once now, then waits.
    periodic = make_app("periodic", ext=ext, PAGERDUTY_HEALTH_INTERVAL=60)
    state = get_state(periodic)
    # Not in a process that only loads the app (flask shell, a pre-fork master) ...
    assert not state.health.running
    # ... but once it serves requests.
    assert periodic.test_client().get("/").status_code == 200
    assert state.health.running
    assert idle.test_client().get("/").status_code == 200
    assert not get_state(idle).health.running
    assert wait_until(lambda: bool(pagerduty_events.triggers), timeout=30)

    (trigger,) = pagerduty_events.triggers  # no probe needed
    assert trigger["payload"]["summary"].startswith("Health check failed: queue")
    assert len(runs) == 1
    # The endpoint serves the periodic report instead of running the checks again. The
    # run stores its report just after raising the alert: wait for it.
    assert wait_until(lambda: state.health.last_report is not None, timeout=30)
    report = state.health.last_report
    assert report is not None
    response = periodic.test_client().get("/health")
    assert response.status_code == 503
    assert json_of(response)["checked_at"] == report.to_dict()["checked_at"]
    assert len(runs) == 1
    state.close(1.0)
    assert not state.health.running


def test_shared_health_monitor(pagerduty_events: CapturedEvents) -> None:
    with AlertManager() as alerts:
        monitor = HealthMonitor(alerts, failure_threshold=1)
        monitor.register("direct", lambda: True)
        ext = PagerDuty(alerts=alerts, health=monitor)
        ext.health.register("via_extension", lambda: True)
        app = build_app()
        ext.init_app(app)

        assert get_state(app).health is monitor
        assert monitor.names == ["direct", "via_extension"]
        assert json_of(app.test_client().get("/health"))["status"] == "healthy"


def test_overlapping_probes_share_one_run_of_a_slow_check(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    """Three probes at once on a healthy check still running: three 200s, no page."""
    ext = PagerDuty()
    db = ext.health.register("db", Gate(), failure_threshold=1)
    app = make_app(ext=ext)
    responses = overlapping_runs(db, 3, lambda: app.test_client().get("/health"))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert db.calls == 1
    assert pagerduty_events.events == []


def _up() -> bool:
    return True


def _down() -> bool:
    return False


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("failure_threshold", 0, "failure_threshold must be a whole number of at least 1, not 0"),
        ("timeout", -2, "timeout must be a positive number of seconds, not -2"),
        ("severity", "page", "severity must be one of critical, error, warning, info, not 'page'"),
    ],
)
def test_a_bad_option_is_the_same_error_however_the_check_is_declared(
    make_app: MakeApp, option: str, value: object, problem: str
) -> None:
    ext = PagerDuty()
    on_the_monitor = get_state(make_app(ext=ext)).health

    given: dict[str, Any] = {option: value}
    message = "^" + re.escape(f"health check 'db': {problem}") + "$"

    with pytest.raises(ValueError, match=message):
        on_the_monitor.register("db", _up, **given)
    # On the extension, before any app: refused there and then, not at init_app.
    with pytest.raises(ValueError, match=message):
        ext.health.register("db", _up, **given)
    with pytest.raises(ValueError, match=message):
        ext.health.check("db", **given)(_up)
    # In the setting, spelled as there (lower-case is accepted): the same problem.
    app = build_app("declared", PAGERDUTY_HEALTH_CHECKS={"db": {"CHECK": _up, **given}})
    with pytest.raises(ConfigurationError) as declared:
        PagerDuty(app)

    assert str(declared.value).startswith(
        f"PAGERDUTY_HEALTH_CHECKS['db'] has an invalid option: {problem} (from app.config)"
    )
    assert on_the_monitor.names == ext.health.names == []


def test_a_check_declared_before_init_app_runs_as_one_registered_on_the_monitor(
    make_app: MakeApp,
) -> None:
    ext = PagerDuty()
    ext.health.register("db", _up, timeout=2, severity="error")
    ext.health.register(
        "api", _down, depends_on=["db"], recovery_threshold=3, runbook="https://rb.example.com/api"
    )
    patient = make_app(
        "patient",
        ext=ext,
        PAGERDUTY_HEALTH_FAILURE_THRESHOLD=4,
        PAGERDUTY_HEALTH_TIMEOUT=7,
        PAGERDUTY_HEALTH_CHECKS={"cache": {"CHECK": _up, "SEVERITY": "warning"}},
    )
    eager = make_app("eager", ext=ext, PAGERDUTY_HEALTH_FAILURE_THRESHOLD=1)
    ext.health.register("queue", _up, failure_threshold=2)  # after init_app: reaches both

    state = get_state(patient)
    direct = HealthMonitor(state.alerts, failure_threshold=4, default_timeout=7)
    direct.register("cache", _up, severity="warning")
    direct.register("db", _up, timeout=2, severity="error")
    direct.register(
        "api", _down, depends_on=["db"], recovery_threshold=3, runbook="https://rb.example.com/api"
    )
    direct.register("queue", _up, failure_threshold=2)

    assert state.health.names == direct.names == ["cache", "db", "api", "queue"]
    for name in direct.names:
        assert state.health.options(name) == direct.options(name), name
    # Each app's monitor fills in its own defaults for what the check left out.
    assert state.health.options("db").failure_threshold == 4
    assert get_state(eager).health.options("db").failure_threshold == 1
    assert get_state(eager).health.options("queue").failure_threshold == 2
