from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from pd_integrations import AlertManager, Scrubber
from pd_integrations.events import Link
from pd_integrations.fingerprint import DEFAULT_STACK_LIMIT, Fingerprinter
from pd_integrations.monitor import (
    RequestInfo,
    RequestMonitor,
    mark_reported,
    normalise_method,
    reported_key,
)
from pd_integrations.state import Alert, MemoryState, Raised
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents

from .clock import FakeClock
from .spec import assert_valid_event

WAIT = 30.0  # seconds a test waits for another thread: generous on a busy machine


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", dedup_key_prefix="prod", rate_limit=None)
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_monitor(alerts: AlertManager, clock: FakeClock) -> Callable[..., RequestMonitor]:
    def make(**kw: Any) -> RequestMonitor:
        kw.setdefault("environment", "prod")
        return RequestMonitor(alerts, clock=clock, **kw)

    return make


def request(route: str | None = "/items/{item_id}", method: str = "GET", **kw: Any) -> RequestInfo:
    kw.setdefault("path", "/items/42")
    return RequestInfo(method=method, route=route, **kw)


def fail(exc: BaseException) -> BaseException:
    """``exc`` with a real traceback, raised from a function named after nothing else."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def divide() -> BaseException:
    try:
        _ = 1 / 0
    except ZeroDivisionError as exc:
        return exc
    raise AssertionError


def lookup() -> BaseException:
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError as exc:
        return exc
    raise AssertionError


def details_of(event: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = event["payload"]["custom_details"]
    return details


# -- the fast path ------------------------------------------------------------------------


def test_a_fast_successful_request_builds_nothing(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(slow_request_ms=100, alert_on_handled_5xx=True)
    calls: list[int] = []

    def describe() -> RequestInfo:
        calls.append(1)
        return request()

    for status in (200, 201, 302, 404, 499):
        start = monitor.clock()
        clock.advance(0.05)
        assert monitor.request_finished(describe, status, start) is None
    assert calls == []
    assert pagerduty_events.events == []


@pytest.mark.parametrize(
    ("settings", "status_below", "seconds_below"),
    [
        ({}, 1000, float("inf")),
        ({"slow_request_ms": 250}, 1000, 0.25),
        ({"slow_request_ms": 250, "slow_routes": {"/export": 40}}, 1000, 0.04),
        ({"alert_on_handled_5xx": True}, 500, float("inf")),
    ],
)
def test_the_quiet_bounds_are_the_smallest_that_could_alert(
    make_monitor: Callable[..., RequestMonitor],
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
    settings: dict[str, Any],
    status_below: int,
    seconds_below: float,
) -> None:
    monitor = make_monitor(**settings)
    assert (monitor.quiet_status_below, monitor.quiet_seconds_below) == (
        status_below,
        seconds_below,
    )
    # Just past the bounds the monitor does alert: what adapters skip is what it skips.
    if seconds_below != float("inf"):
        start = monitor.clock()
        clock.advance(seconds_below * 1.0001)
        assert monitor.request_finished(lambda: request(route="/export"), 200, start) is not None
    if status_below == 500:
        assert monitor.request_finished(request, 500, monitor.clock()) is not None


def test_the_request_description_is_built_once_when_an_alert_fires(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(slow_request_ms=100)
    calls: list[int] = []

    def describe() -> RequestInfo:
        calls.append(1)
        return request()

    start = monitor.clock()
    clock.advance(0.5)
    assert monitor.request_finished(describe, 500, start, divide()) is not None
    assert calls == [1]


def test_the_default_clock_is_perf_counter(alerts: AlertManager) -> None:
    monitor = RequestMonitor(alerts)
    start = monitor.clock()
    assert isinstance(start, float)
    assert monitor.request_finished(request(), 200, start) is None


# -- exceptions ---------------------------------------------------------------------------


def test_an_unhandled_exception_raises_one_critical_alert(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor()
    info = request(
        method="post",
        route="/orders/{order_id}",
        path="/orders/981",
        headers=[
            (b"host", b"shop.example.com"),
            (b"user-agent", b"curl/8.0"),
            (b"x-request-id", b"req-123"),
            (b"authorization", b"Bearer secret-token"),
            (b"cookie", b"sessionid=abc"),
        ],
        client_ip="203.0.113.9",
    )
    key = monitor.exception(divide(), info, 500)
    assert key is not None
    assert key.startswith("prod:exception:")
    (event,) = pagerduty_events.triggers
    assert_valid_event(event.pop("_path"), event)
    assert event["dedup_key"] == key
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert (
        payload["summary"] == "[500] ZeroDivisionError: division by zero - POST /orders/{order_id}"
    )
    details = details_of(event)
    assert details["alert_type"] == "exception"
    assert details["exception_type"] == "ZeroDivisionError"
    assert details["exception_message"] == "division by zero"
    assert details["fingerprint"].startswith("ZeroDivisionError at tests.test_monitor:divide")
    assert details["stack"][-1].startswith("tests/test_monitor.py:")
    assert details["stack"][-1].endswith(" in divide")
    assert details["method"] == "POST"
    assert details["route"] == "/orders/{order_id}"
    assert "path" not in details  # the raw path carries ids; the route template is enough
    assert details["status"] == 500
    assert details["request_id"] == "req-123"
    assert details["user_agent"] == "curl/8.0"
    assert details["environment"] == "prod"
    assert details["headers"] == {"host": "shop.example.com"}
    assert "client_ip" not in details  # personal data: only when asked for


def test_severity_by_status(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(dedup_by="route")
    monitor.exception(divide(), request(route="/a"), 500)
    monitor.exception(divide(), request(route="/b"), 503)
    monitor.exception(divide(), request(route="/c"), 502)
    severities = {details_of(e)["route"]: e["payload"]["severity"] for e in pagerduty_events}
    assert severities == {"/a": "critical", "/b": "error", "/c": "error"}


def test_client_errors_never_alert(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    # Even a mapping that asks for it cannot turn a 4xx into a page.
    monitor = make_monitor(severity_for_status={404: "critical", 400: "error"})
    for status in (400, 401, 403, 404, 409, 422, 429, 499):
        assert monitor.exception(lookup(), request(), status) is None
        assert monitor.request_finished(request(), status, monitor.clock(), lookup()) is None
    assert monitor.severity_for(404) is None
    assert pagerduty_events.events == []


def test_severity_is_configurable(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    mapped = make_monitor(severity_for_status={503: "warning", 502: None}, dedup_by="route")
    assert mapped.severity_for(500) == "critical"  # not in the mapping: the default
    assert mapped.severity_for(503) == "warning"
    assert mapped.exception(divide(), request(route="/gw"), 502) is None
    mapped.exception(divide(), request(route="/busy"), 503)

    def rule(status: int) -> str | None:
        return "info" if status == 504 else None

    def broken(status: int) -> str:
        raise RuntimeError("bug in the rule")

    assert make_monitor(severity_for_status=broken).severity_for(500) == "critical"
    assert make_monitor(severity_for_status={"503": "error"}).severity_for(503) == "error"
    with pytest.raises(ValueError, match="severity"):
        make_monitor(severity_for_status={503: "fatal"})

    called = make_monitor(severity_for_status=rule)
    assert called.severity_for(504) == "info"
    assert called.exception(lookup(), request(), 500) is None
    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "warning"


def test_the_same_error_from_two_routes_is_one_alert(
    make_monitor: Callable[..., RequestMonitor],
    alerts: AlertManager,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = make_monitor()
    first = monitor.exception(divide(), request(route="/items/{item_id}", path="/items/1"))
    second = monitor.exception(divide(), request(route="/basket", path="/basket"))
    assert first == second
    assert len(pagerduty_events.triggers) == 1
    alert = alerts.get_alert(first or "")
    assert alert is not None
    assert alert.occurrences == 2


def test_two_errors_on_one_route_are_two_alerts(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor()
    first = monitor.exception(divide(), request())
    second = monitor.exception(lookup(), request())
    assert first != second
    assert [details_of(e)["exception_type"] for e in pagerduty_events.triggers] == [
        "ZeroDivisionError",
        "KeyError",
    ]


def test_dedup_by_route_keys_on_method_and_route(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(dedup_by="route", component="api")
    first = monitor.exception(divide(), request())
    second = monitor.exception(lookup(), request())
    other = monitor.exception(divide(), request(method="POST"))
    assert first == second == "prod:api:http_error:GET /items/{item_id}"
    assert other == "prod:api:http_error:POST /items/{item_id}"
    assert len(pagerduty_events.triggers) == 2
    assert "fingerprint" not in details_of(pagerduty_events.triggers[0])


def test_an_unmatched_request_shows_its_path(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(dedup_by="route")
    key = monitor.exception(divide(), RequestInfo(method="GET", path="/weird"))
    assert key == "prod:http_error:GET <unmatched>"
    details = details_of(pagerduty_events.triggers[0])
    assert details["path"] == "/weird"
    assert "route" not in details


def test_cancellation_and_ignored_exceptions_do_not_alert(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    class ClientGone(Exception):
        pass

    monitor = make_monitor(ignore_exceptions=[ClientGone])
    for exc in (asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), ClientGone()):
        assert monitor.exception(fail(exc), request()) is None
    assert pagerduty_events.events == []


def test_headers_asked_for_are_still_scrubbed(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(
        include_headers=["authorization", "x-tenant", "x-order-ref"],
        send_client_ip=True,
        scrubber=Scrubber(extra_keys=["order_ref"]),
    )
    info = request(
        headers={"Authorization": "Bearer abc.def", "X-Tenant": "acme", "X-Order-Ref": "o-1"},
        client_ip="203.0.113.9",
        request_id="given-id",
    )
    monitor.exception(
        fail(RuntimeError("GET https://api.example.com/v1?token=hunter2 failed")), info
    )
    (event,) = pagerduty_events.triggers
    details = details_of(event)
    assert details["headers"] == {
        "authorization": "[Filtered]",
        "x-tenant": "acme",
        "x-order-ref": "[Filtered]",
    }
    assert details["client_ip"] == "203.0.113.9"
    assert details["request_id"] == "given-id"
    assert "hunter2" not in str(event)


# -- reported once ------------------------------------------------------------------------


def test_an_exception_is_reported_once_whatever_the_path(
    make_monitor: Callable[..., RequestMonitor],
    alerts: AlertManager,
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = make_monitor(slow_request_ms=100, alert_on_handled_5xx=True)
    exc = divide()
    assert not monitor.already_reported(exc)
    key = monitor.exception(exc, request())  # e.g. a framework signal
    assert monitor.already_reported(exc)
    assert reported_key(exc) == key
    # Then the middleware sees the same exception, slow and with a 500: nothing more.
    start = monitor.clock()
    clock.advance(5)
    assert monitor.request_finished(request(), 500, start, exc) == key
    assert monitor.exception(exc, request()) == key
    assert len(pagerduty_events.triggers) == 1
    alert = alerts.get_alert(key or "")
    assert alert is not None
    assert alert.occurrences == 1


def test_an_exception_reported_elsewhere_is_recognised(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    exc = divide()
    mark_reported(exc, "logged:elsewhere")  # e.g. by the logging handler
    assert make_monitor().exception(exc, request()) == "logged:elsewhere"
    assert pagerduty_events.events == []


# -- handled 5xx --------------------------------------------------------------------------


def test_handled_5xx_alert_only_when_enabled(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    quiet = make_monitor()
    assert quiet.request_finished(request(), 503, quiet.clock()) is None
    assert pagerduty_events.events == []

    monitor = make_monitor(alert_on_handled_5xx=True)
    assert monitor.alert_on_handled_5xx
    key = monitor.request_finished(request(), 503, monitor.clock())
    assert key == "prod:http_error:GET /items/{item_id}"
    assert monitor.request_finished(request(), 503, monitor.clock()) == key
    (event,) = pagerduty_events.triggers
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["summary"] == "[503] response from GET /items/{item_id}"
    assert details_of(event)["status"] == 503


def test_an_excluded_path_returning_5xx_does_not_alert_but_its_exceptions_do(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(alert_on_handled_5xx=True)
    health = RequestInfo(method="GET", route="/healthz", path="/healthz")
    assert monitor.request_finished(health, 503, monitor.clock()) is None
    assert pagerduty_events.events == []
    key = monitor.request_finished(health, 500, monitor.clock(), divide())
    assert key is not None
    assert len(pagerduty_events.triggers) == 1


# -- slow requests ------------------------------------------------------------------------


def slow(
    monitor: RequestMonitor, clock: FakeClock, seconds: float, info: RequestInfo
) -> str | None:
    start = monitor.clock()
    clock.advance(seconds)
    return monitor.request_finished(info, 200, start)


def test_a_slow_request_raises_one_warning_per_route(
    make_monitor: Callable[..., RequestMonitor],
    alerts: AlertManager,
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = make_monitor(slow_request_ms=100)
    assert slow(monitor, clock, 0.099, request(route="/reports")) is None
    key = slow(monitor, clock, 0.250, request(route="/reports", headers={"x-request-id": "r1"}))
    assert key == "prod:slow_request:/reports"
    for _ in range(5):
        assert slow(monitor, clock, 0.3, request(route="/reports")) == key
    other = slow(monitor, clock, 0.3, request(route="/search", method="POST"))
    assert other == "prod:slow_request:/search"
    first, second = pagerduty_events.triggers
    assert_valid_event(first.pop("_path"), first)
    assert first["payload"]["severity"] == "warning"
    assert first["payload"]["summary"] == (
        "Slow request: GET /reports took 250 ms (threshold 100 ms)"
    )
    details = details_of(first)
    assert details["alert_type"] == "slow_request"
    assert details["duration_ms"] == 250.0
    assert details["threshold_ms"] == 100.0
    assert details["status"] == 200
    assert details["request_id"] == "r1"
    assert details_of(second)["method"] == "POST"
    alert = alerts.get_alert(key)
    assert alert is not None
    assert alert.occurrences == 6
    assert alert.auto_resolve


def test_per_route_thresholds(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(
        slow_request_ms=1000,
        slow_routes={"/export": 60_000, "POST /login": 50, "/stream": None},
    )
    assert monitor.slow_threshold("GET", "/export") == 60.0
    assert monitor.slow_threshold("post", "/login") == 0.05
    assert monitor.slow_threshold("GET", "/login") == 1.0
    assert monitor.slow_threshold("GET", "/stream") is None
    assert slow(monitor, clock, 5, request(route="/export")) is None
    assert slow(monitor, clock, 600, request(route="/stream")) is None
    assert slow(monitor, clock, 0.2, request(route="/login")) is None
    assert slow(monitor, clock, 0.2, request(route="/login", method="POST")) is not None
    assert slow(monitor, clock, 2, request(route="/other")) is not None
    assert [details_of(e)["route"] for e in pagerduty_events.triggers] == ["/login", "/other"]


def test_only_route_overrides(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(slow_routes={"/checkout": 500})
    assert slow(monitor, clock, 100, request(route="/elsewhere")) is None
    assert slow(monitor, clock, 1, request(route="/checkout")) is not None


def test_excluded_paths_never_raise_slow_alerts(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    default = make_monitor(slow_request_ms=100)
    assert slow(default, clock, 10, RequestInfo(route="/health", path="/health")) is None
    assert slow(default, clock, 10, RequestInfo(route=None, path="/healthz/")) is None

    monitor = make_monitor(slow_request_ms=100, exclude_paths=["/events/{channel}", "/static/*"])
    assert (
        slow(monitor, clock, 10, RequestInfo(route="/events/{channel}", path="/events/a")) is None
    )
    assert slow(monitor, clock, 10, RequestInfo(route=None, path="/static/app.js")) is None
    assert slow(monitor, clock, 10, RequestInfo(route="/health", path="/health")) is not None
    assert [details_of(e)["route"] for e in pagerduty_events.triggers] == ["/health"]


def test_excluded_routes_by_template(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(slow_request_ms=100, exclude_paths=["/events/{channel}"])
    info = RequestInfo(route="/events/{channel}", path="/events/a")
    assert monitor.is_excluded(info)
    assert slow(monitor, clock, 10, info) is None
    assert pagerduty_events.events == []


def test_a_slow_request_that_failed_pages_once(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(slow_request_ms=100)
    start = monitor.clock()
    clock.advance(3)
    key = monitor.request_finished(request(), 500, start, divide())
    assert key is not None
    assert key.startswith("prod:exception:")
    (event,) = pagerduty_events.triggers
    assert details_of(event)["duration_ms"] == 3000.0
    # A 4xx exception does not page, but the request was still slow.
    start = monitor.clock()
    clock.advance(3)
    assert monitor.request_finished(request(), 404, start, lookup()) == (
        "prod:slow_request:/items/{item_id}"
    )


# -- runbooks -----------------------------------------------------------------------------


def test_runbook_links_most_specific_first(
    make_monitor: Callable[..., RequestMonitor], clock: FakeClock, pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(
        slow_request_ms=100,
        runbooks={
            "ZeroDivisionError": "https://runbooks.example.com/math",
            "ArithmeticError": "https://runbooks.example.com/math",  # same URL: one link
            "/checkout": "https://runbooks.example.com/checkout",
            "slow_request": "https://runbooks.example.com/latency",
            "*": "https://runbooks.example.com/general",
        },
    )
    monitor.exception(divide(), request(route="/checkout", method="POST"))
    slow(monitor, clock, 1, request(route="/search"))
    error, latency = pagerduty_events.triggers
    assert [link["href"] for link in error["links"]] == [
        "https://runbooks.example.com/math",
        "https://runbooks.example.com/checkout",
        "https://runbooks.example.com/general",
    ]
    assert error["links"][0]["text"] == "Runbook (ZeroDivisionError)"
    assert [link["href"] for link in latency["links"]] == [
        "https://runbooks.example.com/latency",
        "https://runbooks.example.com/general",
    ]


def test_no_runbooks_no_links(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    make_monitor(runbooks={"KeyError": "https://runbooks.example.com/k"}).exception(
        divide(), request()
    )
    assert "links" not in pagerduty_events.triggers[0]


# -- the storm path: a repeat costs one state call and builds nothing ----------------------


class CountingState(MemoryState):
    """Memory state that records which calls the monitor made (each a round trip in Redis)."""

    def __init__(self) -> None:
        super().__init__(TEST_ROUTING_KEY)
        self.calls: list[str] = []

    def raise_alert(self, alert: Alert, ttl: float, refresh_after: float = 0.0) -> Raised:
        self.calls.append("raise_alert")
        return super().raise_alert(alert, ttl, refresh_after)

    def get_alert(self, dedup_key: str) -> Alert | None:
        self.calls.append("get_alert")
        return super().get_alert(dedup_key)


class CountingFingerprinter(Fingerprinter):
    """Counts the stacks built: one is built for each trigger's details, and only then."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__()
        self.stacks = 0
        self.broken = broken

    def stack(self, exc: BaseException, limit: int = DEFAULT_STACK_LIMIT) -> list[str]:
        self.stacks += 1
        if self.broken:
            raise RuntimeError("cannot format this stack")
        return super().stack(exc, limit)


@pytest.fixture
def state() -> CountingState:
    return CountingState()


@pytest.fixture
def counted_alerts(
    state: CountingState, pagerduty_events: CapturedEvents
) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", dedup_key_prefix="prod", rate_limit=None, state=state)
    try:
        yield manager
    finally:
        manager.close()


def test_a_repeated_error_makes_one_state_call_and_builds_no_details(
    counted_alerts: AlertManager,
    state: CountingState,
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up: list[tuple[str, ...]] = []
    find_links = RequestMonitor._links

    def counting_links(monitor: RequestMonitor, names: Iterable[str]) -> list[Link] | None:
        looked_up.append(tuple(names))
        return find_links(monitor, names)

    monkeypatch.setattr(RequestMonitor, "_links", counting_links)
    fingerprinter = CountingFingerprinter()
    monitor = RequestMonitor(
        counted_alerts,
        clock=clock,
        environment="prod",
        fingerprinter=fingerprinter,
        runbooks={"*": "https://runbooks.example.com/general"},
    )
    keys = {monitor.exception(divide(), request()) for _ in range(5)}
    assert len(keys) == 1
    assert state.calls == ["raise_alert"] * 5  # no "is it open?" look-up before each
    assert fingerprinter.stacks == 1
    assert len(looked_up) == 1
    (event,) = pagerduty_events.triggers
    assert details_of(event)["stack"][-1].endswith(" in divide")
    assert [link["href"] for link in event["links"]] == ["https://runbooks.example.com/general"]
    (key,) = keys
    alert = counted_alerts.get_alert(str(key))
    assert alert is not None
    assert alert.occurrences == 5


def test_repeated_5xx_and_slow_requests_make_one_state_call_each(
    counted_alerts: AlertManager,
    state: CountingState,
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = RequestMonitor(
        counted_alerts, clock=clock, slow_request_ms=100, alert_on_handled_5xx=True
    )
    for _ in range(3):
        start = monitor.clock()
        assert monitor.request_finished(request(), 503, start) is not None
        assert slow(monitor, clock, 1, request(route="/search")) is not None
    assert state.calls == ["raise_alert"] * 6
    handled, latency = pagerduty_events.triggers
    assert details_of(handled)["status"] == 503
    assert details_of(latency)["threshold_ms"] == 100.0


def test_an_error_that_comes_back_more_severe_is_sent_with_its_details(
    counted_alerts: AlertManager,
    state: CountingState,
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = RequestMonitor(counted_alerts, clock=clock, environment="prod")
    first = monitor.exception(divide(), request(), 503)
    assert monitor.exception(divide(), request(), 503) == first
    # Else the queue would merge the two triggers (as it should) when its sender is slow.
    assert counted_alerts.flush(10)
    assert monitor.exception(divide(), request(), 500) == first
    assert state.calls == ["raise_alert"] * 3
    error, critical = pagerduty_events.triggers
    assert error["payload"]["severity"] == "error"
    assert critical["payload"]["severity"] == "critical"
    details = details_of(critical)
    assert details["status"] == 500
    assert details["stack"][-1].endswith(" in divide")
    assert details["occurrences"] == 3


def test_details_that_cannot_be_built_still_send_the_trigger(
    counted_alerts: AlertManager,
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The state has recorded the alert as open by the time the details are read: without
    # its trigger, every recurrence would be suppressed and nobody would ever be paged.
    monitor = RequestMonitor(
        counted_alerts, clock=clock, fingerprinter=CountingFingerprinter(broken=True)
    )
    with caplog.at_level(logging.ERROR, logger="pd_integrations.monitor"):
        key = monitor.exception(divide(), request())
    assert key is not None
    (event,) = pagerduty_events.triggers
    assert event["dedup_key"] == key
    assert event["payload"]["summary"].startswith("[500] ZeroDivisionError")
    assert details_of(event) == {"alert_type": "exception"}
    assert "could not build the details of a PagerDuty alert" in caplog.text


# -- request methods: a client's text never multiplies incidents --------------------------

ODD_METHODS = [f"X{n}" for n in range(50)]


@pytest.mark.parametrize(
    ("method", "shown"),
    [
        ("GET", "GET"),
        ("post", "POST"),
        ("Patch", "PATCH"),
        ("CONNECT", "CONNECT"),
        ("?", "?"),
        ("X0", "OTHER"),
        ("PROPFIND", "OTHER"),
        ("get ", "OTHER"),
        ("G" * 100_000, "OTHER"),
        ("", "OTHER"),
        (None, "OTHER"),
        (b"GET", "OTHER"),
    ],
)
def test_a_method_is_standard_or_other(method: object, shown: str) -> None:
    assert normalise_method(method) == shown


def test_fifty_odd_methods_on_a_route_are_one_incident(
    make_monitor: Callable[..., RequestMonitor],
    alerts: AlertManager,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = make_monitor(dedup_by="route")
    keys = {monitor.exception(divide(), request(route="/pay", method=m)) for m in ODD_METHODS}
    assert keys == {"prod:http_error:OTHER /pay"}
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"] == "[500] ZeroDivisionError: division by zero - OTHER /pay"
    assert details_of(event)["method"] == "OTHER"
    alert = alerts.get_alert("prod:http_error:OTHER /pay")
    assert alert is not None
    assert alert.occurrences == len(ODD_METHODS)
    # A standard method is its own incident still.
    assert monitor.exception(divide(), request(route="/pay", method="post")) == (
        "prod:http_error:POST /pay"
    )


def test_fifty_odd_methods_answered_with_a_handled_5xx_are_one_incident(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    monitor = make_monitor(alert_on_handled_5xx=True)
    keys = {
        monitor.request_finished(RequestInfo(method=m, path=f"/{m}"), 503, monitor.clock())
        for m in ODD_METHODS
    }
    assert keys == {"prod:http_error:OTHER <unmatched>"}
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"] == "[503] response from OTHER <unmatched>"


def test_a_slow_request_with_an_odd_method_shows_other(
    make_monitor: Callable[..., RequestMonitor],
    clock: FakeClock,
    pagerduty_events: CapturedEvents,
) -> None:
    monitor = make_monitor(slow_request_ms=100, slow_routes={"OTHER /dav": 50})
    assert slow(monitor, clock, 0.07, request(route="/dav", method="PROPFIND")) is not None
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"].startswith("Slow request: OTHER /dav took 70 ms")
    assert details_of(event)["method"] == "OTHER"


# -- the exception's own text: user code, read once -------------------------------------


class CountedError(Exception):
    """Counts how often its text is read."""

    reads = 0

    def __str__(self) -> str:
        CountedError.reads += 1
        return "counted"


class _PoisonedText(str):
    """A str whose methods raise: what a hostile or buggy ``__str__`` may return."""

    def strip(self, chars: str | None = None) -> str:
        raise RuntimeError("strip is broken")

    def splitlines(self, keepends: bool = False) -> list[str]:
        raise RuntimeError("splitlines is broken")

    def __len__(self) -> int:
        raise RuntimeError("len is broken")


class PoisonedTextError(Exception):
    def __str__(self) -> str:
        return _PoisonedText("poisoned text")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_the_exception_text_is_read_once_per_alert(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    CountedError.reads = 0
    monitor = make_monitor()
    assert monitor.exception(fail(CountedError()), request()) is not None
    (event,) = pagerduty_events.triggers
    assert CountedError.reads == 1
    assert event["payload"]["summary"].startswith("[500] CountedError: counted - ")
    assert details_of(event)["exception_message"] == "counted"


def test_an_exception_whose_text_is_a_broken_str_still_pages(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    key = make_monitor().exception(fail(PoisonedTextError()), request())
    assert key is not None
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"].startswith("[500] PoisonedTextError: poisoned text - ")
    assert details_of(event)["exception_message"] == "poisoned text"


def test_an_exception_whose_str_raises_pages_with_a_placeholder(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    assert make_monitor().exception(fail(UnprintableError()), request()) is not None
    (event,) = pagerduty_events.triggers
    placeholder = "<UnprintableError: unprintable message>"
    assert event["payload"]["summary"].startswith(f"[500] UnprintableError: {placeholder} - ")
    assert details_of(event)["exception_message"] == placeholder


def test_a_slow_exception_text_stalls_no_other_alert(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    """``__str__`` runs outside every lock: a second thread alerts while the first waits."""
    reading = threading.Event()
    release = threading.Event()

    class SlowTextError(Exception):
        def __str__(self) -> str:
            reading.set()
            release.wait(WAIT)
            return "finally"

    monitor = make_monitor(dedup_by="route")
    stuck = threading.Thread(
        target=monitor.exception, args=(fail(SlowTextError()), request(route="/slow-text"))
    )
    stuck.start()
    try:
        assert reading.wait(WAIT)
        # The same route (one state entry) and another one: neither waits for the first.
        assert monitor.exception(divide(), request(route="/slow-text")) is not None
        assert monitor.exception(divide(), request(route="/other")) is not None
        assert stuck.is_alive()  # still inside __str__: nothing waited for it
    finally:
        release.set()
        stuck.join(WAIT)
    assert not stuck.is_alive()


# -- never raises -------------------------------------------------------------------------


def test_alerting_failures_never_reach_the_app(
    make_monitor: Callable[..., RequestMonitor],
    alerts: AlertManager,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = make_monitor(slow_request_ms=100)

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("alerting is broken")

    monkeypatch.setattr(alerts, "alert", broken)
    with caplog.at_level(logging.ERROR, logger="pd_integrations.monitor"):
        assert monitor.exception(divide(), request()) is None
        start = monitor.clock()
        clock.advance(1)
        assert monitor.request_finished(request(), 200, start) is None
    assert "could not raise a PagerDuty alert" in caplog.text


def test_a_broken_request_description_still_alerts(
    make_monitor: Callable[..., RequestMonitor], pagerduty_events: CapturedEvents
) -> None:
    def describe() -> RequestInfo:
        raise RuntimeError("request object is gone")

    assert make_monitor().exception(divide(), describe) is not None
    (event,) = pagerduty_events.triggers
    assert details_of(event)["exception_type"] == "ZeroDivisionError"


def test_configuration_is_checked(alerts: AlertManager) -> None:
    with pytest.raises(ValueError, match="dedup_by"):
        RequestMonitor(alerts, dedup_by="url")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slow_request_ms"):
        RequestMonitor(alerts, slow_request_ms=0)
    with pytest.raises(ValueError, match="slow_routes"):
        RequestMonitor(alerts, slow_routes={"/x": -1})


def test_environment_falls_back_to_app_env(
    alerts: AlertManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    assert RequestMonitor(alerts).environment == "staging"
    assert RequestMonitor(alerts, environment="prod").environment == "prod"
