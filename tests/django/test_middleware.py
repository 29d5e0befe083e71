"""PagerDutyMiddleware through Django's real test clients (WSGI and ASGI)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from django.core.signals import request_finished
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings
from pytest_django import Settings

from pd_integrations.django import runtime
from pd_integrations.django.middleware import PagerDutyMiddleware
from pd_integrations.testing import CapturedEvents, capture_events
from tests.clock import FakeClock
from tests.spec import assert_valid_event

from .conftest import ROUTING_KEY, pagerduty
from .middleware import EXPLODE_PATH
from .timing import use_fake_clock

OURS = "pd_integrations.django.middleware.PagerDutyMiddleware"
INNER = "tests.django.middleware.InnerExplodingMiddleware"
OUTER = "tests.django.middleware.OuterExplodingMiddleware"


def details(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = event["payload"]["custom_details"]
    return result


# -- unhandled exceptions -----------------------------------------------------------------


def test_an_unhandled_error_raises_one_critical_alert_with_the_route_template(
    events: CapturedEvents, client: Client
) -> None:
    response = client.get(
        "/orders/42/fail/",
        HTTP_AUTHORIZATION="Bearer s3cr3t-token-value",
        HTTP_COOKIE="sessionid=abcdef",
        HTTP_X_REQUEST_ID="req-123",
        HTTP_USER_AGENT="pytest-agent/1.0",
    )

    assert response.status_code == 500
    (event,) = events.triggers
    assert_valid_event(event["_path"], {k: v for k, v in event.items() if k != "_path"})
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == (
        "[500] OrderLookupError: order 42 is gone - GET /orders/<int:pk>/fail/"
    )
    assert payload["source"] == "django-tests"
    info = details(event)
    assert info["route"] == "/orders/<int:pk>/fail/"
    assert "path" not in info  # the raw path (with its id) is not sent when a route matched
    assert info["method"] == "GET"
    assert info["status"] == 500
    assert info["request_id"] == "req-123"
    assert info["user_agent"] == "pytest-agent/1.0"
    assert info["exception_type"] == "tests.django.views.OrderLookupError"
    assert "tests.django.views:fail_order" in info["fingerprint"]
    text = json.dumps(event)
    assert "s3cr3t-token-value" not in text
    assert "abcdef" not in text


def test_the_same_error_on_two_urls_is_one_dedup_key(
    events: CapturedEvents, client: Client
) -> None:
    for url in ("/orders/1/fail/", "/orders/2/fail/", "/shop/orders/3/fail/"):
        assert client.get(url).status_code == 500

    (event,) = events.triggers  # the later ones only count occurrences
    alerts = runtime.current().alerts
    assert alerts is not None
    (alert,) = alerts.active_alerts()
    assert alert.dedup_key == event["dedup_key"]
    assert alert.occurrences == 3


def test_two_different_errors_on_one_url_are_two_dedup_keys(
    events: CapturedEvents, client: Client
) -> None:
    assert client.get("/boom/", {"kind": "zero"}).status_code == 500
    assert client.get("/boom/", {"kind": "key"}).status_code == 500

    first, second = events.triggers
    assert first["dedup_key"] != second["dedup_key"]
    assert {details(first)["exception_type"], details(second)["exception_type"]} == {
        "ZeroDivisionError",
        "KeyError",
    }
    assert details(first)["route"] == details(second)["route"] == "/boom/"


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/missing/", 404),
        ("/no/such/route/", 404),
        ("/forbidden/", 403),
        ("/suspicious/", 400),
        ("/bad-request/", 400),
        ("/status/429/", 429),
    ],
)
def test_client_errors_never_alert(
    events: CapturedEvents, client: Client, url: str, status: int
) -> None:
    with pagerduty(ALERT_ON_HANDLED_5XX=True):
        assert client.get(url).status_code == status
        assert events.events == []


def test_a_re_path_route_is_reported_without_its_anchors(
    events: CapturedEvents, client: Client
) -> None:
    assert client.get("/legacy/orders/7/fail/").status_code == 500

    (event,) = events.triggers
    assert details(event)["route"] == "/legacy/orders/(?P<pk>[0-9]+)/fail/"


def test_an_error_before_routing_reports_the_path(events: CapturedEvents, client: Client) -> None:
    assert client.get(EXPLODE_PATH).status_code == 500

    (event,) = events.triggers
    assert "route" not in details(event)
    assert details(event)["path"] == EXPLODE_PATH
    assert "<unmatched>" in event["payload"]["summary"]


def test_debug_propagate_exceptions_still_reports_once(
    events: CapturedEvents, client: Client, settings: Settings
) -> None:
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True
    with pytest.raises(LookupError):
        client.get("/orders/1/fail/")

    assert len(events.triggers) == 1


def test_ignored_exceptions_do_not_alert(events: CapturedEvents, client: Client) -> None:
    with pagerduty(IGNORE_EXCEPTIONS=["tests.django.views.OrderLookupError"]):
        assert client.get("/orders/1/fail/").status_code == 500
        assert client.get("/boom/").status_code == 500
        (event,) = events.triggers
        assert details(event)["exception_type"] == "KeyError"


# -- exceptions outside the view ------------------------------------------------------------


def _get(path: str, *, asgi: bool) -> int:
    if asgi:
        return asyncio.run(AsyncClient(raise_request_exception=False).get(path)).status_code
    return Client(raise_request_exception=False).get(path).status_code


@pytest.mark.parametrize(
    ("middleware", "message"),
    [
        ([OURS, INNER], "inner middleware failed"),
        ([OUTER, OURS], "outer middleware failed"),
        ([INNER, OURS], "inner middleware failed"),
    ],
    ids=["inner", "outer", "before-ours"],
)
@pytest.mark.parametrize("handled_5xx", [False, True], ids=["", "handled-5xx"])
@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_an_exception_in_another_middleware_is_alerted_once(
    events: CapturedEvents, middleware: list[str], message: str, handled_5xx: bool, asgi: bool
) -> None:
    with override_settings(MIDDLEWARE=middleware), pagerduty(ALERT_ON_HANDLED_5XX=handled_5xx):
        assert _get(EXPLODE_PATH, asgi=asgi) == 500
        (event,) = events.triggers
        assert details(event)["exception_message"] == message
        alerts = runtime.current().alerts
        assert alerts is not None
        assert [a.occurrences for a in alerts.active_alerts()] == [1]


def test_without_the_middleware_exceptions_still_alert(
    events: CapturedEvents, client: Client, settings: Settings
) -> None:
    settings.MIDDLEWARE = []
    assert client.get("/orders/5/fail/").status_code == 500
    (event,) = events.triggers
    assert details(event)["route"] == "/orders/<int:pk>/fail/"


# -- handled 5xx ------------------------------------------------------------------------------


def test_handled_5xx_responses_alert_only_when_asked(
    events: CapturedEvents, client: Client
) -> None:
    assert client.get("/status/503/").status_code == 503
    assert events.events == []

    severities: dict[int, str] = {}
    for status in (500, 503, 502):
        events.clear()
        with pagerduty(ALERT_ON_HANDLED_5XX=True, SEVERITY_FOR_STATUS={"502": "warning"}):
            assert client.get(f"/status/{status}/").status_code == status
            (event,) = events.triggers
            severities[status] = event["payload"]["severity"]
            assert event["dedup_key"] == "http_error:GET /status/<int:code>/"
            assert details(event)["status"] == status
    assert severities == {500: "critical", 503: "error", 502: "warning"}


def test_dedup_by_route_keys_on_method_and_route(events: CapturedEvents, client: Client) -> None:
    with pagerduty(DEDUP_BY="route"):
        client.get("/boom/", {"kind": "zero"})
        client.get("/boom/", {"kind": "key"})
        (event,) = events.triggers
    assert event["dedup_key"] == "http_error:GET /boom/"


def test_fifty_odd_methods_on_a_function_view_are_one_incident(
    events: CapturedEvents, client: Client
) -> None:
    # A function view accepts any method: the client's method names must not each open
    # an incident (and fill the queue ahead of real alerts).
    with pagerduty(DEDUP_BY="route", ALERT_ON_HANDLED_5XX=True):
        for n in range(50):
            assert client.generic(f"X{n}", "/status/503/").status_code == 503
            assert client.generic(f"X{n}", "/boom/").status_code == 500
        triggers = events.triggers
    # Two incidents; delivery may send them in either order (seen on a loaded machine).
    by_key = {event["dedup_key"]: event for event in triggers}
    assert len(triggers) == 2
    assert set(by_key) == {"http_error:OTHER /status/<int:code>/", "http_error:OTHER /boom/"}
    handled = by_key["http_error:OTHER /status/<int:code>/"]
    assert handled["payload"]["summary"] == "[503] response from OTHER /status/<int:code>/"
    assert details(by_key["http_error:OTHER /boom/"])["method"] == "OTHER"


# -- slow requests ------------------------------------------------------------------------------
# The monitor times these requests on a fake clock (see timing.py): the slow views take
# exactly their ?ms= on it, and every other request takes none, even on a busy machine.


def test_a_slow_request_raises_one_warning_per_route(
    events: CapturedEvents, client: Client
) -> None:
    with pagerduty(SLOW_REQUEST_MS=50):
        use_fake_clock()
        for _ in range(2):
            assert client.get("/slow/", {"ms": 100}).status_code == 200
        assert client.get("/orders/1/").status_code == 200
        (event,) = events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["dedup_key"] == "slow_request:/slow/"
    assert event["payload"]["summary"] == "Slow request: GET /slow/ took 100 ms (threshold 50 ms)"
    info = details(event)
    assert info["duration_ms"] == 100
    assert info["threshold_ms"] == 50
    assert info["status"] == 200


def test_slow_routes_and_excluded_paths(events: CapturedEvents, client: Client) -> None:
    with pagerduty(
        SLOW_REQUEST_MS=50,
        SLOW_ROUTES={"/slow/": None, "GET /async/slow/": 1000},
        EXCLUDE_PATHS=["/stream/"],
    ):
        use_fake_clock()
        assert client.get("/slow/", {"ms": 100}).status_code == 200
        assert client.get("/async/slow/", {"ms": 999}).status_code == 200
        assert client.get("/stream/", {"ms": 40}).getvalue() == b"first,second,third"
        assert events.events == []


def test_slow_request_alerts_are_off_by_default(events: CapturedEvents, client: Client) -> None:
    monitor = runtime.current().monitor
    assert monitor is not None
    assert monitor.slow_threshold("GET", "/slow/") is None
    use_fake_clock()
    assert client.get("/slow/", {"ms": 3_600_000}).status_code == 200  # an hour
    assert events.events == []


def test_the_threshold_from_the_environment(
    events: CapturedEvents, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_SLOW_REQUEST_MS", "50")
    runtime.reset()
    use_fake_clock()
    assert client.get("/slow/", {"ms": 49}).status_code == 200
    assert events.events == []
    assert client.get("/slow/", {"ms": 51}).status_code == 200
    (event,) = events.triggers
    assert details(event)["threshold_ms"] == 50
    assert details(event)["duration_ms"] == 51


def test_a_slow_error_raises_only_the_error_alert(events: CapturedEvents, client: Client) -> None:
    with pagerduty(SLOW_REQUEST_MS=50, ALERT_ON_HANDLED_5XX=True):
        clock = use_fake_clock()
        started = clock.now
        assert client.get("/orders/1/fail/", {"ms": 100}).status_code == 500
        assert clock.now - started == pytest.approx(0.1)  # it was slow, for the monitor
        (event,) = events.triggers
    assert event["payload"]["severity"] == "critical"
    assert event["dedup_key"].startswith("exception:")


# -- streaming and work after the response ------------------------------------------------------


def test_a_streaming_response_is_timed_until_its_last_chunk(
    events: CapturedEvents, client: Client
) -> None:
    with pagerduty(SLOW_REQUEST_MS=100):
        use_fake_clock()
        response = client.get("/stream/", {"ms": 40})
        assert events.events == []  # the view returned at once; nothing was sent yet
        assert response.getvalue() == b"first,second,third"
        (event,) = events.triggers
    assert event["dedup_key"] == "slow_request:/stream/"
    assert details(event)["duration_ms"] == 120  # all three chunks, the last one too


def test_an_async_streaming_response_is_timed_until_its_last_chunk(
    events: CapturedEvents, async_client: AsyncClient
) -> None:
    async def fetch() -> bytes:
        response = await async_client.get("/stream-async/", {"ms": 40})
        assert isinstance(response, StreamingHttpResponse)
        content = cast(AsyncIterator[bytes], response.streaming_content)
        return b"".join([chunk async for chunk in content])

    with pagerduty(SLOW_REQUEST_MS=100):
        use_fake_clock()
        assert asyncio.run(fetch()) == b"first,second,third"
        (event,) = events.triggers
    assert event["dedup_key"] == "slow_request:/stream-async/"
    assert details(event)["duration_ms"] == 120  # all three chunks, the last one too


def test_a_fast_stream_does_not_alert(events: CapturedEvents, client: Client) -> None:
    with pagerduty(SLOW_REQUEST_MS=500):
        use_fake_clock()
        # Three chunks of 166 ms: 498 ms in all, just under the threshold.
        assert client.get("/stream/", {"ms": 166}).getvalue() == b"first,second,third"
        assert events.events == []


def test_an_exception_inside_a_stream_alerts(events: CapturedEvents, client: Client) -> None:
    response = client.get("/stream-fail/")
    assert response.status_code == 200  # the headers were already on their way
    with pytest.raises(ValueError, match="row 2 is corrupt"):
        response.getvalue()

    (event,) = events.triggers
    assert event["payload"]["severity"] == "critical"
    assert details(event)["exception_message"] == "row 2 is corrupt"
    assert details(event)["route"] == "/stream-fail/"


def test_a_file_response_keeps_its_file_for_the_server(events: CapturedEvents) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    from .servers import start_response, wsgi_environ

    handler = WSGIHandler()
    environ = wsgi_environ("GET", "/file/")
    wrapped: list[object] = []

    def file_wrapper(filelike: object, block_size: int) -> list[bytes]:
        wrapped.append(filelike)
        return [b"sent by the server"]

    environ["wsgi.file_wrapper"] = file_wrapper
    body = handler(environ, start_response)
    assert list(body) == [b"sent by the server"]
    assert len(wrapped) == 1


def test_work_after_the_response_is_not_counted(events: CapturedEvents, client: Client) -> None:
    """Django has no response background tasks; work in request_finished is the analogue."""
    clock = FakeClock()
    this_thread = threading.get_ident()
    bumped_from: list[str] = []

    def after_response(**kwargs: object) -> None:
        # Only this test's request: a server thread left by another test may finish
        # requests of its own meanwhile, and must not move this test's clock.
        if threading.get_ident() == this_thread:
            clock.advance(3600)  # an hour of work after the response, on the monitor's clock
            bumped_from.append("".join(traceback.format_stack(limit=12)))

    # A test-client stream left half-read in a reference cycle closes itself, sending
    # request_finished in this thread, whenever the cyclic collector reaches it. Once
    # in CI the clock moved in the middle of this request, which only such a stray
    # signal explains: collect strays now and keep the collector out meanwhile.
    gc.collect()
    request_finished.connect(after_response)
    gc.disable()
    try:
        # A threshold no real request reaches on a loaded machine: only the work after
        # the response, were it counted, could cross it.
        with pagerduty(SLOW_REQUEST_MS=30_000):
            monitor = runtime.current().monitor
            assert monitor is not None
            monitor.clock = clock
            assert client.get("/orders/1/").status_code == 200
    finally:
        gc.enable()
        request_finished.disconnect(after_response)
    assert len(bumped_from) == 1, "\n---\n".join(bumped_from)  # the work ran, once
    assert events.events == []


# -- ASGI ---------------------------------------------------------------------------------------


def test_the_middleware_runs_natively_in_both_modes() -> None:
    def sync_view(request: object) -> Any:
        raise AssertionError

    async def async_view(request: object) -> Any:
        raise AssertionError

    assert not PagerDutyMiddleware(sync_view).is_async
    async_mw = PagerDutyMiddleware(async_view)
    assert async_mw.is_async
    assert asyncio.iscoroutinefunction(async_mw) or getattr(async_mw, "_is_coroutine", None)


def test_async_views_under_asgi(events: CapturedEvents, async_client: AsyncClient) -> None:
    async def requests() -> list[int]:
        return [
            (await async_client.get("/async/")).status_code,
            (await async_client.get("/async/boom/")).status_code,
            (await async_client.get("/orders/9/fail/")).status_code,
            (await async_client.get("/missing/")).status_code,
            (await async_client.get("/async/slow/", {"ms": 100})).status_code,
        ]

    # On the fake clock the quick requests take no time: at 50 ms on the real one, a
    # busy CI run once saw one of them cross the threshold.
    with pagerduty(SLOW_REQUEST_MS=50):
        use_fake_clock()
        assert asyncio.run(requests()) == [200, 500, 500, 404, 200]
        boom, order, slow = events.triggers
    assert details(boom)["route"] == "/async/boom/"
    assert details(boom)["exception_type"] == "ConnectionError"
    assert details(order)["route"] == "/orders/<int:pk>/fail/"
    assert slow["dedup_key"] == "slow_request:/async/slow/"
    assert details(slow)["duration_ms"] == 100


# -- without a usable routing key -----------------------------------------------------------------


@pytest.fixture
def no_key_capture() -> Iterator[CapturedEvents]:
    with capture_events(set_routing_key=False) as captured:
        runtime.reset()
        yield captured
        runtime.reset()


def test_without_a_routing_key_the_app_works_and_nothing_is_sent(
    no_key_capture: CapturedEvents, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pd_integrations"):
        assert client.get("/").content == b"Hello, world"
        assert client.get("/orders/1/fail/").status_code == 500
        assert client.get("/slow/", {"ms": 1}).status_code == 200

    assert no_key_capture.events == []
    assert runtime.current().monitor is None
    warnings = [r for r in caplog.records if "disabled" in r.getMessage()]
    assert len(warnings) == 1


def test_with_a_malformed_key_the_app_works_and_nothing_is_sent(
    no_key_capture: CapturedEvents, client: Client
) -> None:
    with pagerduty(ROUTING_KEY="not-a-routing-key"):
        assert client.get("/orders/1/fail/").status_code == 500
        assert client.get("/").status_code == 200
        assert runtime.current().alerts is None
    assert no_key_capture.events == []


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_first_requests_share_one_runtime(events: CapturedEvents) -> None:
    runtimes: list[runtime.Runtime] = []
    barrier = threading.Barrier(8)

    def first_request() -> None:
        barrier.wait()
        Client(raise_request_exception=False).get("/orders/1/fail/")
        runtimes.append(runtime.current())

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(r) for r in runtimes}) == 1
    assert len(events.triggers) == 1


def test_the_key_in_the_settings_is_used(events: CapturedEvents, client: Client) -> None:
    with pagerduty(ROUTING_KEY=ROUTING_KEY, ENVIRONMENT="staging", COMPONENT="shop"):
        client.get("/orders/1/fail/")
        (event,) = events.triggers
    assert event["routing_key"] == ROUTING_KEY
    assert event["dedup_key"].startswith("staging:shop:exception:")
    assert details(event)["environment"] == "staging"
    assert event["payload"]["component"] == "shop"
