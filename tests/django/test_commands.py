"""``manage.py pagerduty check|test|health`` through call_command."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from pd_integrations.emulator import Emulator
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents

from .conftest import pagerduty
from .health import Upstream

KEY = "commandsroutingkey00000000000001"
CHECKS = {"upstream": "tests.django.health.upstream", "cache": "tests.django.health.cache"}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pagerduty", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def fails(*args: str) -> tuple[int, str, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("pagerduty", *args, stdout=out, stderr=io.StringIO())
    return caught.value.returncode, str(caught.value), out.getvalue()


@pytest.fixture(autouse=True)
def upstream_up() -> Iterator[None]:
    Upstream.up = True
    yield
    Upstream.up = True


# -- check --------------------------------------------------------------------------------


def test_check_shows_the_settings_with_the_key_masked() -> None:
    with pagerduty(ROUTING_KEY=KEY, SLOW_REQUEST_MS=1500, HEALTH_CHECKS=CHECKS):
        output = run("check")
    assert KEY not in output
    assert "****0001 (from PAGERDUTY['ROUTING_KEY'])" in output
    assert "slow_request_ms" in output
    assert "1500.0" in output
    assert "No problems found." in output


def test_check_as_json() -> None:
    with pagerduty(ROUTING_KEY=KEY):
        report = json.loads(run("check", "--json"))
    assert report["ok"] is True
    assert report["messages"] == []
    assert report["settings"]["routing_key"] == "****0001"
    assert report["settings"]["enabled"] is True


def test_check_fails_on_problems() -> None:
    with pagerduty(ROUTING_KEY=KEY, DEDUP_BY="url"):
        code, message, output = fails("check")
    assert code == 1
    assert message == "1 problem(s) found"
    assert "pd_integrations.E004" in output


def test_check_fails_without_a_key_unless_silenced() -> None:
    code, _, output = fails("check", "--json")
    assert code == 1
    (message,) = json.loads(output)["messages"]
    assert message["id"] == "pd_integrations.W001"
    assert message["level"] == "warning"
    with override_settings(SILENCED_SYSTEM_CHECKS=["pd_integrations.W001"]):
        report = json.loads(run("check", "--json"))
    assert report["ok"] is True
    assert report["messages"][0]["silenced"] is True


# -- test ---------------------------------------------------------------------------------


def test_test_sends_a_test_alert_and_resolves_it(events: CapturedEvents) -> None:
    output = run("test")

    (trigger,) = events.triggers
    (resolve,) = events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert trigger["routing_key"] == TEST_ROUTING_KEY
    assert trigger["payload"]["severity"] == "info"
    assert trigger["payload"]["summary"] == (
        "Test alert from django-tests (manage.py pagerduty test)"
    )
    assert "PagerDuty accepted the test alert" in output
    assert trigger["dedup_key"] in output


def test_test_can_leave_the_alert_open(events: CapturedEvents) -> None:
    report = json.loads(run("test", "--keep-open", "--severity", "warning", "--json"))
    (trigger,) = events.triggers
    assert events.resolves == []
    assert trigger["payload"]["severity"] == "warning"
    assert report["ok"] is True
    assert report["resolved"] is False
    assert report["dedup_key"] == trigger["dedup_key"]
    assert report["stats"]["sent"] == 1


def test_test_needs_a_usable_key() -> None:
    code, message, _ = fails("test")
    assert code == 2
    assert "no PagerDuty routing key" in message
    with pagerduty(ROUTING_KEY="abc"):
        code, message, _ = fails("test")
    assert code == 2
    assert "malformed" in message


def test_test_delivers_to_the_configured_base_url() -> None:
    with Emulator(port=0) as emulator, pagerduty(ROUTING_KEY=KEY, EVENTS_BASE_URL=emulator.url):
        report = json.loads(run("test", "--json"))
        assert report["ok"] is True
        actions = [event["body"]["event_action"] for event in emulator.events()]
    assert actions == ["trigger", "resolve"]


def test_test_fails_when_pagerduty_refuses() -> None:
    with Emulator(port=0) as emulator, pagerduty(ROUTING_KEY=KEY, EVENTS_BASE_URL=emulator.url):
        emulator.set_faults(outage=True)
        code, message, _ = fails("test", "--timeout", "0.5")
    assert code == 1
    assert message.startswith("the test alert failed")


# -- health ------------------------------------------------------------------------------


def test_health_reports_and_exits_zero_when_healthy() -> None:
    with pagerduty(HEALTH_CHECKS=CHECKS):
        output = run("health")
    assert "upstream" in output
    assert "Overall: healthy" in output


def test_health_exits_one_when_unhealthy_and_never_pages(events: CapturedEvents) -> None:
    Upstream.up = False
    with pagerduty(HEALTH_CHECKS=CHECKS, HEALTH_FAILURE_THRESHOLD=1):
        code, message, output = fails("health")
        assert events.events == []
    assert code == 1
    assert message == "unhealthy: upstream"
    assert "Overall: unhealthy" in output


def test_health_as_json() -> None:
    with pagerduty(HEALTH_CHECKS=CHECKS):
        report: dict[str, Any] = json.loads(run("health", "--json"))
    assert report["status"] == "healthy"
    assert set(report["checks"]) == {"upstream", "cache"}


def test_health_without_checks() -> None:
    assert "No health checks configured" in run("health")


def test_health_with_a_malformed_key() -> None:
    with pagerduty(ROUTING_KEY="abc", HEALTH_CHECKS=CHECKS):
        code, _, _ = fails("health")
    assert code == 2


def test_an_unknown_action_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("pagerduty", "page-everyone")
