"""PagerDutyMiddleware through Starlette's real test client: FastAPI, Starlette, mounts."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Host, Mount, Route, Router
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

import pd_integrations.starlette.middleware as pd_starlette
from pd_integrations import AlertManager
from pd_integrations.errors import ConfigurationError
from pd_integrations.health import HealthMonitor
from pd_integrations.monitor import RequestMonitor
from pd_integrations.starlette import PagerDutyMiddleware
from pd_integrations.testing import CapturedEvents, capture_events
from tests.clock import FakeClock

from .apps import BACKGROUND_SECONDS, CHUNK_PAUSE, SLOW_SECONDS, Disaster, Flavour
from .conftest import valid_triggers

SECRET_HEADERS = {
    "Authorization": "Bearer s3cr3t-bearer-value",
    "Cookie": "session=c00kie-value",
    "X-Api-Key": "k3y-value",
    "X-Request-ID": "req-42",
    "User-Agent": "pytest-agent/1.0",
}


def client_for(flavour: Flavour, clock: FakeClock | None = None, **middleware: Any) -> TestClient:
    """A client for the app; with ``clock``, the middleware times requests by it."""
    app = flavour.build(clock=clock, **middleware)
    return TestClient(app, raise_server_exceptions=False)


def test_an_unhandled_error_pages_once_critical_with_the_route_template(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = client_for(flavour, alerts=alerts)

    response = client.get(flavour.url("/boom/17"), headers=SECRET_HEADERS)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    (event,) = valid_triggers(pagerduty_events)
    route = flavour.route("/boom/{n}")
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == f"[500] Disaster: database exploded - GET {route}"
    assert event["dedup_key"].startswith("exception:")
    details = payload["custom_details"]
    assert details["route"] == route
    assert "path" not in details  # a matched route: the raw path (with ids) is not needed
    assert details["method"] == "GET"
    assert details["status"] == 500
    assert details["exception_type"].endswith("Disaster")
    assert details["exception_message"] == "database exploded"
    assert details["request_id"] == "req-42"
    assert details["user_agent"] == "pytest-agent/1.0"
    assert any("explode" in frame for frame in map(str, details["stack"]))
    text = json.dumps(event)
    for secret in ("s3cr3t-bearer-value", "c00kie-value", "k3y-value"):
        assert secret not in text


def test_the_exception_still_reaches_the_server(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = TestClient(flavour.build(alerts=alerts))  # raises server exceptions

    with pytest.raises(Disaster, match="database exploded"):
        client.get(flavour.url("/boom/1"))

    assert len(valid_triggers(pagerduty_events)) == 1


def test_one_bug_on_many_urls_is_one_alert(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = client_for(flavour, alerts=alerts)

    for n in (1, 2, 3):
        assert client.get(flavour.url(f"/boom/{n}")).status_code == 500

    (event,) = valid_triggers(pagerduty_events)
    (alert,) = alerts.active_alerts()
    assert alert.dedup_key == event["dedup_key"]
    assert alert.occurrences == 3


def test_two_bugs_on_one_route_are_two_alerts(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = client_for(flavour, alerts=alerts)

    client.get(flavour.url("/fail/a"))
    client.get(flavour.url("/fail/b"))

    first, second = valid_triggers(pagerduty_events)
    assert first["dedup_key"] != second["dedup_key"]
    route = flavour.route("/fail/{kind}")
    assert first["payload"]["custom_details"]["route"] == route
    assert second["payload"]["custom_details"]["route"] == route
    assert first["payload"]["custom_details"]["exception_type"].endswith("ValueError")
    assert second["payload"]["custom_details"]["exception_type"].endswith("LookupError")


@pytest.mark.parametrize(
    ("path", "status"),
    [("/nowhere", 404), ("/forbidden", 403), ("/unavailable", 503), ("/items/1", 200)],
)
def test_client_errors_and_handled_responses_never_page(
    flavour: Flavour,
    alerts: AlertManager,
    pagerduty_events: CapturedEvents,
    path: str,
    status: int,
) -> None:
    client = client_for(flavour, alerts=alerts)

    assert client.get(flavour.url(path)).status_code == status
    assert client.post(flavour.url("/items/1")).status_code == 405

    assert pagerduty_events.events == []


def test_handled_5xx_pages_when_asked(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = client_for(flavour, alerts=alerts, alert_on_handled_5xx=True)

    assert client.get(flavour.url("/unavailable")).status_code == 503
    assert client.get(flavour.url("/forbidden")).status_code == 403
    assert client.get(flavour.url("/boom/1")).status_code == 500

    handled, crashed = valid_triggers(pagerduty_events)
    route = flavour.route("/unavailable")
    assert handled["payload"]["summary"] == f"[503] response from GET {route}"
    assert handled["payload"]["severity"] == "error"
    # The crash is one alert, not also a "handled 500" one.
    assert crashed["payload"]["custom_details"]["exception_type"].endswith("Disaster")


def test_a_slow_request_raises_one_warning(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    client = client_for(flavour, clock, alerts=alerts, slow_request_ms=50)

    assert client.get(flavour.url("/slow")).text == "done"
    assert client.get(flavour.url("/slow")).text == "done"
    assert client.get(flavour.url("/items/1")).status_code == 200  # takes no time at all

    (event,) = valid_triggers(pagerduty_events)
    route = flavour.route("/slow")
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["summary"] == (
        f"Slow request: GET {route} took 100 ms (threshold 50 ms)"
    )
    details = event["payload"]["custom_details"]
    assert details["route"] == route
    assert details["status"] == 200
    assert details["threshold_ms"] == 50
    assert details["duration_ms"] == SLOW_SECONDS * 1000
    (alert,) = alerts.active_alerts()
    assert alert.occurrences == 2


def test_per_route_thresholds_use_the_template(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    client = client_for(
        flavour,
        clock,
        alerts=alerts,
        slow_request_ms=50,
        slow_routes={flavour.route("/slow"): None},
    )

    client.get(flavour.url("/slow"))

    assert pagerduty_events.events == []


def test_streaming_is_timed_to_the_last_chunk(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    client = client_for(flavour, clock, alerts=alerts, slow_request_ms=50)

    fast = client.get(flavour.url("/stream/fast"))
    slow = client.get(flavour.url("/stream/slow"))

    assert fast.text == slow.text == "chunk 0\nchunk 1\nchunk 2\n"
    (event,) = valid_triggers(pagerduty_events)
    assert event["payload"]["custom_details"]["route"] == flavour.route("/stream/{kind}")
    # 40 ms before each of the 3 chunks: stopping at the first (40) would not alert,
    # stopping at the second would say 80.
    assert event["payload"]["custom_details"]["duration_ms"] == 3 * CHUNK_PAUSE * 1000


def test_background_tasks_are_not_counted(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    client = client_for(flavour, clock, alerts=alerts, slow_request_ms=50)
    start = clock.now

    # The test client returns after the background task ran (150 ms), but the
    # response was complete before it started.
    assert client.get(flavour.url("/background/ok")).text == "queued"

    assert clock.now == start + BACKGROUND_SECONDS, "the background task ran"
    assert pagerduty_events.events == []


def test_a_failing_background_task_pages(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = client_for(flavour, alerts=alerts)

    response = client.get(flavour.url("/background/fail"))

    assert (response.status_code, response.text) == (200, "queued")
    (event,) = valid_triggers(pagerduty_events)
    details = event["payload"]["custom_details"]
    assert details["exception_message"] == "background job failed"
    assert details["route"] == flavour.route("/background/{kind}")


def test_a_stream_that_breaks_pages(
    flavour: Flavour, alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    client = client_for(flavour, clock, alerts=alerts, slow_request_ms=50)

    client.get(flavour.url("/stream/broken"))

    (event,) = valid_triggers(pagerduty_events)
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["custom_details"]["exception_message"] == "stream broke"


def test_without_a_routing_key_the_app_works_and_nothing_is_sent(
    flavour: Flavour,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    monkeypatch.setattr(pd_starlette, "_warned_disabled", False)
    caplog.set_level(logging.WARNING)
    with capture_events(set_routing_key=False) as captured:
        client = client_for(flavour, clock, slow_request_ms=50)
        for _ in range(3):
            assert client.get(flavour.url("/boom/1")).status_code == 500
            assert client.get(flavour.url("/slow")).text == "done"
            assert client.get(flavour.url("/hello")).text == "Hello, world!"
        other = client_for(flavour)
        assert other.get(flavour.url("/boom/1")).status_code == 500

    assert captured.events == []
    warnings = [r for r in caplog.records if "disabled" in r.getMessage()]
    assert len(warnings) == 1
    assert "PAGERDUTY_ROUTING_KEY" in warnings[0].getMessage()


def test_the_manager_comes_from_the_environment(
    flavour: Flavour, pagerduty_events: CapturedEvents
) -> None:
    client = client_for(flavour)  # the fixture set PAGERDUTY_ROUTING_KEY

    client.get(flavour.url("/boom/1"))

    (event,) = valid_triggers(pagerduty_events)
    assert event["routing_key"] == pagerduty_events.routing_key


def test_slow_request_ms_falls_back_to_the_environment(
    alerts: AlertManager, pagerduty_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_SLOW_REQUEST_MS", "50")
    middleware = PagerDutyMiddleware(_nothing, alerts=alerts)
    assert middleware.monitor is not None
    assert middleware.monitor.slow_request_ms == 50


def test_an_invalid_setting_turns_the_middleware_into_a_pass_through(
    pagerduty_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PAGERDUTY_SLOW_REQUEST_MS", "fast")
    app = Starlette(routes=[Route("/boom", _boom)])
    app.add_middleware(PagerDutyMiddleware)
    client = TestClient(app, raise_server_exceptions=False)

    answers = [client.get("/boom").status_code for _ in range(3)]

    assert answers == [500, 500, 500]  # the app's own error page, not the middleware's
    assert pagerduty_events.triggers == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "PagerDuty" in r.message]
    assert len(errors) == 1
    assert "PAGERDUTY_SLOW_REQUEST_MS" in errors[0].message
    assert "'fast'" in errors[0].message
    assert "(from the environment)" in errors[0].message


def test_an_invalid_setting_fails_the_lifespan_start_up_after_the_apps_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append("app")
        yield

    app = Starlette(routes=[Route("/boom", _boom)], lifespan=lifespan)
    app.add_middleware(PagerDutyMiddleware, slow_request_ms="soon")

    with pytest.raises(ConfigurationError, match=r"slow_request_ms .*'soon'"), TestClient(app):
        pass
    assert started == ["app"]


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


def _up() -> bool:
    return True


def test_health_checks_given_as_a_setting_run_as_checks_registered_in_code(
    alerts: AlertManager,
) -> None:
    middleware = PagerDutyMiddleware(
        _nothing,
        alerts=alerts,
        health_checks={"db": _up, "api": {"check": _up, "depends_on": ["db"], "timeout": 1}},
        health_failure_threshold=3,
    )
    assert middleware.health is not None

    direct = HealthMonitor(alerts, failure_threshold=3)
    direct.register("db", _up)
    direct.register("api", _up, depends_on=["db"], timeout=1)

    assert middleware.health.names == direct.names
    for name in direct.names:
        assert middleware.health.options(name) == direct.options(name), name


def test_a_bad_health_check_option_is_the_error_registering_it_gives(
    alerts: AlertManager,
) -> None:
    with pytest.raises(ValueError) as registering:  # noqa: PT011 - its text is the point
        HealthMonitor(alerts).register("db", _up, failure_threshold=0)
    problem = str(registering.value).removeprefix("health check 'db': ")

    middleware = PagerDutyMiddleware(
        _nothing, alerts=alerts, health_checks={"db": {"CHECK": _up, "FAILURE_THRESHOLD": 0}}
    )

    assert problem == "failure_threshold must be a whole number of at least 1, not 0"
    assert isinstance(middleware.error, ConfigurationError)
    assert f"health_checks['db'] has an invalid option: {problem}" in str(middleware.error)
    assert middleware.health is None


def test_a_monitor_excludes_the_other_settings(alerts: AlertManager) -> None:
    monitor = RequestMonitor(alerts, slow_request_ms=10)

    assert PagerDutyMiddleware(_nothing, monitor=monitor).alerts is alerts
    with pytest.raises(TypeError, match="slow_request_ms"):
        PagerDutyMiddleware(_nothing, monitor=monitor, slow_request_ms=5)
    with pytest.raises(ValueError, match="AlertManager"):
        PagerDutyMiddleware(_nothing, monitor=monitor, alerts=AlertManager(rate_limit=None))


def test_refresh_after_configures_the_manager_created_here(
    pagerduty_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch, alerts: AlertManager
) -> None:
    created: list[AlertManager] = []

    def made(**settings: Any) -> AlertManager:
        alerts = PagerDutyMiddleware(_nothing, **settings).alerts
        assert alerts is not None
        return alerts

    try:
        created.append(made(refresh_after=30))
        assert created[-1].refresh_after == 30.0
        created.append(made(refresh_after="off"))
        assert created[-1].refresh_after == 0.0
        monkeypatch.setenv("PAGERDUTY_REFRESH_AFTER", "45")
        created.append(made())
        assert created[-1].refresh_after == 45.0
    finally:
        for manager in created:
            manager.close(1)
    with pytest.raises(TypeError, match="refresh_after"):
        PagerDutyMiddleware(_nothing, alerts=alerts, refresh_after=30)


async def _nothing(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


def test_a_mounted_app_without_routes_is_grouped_under_its_mount(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    async def legacy(scope: Scope, receive: Receive, send: Send) -> None:
        raise Disaster(f"legacy app failed on {scope['path']}")

    app = Starlette(routes=[Mount("/legacy/{version}", app=legacy)])
    app.add_middleware(PagerDutyMiddleware, alerts=alerts)
    client = TestClient(app, raise_server_exceptions=False)

    assert client.get("/legacy/v3/reports/9").status_code == 500

    (event,) = valid_triggers(pagerduty_events)
    assert event["payload"]["custom_details"]["route"] == "/legacy/{version}/{path}"


def test_fifty_odd_methods_on_a_mounted_app_are_one_incident(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    # A mounted app takes any method: the client's method names must not each open an
    # incident (and fill the queue ahead of real alerts).
    async def legacy(scope: Scope, receive: Receive, send: Send) -> None:
        raise Disaster("legacy app failed")

    app = Starlette(routes=[Mount("/legacy", app=legacy)])
    app.add_middleware(PagerDutyMiddleware, alerts=alerts, dedup_by="route")
    client = TestClient(app, raise_server_exceptions=False)

    for n in range(50):
        assert client.request(f"X{n}", "/legacy/pay").status_code == 500

    (event,) = valid_triggers(pagerduty_events)
    assert event["dedup_key"] == "http_error:OTHER /legacy/{path}"
    assert event["payload"]["summary"].endswith(" - OTHER /legacy/{path}")
    assert event["payload"]["custom_details"]["method"] == "OTHER"


def test_mounts_under_a_host_route_are_grouped_by_their_templates(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    # The mount templates behind a host route, not the values a client put in the URL.
    async def boom(request: Request) -> Response:
        raise Disaster("tenant lookup failed")

    async def legacy(scope: Scope, receive: Receive, send: Send) -> None:
        raise Disaster("legacy app failed")

    tenants = Router(
        [
            Mount("/tenants/{tenant}", routes=[Route("/pay", boom)]),
            Mount("/legacy/{version}", app=legacy),
        ]
    )
    app = Starlette(routes=[Host("{team}.example.com", app=tenants)])
    app.add_middleware(PagerDutyMiddleware, alerts=alerts, dedup_by="route")
    client = TestClient(app, raise_server_exceptions=False)

    for name in ("acme", "x0", "x1"):
        assert client.get(f"http://{name}.example.com/tenants/{name}/pay").status_code == 500
        assert client.get(f"http://{name}.example.com/legacy/{name}/a").status_code == 500

    assert [e["dedup_key"] for e in valid_triggers(pagerduty_events)] == [
        "http_error:GET /tenants/{tenant}/pay",
        "http_error:GET /legacy/{version}/{path}",
    ]


def test_an_unmatched_path_is_reported_raw(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    async def not_found(request: Request, exc: Exception) -> Response:
        raise Disaster("the 404 page itself is broken")

    app = Starlette(routes=[], exception_handlers={404: not_found})
    app.add_middleware(PagerDutyMiddleware, alerts=alerts)
    client = TestClient(app, raise_server_exceptions=False)

    assert client.get("/no/such/page").status_code == 500

    (event,) = valid_triggers(pagerduty_events)
    details = event["payload"]["custom_details"]
    assert "route" not in details
    assert details["path"] == "/no/such/page"
    assert event["payload"]["summary"].endswith("GET <unmatched>")
