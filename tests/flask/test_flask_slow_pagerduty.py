"""A slow or unreachable PagerDuty never slows the app's responses (real emulator)."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask

from pd_integrations.emulator import Emulator
from pd_integrations.flask import get_state
from pd_integrations.testing import TEST_ROUTING_KEY

LATENCY = 2.0
# Loose on purpose: the point is "not LATENCY", not a benchmark.
NOT_SLOWED = 1.0


def timed_error(app: Flask, url: str) -> float:
    started = time.perf_counter()
    response = app.test_client().get(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 500
    return elapsed


def test_error_responses_do_not_wait_for_a_slow_pagerduty(
    make_app: Callable[..., Flask],
) -> None:
    with Emulator(port=0, latency=LATENCY) as emulator:
        app = make_app(
            PAGERDUTY_ROUTING_KEY=TEST_ROUTING_KEY, PAGERDUTY_EVENTS_BASE_URL=emulator.url
        )

        assert timed_error(app, "/orders/1") < NOT_SLOWED
        emulator.wait_for_requests(1)  # the delivery is now stuck in the 2 s answer
        assert timed_error(app, "/fail/key") < NOT_SLOWED
        assert timed_error(app, "/fail/zero") < NOT_SLOWED

        # Delivered in the end, each error exactly once.
        emulator.set_faults(latency=0.0)
        assert get_state(app).alerts.flush(LATENCY + 10)
        summaries = sorted(alert["summary"].split(":")[0] for alert in emulator.alerts())
        assert summaries == ["[500] KeyError", "[500] ValueError", "[500] ZeroDivisionError"]


def test_error_responses_do_not_wait_for_pagerduty_that_is_down(
    make_app: Callable[..., Flask],
) -> None:
    with Emulator(port=0, outage=True, outage_mode="drop") as emulator:
        app = make_app(
            PAGERDUTY_ROUTING_KEY=TEST_ROUTING_KEY, PAGERDUTY_EVENTS_BASE_URL=emulator.url
        )

        assert timed_error(app, "/orders/1") < NOT_SLOWED
        emulator.wait_for_requests(1)
        assert timed_error(app, "/fail/key") < NOT_SLOWED

        emulator.clear_faults()
        assert get_state(app).alerts.flush(15.0)
        assert len(emulator.alerts()) == 2
