"""The middleware changes nothing the client receives, and never waits for PagerDuty.

Responses are compared at the server interface itself (WSGI and ASGI handlers called
directly), with and without the middleware: status line, headers and body bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from django.test import override_settings

from pd_integrations.django import runtime
from pd_integrations.emulator import Emulator
from pd_integrations.testing import CapturedEvents

from .conftest import pagerduty
from .servers import call_asgi, call_wsgi

# Django's own warnings when a server kind meets the other kind of iterator; they are
# the same with and without the middleware.
pytestmark = pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume:Warning")

OURS = "pd_integrations.django.middleware.PagerDutyMiddleware"
EMULATOR_KEY = "djangoemulatortestroutingkey0001"

REQUESTS = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/orders/7/"),
    ("GET", "/orders/7/fail/"),
    ("HEAD", "/orders/7/fail/"),
    ("GET", "/missing/"),
    ("GET", "/status/503/"),
    ("GET", "/stream/"),
    ("HEAD", "/stream/"),
    ("GET", "/stream-async/"),
    ("GET", "/file/"),
    ("GET", "/async/"),
    ("GET", "/async/boom/"),
]


@pytest.fixture
def alerting(events: CapturedEvents) -> Iterator[CapturedEvents]:
    # Everything that can fire is on, so the watched side does all its work.
    with pagerduty(SLOW_REQUEST_MS=0.001, ALERT_ON_HANDLED_5XX=True):
        yield events


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_wsgi_responses_are_byte_identical(
    alerting: CapturedEvents, method: str, path: str
) -> None:
    with override_settings(MIDDLEWARE=[]):
        bare = call_wsgi(method, path)
    with override_settings(MIDDLEWARE=[OURS]):
        watched = call_wsgi(method, path)
    assert watched == bare
    assert alerting.triggers  # the middleware did watch these requests


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_asgi_responses_are_byte_identical(
    alerting: CapturedEvents, method: str, path: str
) -> None:
    with override_settings(MIDDLEWARE=[]):
        bare = asyncio.run(call_asgi(method, path))
    with override_settings(MIDDLEWARE=[OURS]):
        watched = asyncio.run(call_asgi(method, path))
    assert watched == bare
    assert alerting.triggers


# -- a slow or unreachable PagerDuty ------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, rate_limit_per_minute=None) as running:
        yield running


def _timed_error_request() -> float:
    started = time.perf_counter()
    status, _, _ = call_wsgi("GET", "/orders/1/fail/")
    elapsed = time.perf_counter() - started
    assert status.startswith("500")
    return elapsed


def test_a_slow_pagerduty_does_not_slow_error_responses(emulator: Emulator) -> None:
    emulator.set_faults(latency=2.0)
    with pagerduty(ROUTING_KEY=EMULATOR_KEY, EVENTS_BASE_URL=emulator.url):
        assert _timed_error_request() < 1.0
        assert call_wsgi("GET", "/boom/")[0].startswith("500")  # a second alert, queued
        alerts = runtime.current().alerts
        assert alerts is not None
        assert alerts.flush(10.0)
    # Delivered after all, once PagerDuty answered.
    assert len(emulator.wait_for_events(2, timeout=10.0)) == 2


def test_an_unreachable_pagerduty_does_not_slow_error_responses(emulator: Emulator) -> None:
    emulator.set_faults(outage=True, outage_mode="drop")
    with pagerduty(ROUTING_KEY=EMULATOR_KEY, EVENTS_BASE_URL=emulator.url):
        assert _timed_error_request() < 1.0
        assert call_wsgi("GET", "/")[2] == b"Hello, world"
        alerts = runtime.current().alerts
        assert alerts is not None
        alerts.close(timeout=0.1)  # give up on delivery: the outage outlasts the test
