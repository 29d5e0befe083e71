"""Parity with the seed templates this project grew from (issue item 7), in Django."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from pytest_django import Settings

from pd_integrations.testing import CapturedEvents

from .conftest import pagerduty
from .timing import use_fake_clock

JSON_ERRORS = "tests.django.urls_json_errors"


def test_express_style_error_handler_5xx_only_with_severity_by_status(
    events: CapturedEvents, client: Client
) -> None:
    """Express: alert on 5xx only, severity by status code, request details attached."""
    seen: dict[str, str] = {}
    for url, status in [("/status/500/", 500), ("/status/504/", 504), ("/status/404/", 404)]:
        events.clear()
        with pagerduty(ALERT_ON_HANDLED_5XX=True, DEDUP_BY="route"):
            assert client.get(url, HTTP_USER_AGENT="curl/8").status_code == status
            triggers = events.triggers
        if status < 500:
            assert triggers == []
            continue
        (event,) = triggers
        seen[url] = event["payload"]["severity"]
        info = event["payload"]["custom_details"]
        assert (info["method"], info["route"], info["status"]) == (
            "GET",
            "/status/<int:code>/",
            status,
        )
        assert info["user_agent"] == "curl/8"
    assert seen == {"/status/500/": "critical", "/status/504/": "error"}


@pytest.mark.urls(JSON_ERRORS)
def test_gin_style_recovery_a_crash_is_a_json_500_and_one_alert(
    events: CapturedEvents, client: Client
) -> None:
    """Gin's recovery: the panic becomes the app's own JSON 500, and one alert."""
    response = client.get("/orders/3/fail/")
    assert response.status_code == 500
    assert json.loads(response.content) == {"error": "internal server error"}
    (event,) = events.triggers
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["custom_details"]["exception_type"].endswith("OrderLookupError")


@pytest.mark.urls(JSON_ERRORS)
def test_gin_style_latency_alert_carries_the_status(
    events: CapturedEvents, client: Client, settings: Settings
) -> None:
    """Gin's latency middleware / FastAPI's slow-request middleware: a warning with the status."""
    settings.PAGERDUTY = {"SLOW_REQUEST_MS": 50}
    use_fake_clock()  # the view takes its 100 ms on it
    assert client.post("/created/").status_code == 201
    (event,) = events.triggers
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["summary"] == (
        "Slow request: POST /created/ took 100 ms (threshold 50 ms)"
    )
    assert event["payload"]["custom_details"]["status"] == 201
