"""A slow or unreachable PagerDuty never slows an error response (the real emulator)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pd_integrations import AlertManager
from pd_integrations.emulator import Emulator

from .apps import FLAVOURS, Flavour

ROUTING_KEY = "starlettetestroutingkey000000001"
LATENCY = 2.0


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture
def alerts(emulator: Emulator) -> Iterator[AlertManager]:
    manager = AlertManager(ROUTING_KEY, base_url=emulator.url, rate_limit=None, timeout=5.0)
    try:
        yield manager
    finally:
        manager.close(timeout=0.1)


def timed_errors(client: TestClient, paths: list[str]) -> float:
    """The slowest of the error responses, in seconds."""
    slowest = 0.0
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        slowest = max(slowest, time.perf_counter() - started)
        assert response.status_code == 500
    return slowest


def test_errors_answer_at_once_while_pagerduty_takes_two_seconds(
    flavour: Flavour, emulator: Emulator, alerts: AlertManager
) -> None:
    client = TestClient(flavour.build(alerts=alerts), raise_server_exceptions=False)
    client.get(flavour.url("/hello"))  # the test client's own start-up is not the point

    slowest = timed_errors(client, [flavour.url("/boom/1"), flavour.url("/fail/a")])

    assert slowest < LATENCY / 2
    if flavour.name == "starlette":  # once is enough to show the alerts still arrive, late
        (event,) = emulator.wait_for_events(1, timeout=5 * LATENCY)
        assert event["type"] == "trigger"


def test_errors_answer_at_once_while_pagerduty_is_down(
    emulator: Emulator, alerts: AlertManager
) -> None:
    emulator.set_faults(latency=0.0, outage=True)
    flavour = FLAVOURS[0]
    client = TestClient(flavour.build(alerts=alerts), raise_server_exceptions=False)
    client.get(flavour.url("/hello"))

    slowest = timed_errors(client, [flavour.url(f"/boom/{n}") for n in range(3)])
    slowest = max(slowest, timed_errors(client, [flavour.url("/fail/b")]))

    assert slowest < LATENCY / 2
    emulator.wait_for_requests(1, timeout=5)  # it was tried, and failed, in the background
