"""Alert policy through Django's ``PAGERDUTY`` settings, its test client and system checks."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import Client, override_settings

from pd_integrations.django import runtime
from pd_integrations.django.checks import TAG
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents
from tests.policy_hooks import PAYMENTS_KEY, SEARCH_KEY

from .conftest import pagerduty
from .timing import use_fake_clock

KEY = "policychecksroutingkey0000000001"


def sent(events: CapturedEvents) -> list[tuple[str, str, str]]:
    return sorted(
        (t["payload"]["summary"].split(" - ")[0], t["payload"]["severity"], t["routing_key"])
        for t in events.triggers
    )


def test_rules_ignore_reroute_and_rerate_by_exception_kind_and_route(
    events: CapturedEvents, client: Client
) -> None:
    rules = [
        {
            "MATCH": {"EXCEPTION": "tests.django.views.OrderLookupError"},
            "ROUTING_KEY": PAYMENTS_KEY,
        },
        {"MATCH": {"EXCEPTION": "ZeroDivisionError"}, "IGNORE": True},
        {"MATCH": {"ROUTE": "/boom/"}, "SEVERITY": "error"},
        {"MATCH": {"KIND": "slow_request", "PATH_PREFIX": "/slow"}, "SEVERITY": "info"},
        {"MATCH": {"KIND": "handled_5xx", "STATUS": [502, 503]}, "ROUTING_KEY": SEARCH_KEY},
    ]
    with pagerduty(ROUTING_RULES=rules, SLOW_REQUEST_MS=50, ALERT_ON_HANDLED_5XX=True):
        use_fake_clock()
        assert client.get("/orders/42/fail/").status_code == 500
        assert client.get("/boom/", {"kind": "zero"}).status_code == 500
        assert client.get("/boom/").status_code == 500
        assert client.get("/slow/", {"ms": 100}).status_code == 200
        assert client.get("/status/503/").status_code == 503
        assert client.get("/status/504/").status_code == 504
        assert runtime.current().alerts is not None
        suppressed = runtime.current().alerts.stats().suppressed_by_policy  # type: ignore[union-attr]
        found = sent(events)

    assert suppressed == 1
    assert found == sorted(
        [
            ("[500] OrderLookupError: order 42 is gone", "critical", PAYMENTS_KEY),
            ("[500] KeyError: 'missing'", "error", TEST_ROUTING_KEY),
            ("Slow request: GET /slow/ took 100 ms (threshold 50 ms)", "info", TEST_ROUTING_KEY),
            ("[503] response from GET /status/<int:code>/", "error", SEARCH_KEY),
            ("[504] response from GET /status/<int:code>/", "error", TEST_ROUTING_KEY),
        ]
    )


def test_before_send_by_dotted_path(events: CapturedEvents, client: Client) -> None:
    with pagerduty(BEFORE_SEND="tests.policy_hooks.tag_team"):
        client.get("/orders/1/fail/")
        (event,) = events.triggers
    assert event["payload"]["custom_details"]["team"] == "web"
    assert event["payload"]["custom_details"]["kind"] == "exception"


def test_a_before_send_returning_something_else_still_delivers_the_original(
    events: CapturedEvents, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with pagerduty(BEFORE_SEND="tests.policy_hooks.returns_text"):
        client.get("/orders/1/fail/")
        (event,) = events.triggers
    (logged,) = [r for r in caplog.records if r.name == "pd_integrations.policy"]
    assert "returns_text returned a str; the original event is sent" in logged.getMessage()
    assert event["payload"]["summary"].startswith("[500] OrderLookupError: order 1 is gone")


def test_policy_settings_from_the_environment(
    events: CapturedEvents, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_BEFORE_SEND", "tests.policy_hooks.shout")
    monkeypatch.setenv(
        "PAGERDUTY_ROUTING_RULES", '[{"match": {"route": "/boom/"}, "ignore": true}]'
    )
    runtime.reset()
    client.get("/boom/")
    client.get("/orders/5/fail/")
    (event,) = events.triggers
    assert event["payload"]["summary"].startswith("[500] ORDERLOOKUPERROR: ORDER 5 IS GONE")


@pytest.mark.parametrize(
    "pagerduty_settings",
    [
        {"ROUTING_KEY": KEY, "ROUTING_RULES": [{"match": {"kind": "crash"}, "ignore": True}]},
        {"ROUTING_KEY": KEY, "ROUTING_RULES": [{"routing_key": "short"}]},
        {"ROUTING_KEY": KEY, "ROUTING_RULES": "[{"},
    ],
    ids=["unknown-kind", "bad-key", "not-json"],
)
def test_invalid_rules_are_a_system_check_error(pagerduty_settings: dict[str, object]) -> None:
    with override_settings(PAGERDUTY=pagerduty_settings):
        messages = checks.run_checks(tags=[TAG])
    assert [m.id for m in messages] == ["pd_integrations.E041"]
    assert messages[0].level == checks.ERROR
    assert "ROUTING_RULES" in messages[0].msg


def test_a_before_send_that_cannot_be_imported_is_a_system_check_error() -> None:
    with override_settings(PAGERDUTY={"ROUTING_KEY": KEY, "BEFORE_SEND": "tests.nowhere.hook"}):
        (message,) = checks.run_checks(tags=[TAG])
    assert message.id == "pd_integrations.E040"
    assert "BEFORE_SEND'] must be a callable or the dotted path of one" in message.msg
