"""What fires when, through Flask's real test client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from pd_integrations.emulator import Emulator
from pd_integrations.flask import get_state
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents
from tests.clock import FakeClock
from tests.spec import assert_valid_event
from tests.transport import wait_until

from .conftest import CLOSE_TASK, SLOW, THRESHOLD_MS

SECRET = "Bearer s3cr3t-t0ken-value"

MakeApp = Callable[..., Flask]


def details(event: dict[str, Any]) -> dict[str, Any]:
    custom = event["payload"]["custom_details"]
    assert isinstance(custom, dict)
    return custom


def test_unhandled_error_is_one_critical_trigger_with_the_route_template(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app().test_client()

    response = client.get(
        "/orders/42?token=abc",
        headers={"Authorization": SECRET, "X-Request-ID": "req-7", "User-Agent": "probe/1"},
    )

    assert response.status_code == 500
    (event,) = pagerduty_events.triggers
    assert_valid_event(event.pop("_path"), event)
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"] == (
        "[500] ValueError: order 42 has no line items - GET /orders/<int:order_id>"
    )
    found = details(event)
    assert found["route"] == "/orders/<int:order_id>"
    assert found["method"] == "GET"
    assert found["status"] == 500
    assert found["exception_type"] == "ValueError"
    assert found["request_id"] == "req-7"
    assert found["user_agent"] == "probe/1"
    assert "duration_ms" in found
    assert "explode_order" in json.dumps(found["stack"])
    text = json.dumps(event)
    assert "s3cr3t" not in text  # the Authorization header never leaves the process
    assert "/orders/42" not in text  # the raw path is not needed when a route matched


def test_same_error_on_two_urls_is_one_incident(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app()
    client = app.test_client()

    for url in ("/orders/1", "/orders/2", "/legacy/orders/3"):
        assert client.get(url).status_code == 500

    (event,) = pagerduty_events.triggers  # the repeats are counted, not re-sent
    (alert,) = get_state(app).alerts.active_alerts()
    assert alert.dedup_key == event["dedup_key"]
    assert alert.occurrences == 3


def test_two_errors_on_one_url_are_two_incidents(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app().test_client()

    assert client.get("/fail/key").status_code == 500
    assert client.get("/fail/zero").status_code == 500

    keys = {event["dedup_key"] for event in pagerduty_events.triggers}
    assert len(keys) == 2
    types = sorted(details(event)["exception_type"] for event in pagerduty_events.triggers)
    assert types == ["KeyError", "ZeroDivisionError"]


def test_dedup_by_route_groups_every_error_of_a_route(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app(PAGERDUTY_DEDUP_BY="route").test_client()

    client.get("/fail/key")
    client.get("/fail/zero")

    (event,) = pagerduty_events.triggers
    assert event["dedup_key"] == "http_error:GET /fail/<kind>"


def test_fifty_odd_methods_are_one_incident(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    # Hooks run for any method, before routing refuses it: a maintenance answer sees
    # the client's method names, which must not each open an incident.
    app = make_app(PAGERDUTY_ALERT_ON_HANDLED_5XX=True)

    @app.before_request
    def maintenance() -> tuple[str, int]:
        return "down for maintenance", 503

    client = app.test_client()
    for n in range(50):
        assert client.open("/orders/1", method=f"X{n}").status_code == 503

    (event,) = pagerduty_events.triggers
    assert event["dedup_key"] == "http_error:OTHER <unmatched>"
    assert event["payload"]["summary"] == "[503] response from OTHER <unmatched>"
    assert details(event)["method"] == "OTHER"
    alert = get_state(app).alerts.get_alert(event["dedup_key"])
    assert alert is not None
    assert alert.occurrences == 50


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/no/such/page", 404),
        ("/forbidden", 403),
        ("/bad", 400),
        ("/orders/not-a-number", 404),
        ("/missing-order", 404),
    ],
)
def test_client_errors_never_alert(
    make_app: MakeApp, pagerduty_events: CapturedEvents, url: str, status: int
) -> None:
    client = make_app(PAGERDUTY_ALERT_ON_HANDLED_5XX=True).test_client()

    assert client.get(url).status_code == status
    assert client.post("/forbidden").status_code == 405

    assert pagerduty_events.events == []


def test_trapped_http_exceptions_do_not_alert(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    # TRAP_HTTP_EXCEPTIONS sends a 404 through got_request_exception: still not an incident.
    client = make_app(TRAP_HTTP_EXCEPTIONS=True).test_client()

    client.get("/forbidden")
    client.get("/no/such/page")

    assert pagerduty_events.events == []


def test_abort_500_is_a_handled_error(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    quiet = make_app().test_client()
    assert quiet.get("/abort500").status_code == 500
    assert pagerduty_events.events == []

    loud = make_app("loud", PAGERDUTY_ALERT_ON_HANDLED_5XX=True).test_client()
    assert loud.get("/abort500").status_code == 500
    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "critical"
    assert event["dedup_key"] == "http_error:GET /abort500"


def test_express_style_handled_503_alerts_with_error_severity(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    """Seed parity: the error handler answers 5xx itself; 5xx only, severity by status."""
    client = make_app(PAGERDUTY_ALERT_ON_HANDLED_5XX=True).test_client()

    response = client.get("/unavailable", headers={"X-Request-ID": "req-503"})

    assert response.status_code == 503
    assert response.json == {"error": "payment provider is down", "requestId": "req-503"}
    (event,) = pagerduty_events.triggers
    assert_valid_event(event.pop("_path"), event)
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["summary"] == "[503] response from GET /unavailable"
    found = details(event)
    assert (found["method"], found["route"], found["status"]) == ("GET", "/unavailable", 503)
    assert found["request_id"] == "req-503"


def test_handled_5xx_is_silent_unless_asked_for(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app().test_client()

    assert client.get("/unavailable").status_code == 503

    assert pagerduty_events.events == []


def test_unhandled_error_with_handled_5xx_on_is_still_one_alert(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app(PAGERDUTY_ALERT_ON_HANDLED_5XX=True).test_client()

    assert client.get("/orders/1").status_code == 500

    (event,) = pagerduty_events.triggers
    assert details(event)["alert_type"] == "exception"


def test_severity_for_status_setting(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    client = make_app(
        PAGERDUTY_ALERT_ON_HANDLED_5XX=True, PAGERDUTY_SEVERITY_FOR_STATUS={"503": "warning"}
    ).test_client()

    client.get("/unavailable")

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"


def test_propagated_exception_still_alerts_once(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    # TESTING=True: Flask re-raises into the test client and no response is made.
    client = make_app(TESTING=True).test_client()

    with pytest.raises(ValueError, match="no line items"):
        client.get("/orders/5")

    (event,) = pagerduty_events.triggers
    assert details(event)["route"] == "/orders/<int:order_id>"


def test_blueprint_route_template_includes_its_prefix(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app().test_client()

    client.get("/api/items/sku-1")

    (event,) = pagerduty_events.triggers
    assert details(event)["route"] == "/api/items/<item_id>"


def test_runbook_links(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    client = make_app(
        PAGERDUTY_RUNBOOKS={"ValueError": "https://runbooks.example.com/value-error"}
    ).test_client()

    client.get("/orders/1")

    (event,) = pagerduty_events.triggers
    assert event["links"][0]["href"] == "https://runbooks.example.com/value-error"


def test_ignored_exceptions(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    client = make_app(PAGERDUTY_IGNORE_EXCEPTIONS=["builtins.ZeroDivisionError"]).test_client()

    client.get("/fail/zero")
    client.get("/fail/key")

    (event,) = pagerduty_events.triggers
    assert details(event)["exception_type"] == "KeyError"


# -- slow requests ---------------------------------------------------------------------------


def test_slow_request_is_one_warning(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    app = make_app()
    client = app.test_client()

    assert client.get("/slow").data == b"finally"
    assert client.get("/slow").status_code == 200

    (event,) = pagerduty_events.triggers  # the repeat is counted, not re-sent
    assert_valid_event(event.pop("_path"), event)
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["summary"] == (
        f"Slow request: GET /slow took {SLOW * 1000:.0f} ms (threshold {THRESHOLD_MS} ms)"
    )
    found = details(event)
    assert found["threshold_ms"] == THRESHOLD_MS
    assert found["duration_ms"] == SLOW * 1000
    (alert,) = get_state(app).alerts.active_alerts()
    assert alert.occurrences == 2


def test_the_threshold_is_where_a_request_becomes_slow(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app().test_client()

    assert client.get(f"/work/{THRESHOLD_MS - 1}").status_code == 200
    assert pagerduty_events.events == []

    assert client.get(f"/work/{THRESHOLD_MS + 1}").status_code == 200
    (event,) = pagerduty_events.triggers
    assert details(event)["route"] == "/work/<int:ms>"
    assert details(event)["duration_ms"] == THRESHOLD_MS + 1


def test_fast_requests_send_nothing(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    client = make_app().test_client()

    for _ in range(20):
        assert client.get("/").status_code == 200
    assert client.head("/").status_code == 200

    assert pagerduty_events.events == []


def test_slow_routes_and_excluded_paths(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app(
        PAGERDUTY_SLOW_ROUTES={"/slow": None}, PAGERDUTY_EXCLUDE_PATHS=["/async/*"]
    ).test_client()

    client.get("/slow")
    client.get("/async/slow")
    client.get("/stream", buffered=True)

    (event,) = pagerduty_events.triggers
    assert details(event)["route"] == "/stream"


def test_streaming_response_is_timed_to_its_last_chunk(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    # The view returns at once; the body takes SLOW to produce. Timing the view alone
    # (as an after_request hook would) would miss this slow request.
    client = make_app().test_client()

    response = client.get("/stream", buffered=True)

    assert response.data == b"first\nsecond\n"
    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"
    found = details(event)
    assert found["route"] == "/stream"
    assert found["duration_ms"] == SLOW * 1000  # all of it: timed to the last chunk


def test_head_of_a_streamed_response_is_timed(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app()

    response = app.test_client().head("/stream-fast", buffered=True)

    assert response.status_code == 200
    assert response.data == b""
    assert pagerduty_events.events == []


def test_work_after_the_response_is_not_counted(
    make_app: MakeApp, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    """Flask's "background task": call_on_close runs after the body was sent."""
    client = make_app().test_client()

    for url in ("/background", "/background-stream"):
        started = clock.now
        response = client.get(url, buffered=True)
        assert clock.now - started == CLOSE_TASK  # the task did run, on the monitor's clock
        assert response.data == b"queued"

    assert pagerduty_events.events == []


def test_error_while_streaming_is_an_unhandled_error(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app().test_client()

    with pytest.raises(RuntimeError, match="lost its cursor"):
        client.get("/stream-broken", buffered=True)

    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "critical"
    assert details(event)["exception_type"] == "RuntimeError"
    assert details(event)["route"] == "/stream-broken"


def test_client_going_away_mid_stream_ends_the_request(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app()

    response = app.test_client().get("/stream")  # not buffered: nothing read yet
    response.close()

    assert pagerduty_events.events == []


# -- async views ---------------------------------------------------------------------------


def test_async_views(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    pytest.importorskip("asgiref", reason="Flask runs async views through asgiref")
    client = make_app().test_client()

    assert client.get("/async/boom").status_code == 500
    assert client.get("/async/slow").data == b"async finally"

    error, slow = pagerduty_events.triggers
    assert details(error)["route"] == "/async/boom"
    assert details(error)["exception_type"] == "KeyError"
    assert slow["payload"]["severity"] == "warning"
    assert details(slow)["route"] == "/async/slow"


# -- never in the way ----------------------------------------------------------------------


def test_a_failing_alert_path_never_breaks_a_response(
    make_app: MakeApp, pagerduty_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    alerts = get_state(app).alerts

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("alerting is broken")

    monkeypatch.setattr(alerts, "alert", broken)
    client = app.test_client()

    assert client.get("/orders/1").status_code == 500
    assert client.get("/slow").data == b"finally"
    assert client.get("/stream", buffered=True).data == b"first\nsecond\n"
    assert pagerduty_events.events == []


def test_without_a_routing_key_the_app_works_and_nothing_is_sent(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pd_integrations.testing import capture_events

    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    with capture_events(set_routing_key=False) as captured:
        with caplog.at_level("WARNING", logger="pd_integrations.flask"):
            app = make_app()
        warnings = [r for r in caplog.records if r.name == "pd_integrations.flask"]
        assert len(warnings) == 1
        assert "no routing key" in warnings[0].getMessage()
        client = app.test_client()

        assert client.get("/").data == b"Hello, shop!"
        assert client.get("/orders/1").status_code == 500
        assert client.get("/slow").status_code == 200
        assert client.get("/health").status_code == 200

    assert not get_state(app).alerts.enabled
    assert captured.events == []


def test_logging_handler_does_not_repeat_the_extensions_alert(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    from pd_integrations.logging import PagerDutyHandler

    app = make_app()
    handler = PagerDutyHandler(alerts=get_state(app).alerts)
    app.logger.addHandler(handler)  # Flask logs "Exception on /orders/1 [GET]" there
    try:
        assert app.test_client().get("/orders/1").status_code == 500
    finally:
        app.logger.removeHandler(handler)

    (event,) = pagerduty_events.triggers
    assert details(event)["alert_type"] == "exception"


def test_a_bug_that_goes_on_after_a_resolve_in_pagerduty_pages_again(make_app: MakeApp) -> None:
    with Emulator(port=0) as emulator:
        app = make_app(
            PAGERDUTY_ROUTING_KEY=TEST_ROUTING_KEY,
            PAGERDUTY_EVENTS_BASE_URL=emulator.url,
            PAGERDUTY_REFRESH_AFTER=0.5,
        )
        client = app.test_client()
        assert get_state(app).alerts.refresh_after == 0.5
        assert client.get("/orders/1").status_code == 500
        assert wait_until(lambda: len(emulator.alerts()) == 1, 30)
        (first,) = emulator.alerts()
        # The responder resolves it in PagerDuty while the bug goes on.
        emulator.resolve(first["id"])

        def bug_happens_again() -> bool:
            assert client.get("/orders/2").status_code == 500
            return len(emulator.alerts(status="triggered")) == 1

        assert wait_until(bug_happens_again, 30)
        reopened = emulator.alerts(status="triggered")[0]
        assert reopened["id"] != first["id"]
        assert reopened["dedup_key"] == first["dedup_key"]
        assert [a["status"] for a in emulator.alerts()] == ["resolved", "triggered"]
        get_state(app).close(5)
