"""The health view: checks run, edge-triggered alerts, the report as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from django.test import AsyncClient, Client
from django.urls import reverse

from pd_integrations.django import runtime
from pd_integrations.testing import CapturedEvents, capture_events
from tests.transport import wait_until

from .conftest import pagerduty
from .health import Counted, Upstream

URL = "/healthz/"
CHECKS = {
    "upstream": "tests.django.health.upstream",
    "cache": {"CHECK": "tests.django.health.cache", "SEVERITY": "warning"},
}


@pytest.fixture(autouse=True)
def upstream_up() -> Iterator[None]:
    Upstream.up = True
    Counted.runs = 0
    yield
    Upstream.up = True


def body(response: object) -> dict[str, object]:
    result: dict[str, object] = json.loads(response.content)  # type: ignore[attr-defined]
    return result


def test_the_url_is_included_by_name() -> None:
    assert reverse("pagerduty:health") == URL


def test_a_failing_check_triggers_once_and_its_recovery_resolves(
    events: CapturedEvents, client: Client
) -> None:
    with pagerduty(HEALTH_CHECKS=CHECKS):
        assert client.get(URL).status_code == 200
        Upstream.up = False
        first = client.get(URL)
        assert first.status_code == 503
        assert events.events == []  # one failure is a blip (HEALTH_FAILURE_THRESHOLD=2)
        for _ in range(3):
            assert client.get(URL).status_code == 503
        (trigger,) = events.triggers
        assert trigger["dedup_key"] == "health_check:upstream"
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["summary"].startswith("Health check failed: upstream")

        Upstream.up = True
        assert client.get(URL).status_code == 200
        (resolve,) = events.resolves
        assert resolve["dedup_key"] == trigger["dedup_key"]


def test_the_report(client: Client) -> None:
    with pagerduty(HEALTH_CHECKS=CHECKS):
        Upstream.up = False
        response = client.get(URL)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    report = body(response)
    assert report["status"] == "unhealthy"
    assert report["checks"] == {
        "upstream": {
            "status": "unhealthy",
            "duration_ms": pytest.approx(0, abs=500),
            "alerting": False,
        },
        "cache": {"status": "healthy", "duration_ms": pytest.approx(0, abs=500), "alerting": False},
    }


def test_error_messages_are_shown_only_when_asked(client: Client) -> None:
    checks = {"db": "tests.django.health.broken"}
    with pagerduty(HEALTH_CHECKS=checks):
        hidden = body(client.get(URL))
    with pagerduty(HEALTH_CHECKS=checks, HEALTH_ERRORS=True):
        shown = body(client.get(URL))
    assert "error" not in hidden["checks"]["db"]  # type: ignore[index]
    assert shown["checks"]["db"]["error"] == (  # type: ignore[index]
        "ConnectionRefusedError: connection refused by db:5432"
    )


def test_a_failing_warning_check_is_degraded_but_serving(client: Client) -> None:
    with pagerduty(
        HEALTH_CHECKS={"cache": {"CHECK": "tests.django.health.upstream", "SEVERITY": "warning"}}
    ):
        Upstream.up = False
        response = client.get(URL)
    assert response.status_code == 200
    assert body(response)["status"] == "degraded"


def test_under_asgi(events: CapturedEvents, async_client: AsyncClient) -> None:
    async def probe() -> int:
        return (await async_client.get(URL)).status_code

    with pagerduty(HEALTH_CHECKS=CHECKS, HEALTH_FAILURE_THRESHOLD=1):
        Upstream.up = False
        assert asyncio.run(probe()) == 503
        assert len(events.triggers) == 1
        Upstream.up = True
        assert asyncio.run(probe()) == 200
        assert len(events.resolves) == 1


def test_without_checks_it_is_healthy(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    assert body(response)["status"] == "healthy"
    assert body(response)["checks"] == {}


def test_only_get_and_head(client: Client) -> None:
    assert client.head(URL).status_code == 200
    response = client.post(URL)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_slow_health_probes_are_not_slow_requests(events: CapturedEvents, client: Client) -> None:
    with pagerduty(SLOW_REQUEST_MS=0.001, HEALTH_CHECKS=CHECKS):
        assert client.get(URL).status_code == 200
        assert events.events == []


def test_with_an_interval_checks_run_in_the_background(
    events: CapturedEvents, client: Client
) -> None:
    Upstream.up = False
    with pagerduty(
        HEALTH_CHECKS={"upstream": "tests.django.health.counted"},
        HEALTH_INTERVAL=60,
        HEALTH_FAILURE_THRESHOLD=1,
    ):
        health = runtime.current().health
        assert health is not None
        assert health.running
        assert wait_until(lambda: bool(events.triggers), timeout=30)
        # The run stores its report just after raising the alert.
        assert wait_until(lambda: health.last_report is not None, timeout=30)
        assert len(events.triggers) == 1
        assert Counted.runs == 1  # the first run starts at once; the next is a minute away
        # The view serves the latest report instead of running the checks per probe.
        for _ in range(3):
            assert client.get(URL).status_code == 503
        assert Counted.runs == 1
    assert not health.running  # stopped when the settings changed


def test_without_a_routing_key_it_still_works(client: Client) -> None:
    with (
        capture_events(set_routing_key=False) as captured,
        pagerduty(HEALTH_CHECKS=CHECKS, HEALTH_FAILURE_THRESHOLD=1),
    ):
        Upstream.up = False
        assert client.get(URL).status_code == 503
        assert runtime.current().monitor is None
    assert captured.events == []


def test_a_malformed_key_makes_it_answer_503(client: Client) -> None:
    with pagerduty(ROUTING_KEY="wrong", HEALTH_CHECKS=CHECKS):
        response = client.get(URL)
    assert response.status_code == 503
    assert "manage.py check" in str(body(response)["error"])
