"""Alert policy through Flask's ``app.config`` and the environment, with the test client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from pd_integrations.errors import ConfigurationError
from pd_integrations.flask import PagerDuty
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents
from tests.policy_hooks import PAYMENTS_KEY, SEARCH_KEY

from .conftest import build_app

MakeApp = Callable[..., Flask]


def sent(events: CapturedEvents) -> list[tuple[str, str, str]]:
    return sorted(
        (t["payload"]["summary"].split(" - ")[0], t["payload"]["severity"], t["routing_key"])
        for t in events.triggers
    )


def test_rules_ignore_reroute_and_rerate_by_exception_kind_and_route(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app(
        PAGERDUTY_ALERT_ON_HANDLED_5XX=True,
        PAGERDUTY_ROUTING_RULES=[
            {"match": {"exception": "KeyError"}, "ignore": True},  # a LookupError subclass
            {"match": {"exception": "LookupError"}, "routing_key": PAYMENTS_KEY},
            {
                "match": {"exception_module": "builtins", "route": "/orders/<int:order_id>"},
                "severity": "warning",
            },
            {"match": {"kind": "slow_request", "path_prefix": "/slow"}, "severity": "info"},
            {"match": {"kind": "handled_5xx", "status": 503}, "routing_key": SEARCH_KEY},
        ],
    )
    client = app.test_client()

    assert client.get("/fail/key").status_code == 500
    assert client.get("/api/items/7").status_code == 500
    assert client.get("/orders/3").status_code == 500
    assert client.get("/fail/zero").status_code == 500
    assert client.get("/slow").status_code == 200
    assert client.get("/unavailable").status_code == 503

    assert sent(pagerduty_events) == sorted(
        [
            ("[500] LookupError: 7", "critical", PAYMENTS_KEY),
            ("[500] ValueError: order 3 has no line items", "warning", TEST_ROUTING_KEY),
            ("[500] ZeroDivisionError: division by zero", "critical", TEST_ROUTING_KEY),
            ("Slow request: GET /slow took 100 ms (threshold 50 ms)", "info", TEST_ROUTING_KEY),
            ("[503] response from GET /unavailable", "error", SEARCH_KEY),
        ]
    )
    alerts = app.extensions["pagerduty"].alerts
    assert alerts.stats().suppressed_by_policy == 1


def test_before_send_by_dotted_path_in_app_config(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    client = make_app(PAGERDUTY_BEFORE_SEND="tests.policy_hooks.tag_team").test_client()
    client.get("/slow")
    (event,) = pagerduty_events.triggers
    assert event["payload"]["custom_details"]["kind"] == "slow_request"
    assert event["payload"]["custom_details"]["team"] == "web"


def test_a_raising_before_send_still_delivers_the_original(
    make_app: MakeApp, pagerduty_events: CapturedEvents, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(PAGERDUTY_BEFORE_SEND="tests.policy_hooks.broken").test_client()
    client.get("/orders/1")
    client.get("/orders/2")  # the same bug: suppressed as a repeat, not sent again
    client.get("/fail/zero")
    triggers = pagerduty_events.triggers
    (logged,) = [r for r in caplog.records if r.name == "pd_integrations.policy"]
    assert "broken raised; the original event is sent" in logged.getMessage()
    assert len(triggers) == 2
    (event,) = [t for t in triggers if "ValueError" in t["payload"]["summary"]]
    assert event["payload"]["summary"].startswith("[500] ValueError: order 1")
    assert "half_done" not in event["payload"]["custom_details"]


def test_policy_settings_from_the_environment(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, pagerduty_events: CapturedEvents
) -> None:
    monkeypatch.setenv("PAGERDUTY_BEFORE_SEND", "tests.policy_hooks.drop_everything")
    monkeypatch.setenv(
        "PAGERDUTY_ROUTING_RULES",
        f'[{{"match": {{"kind": "exception"}}, "routing_key": "{SEARCH_KEY}"}}]',
    )
    app = make_app()
    app.test_client().get("/orders/1")
    assert pagerduty_events.triggers == []
    alerts = app.extensions["pagerduty"].alerts
    assert alerts.stats().suppressed_by_policy == 1
    assert list(alerts.routes) == [SEARCH_KEY]


def test_an_invalid_rule_fails_init_app_with_a_clear_error() -> None:
    app = build_app(PAGERDUTY_ROUTING_RULES=[{"routing_key": "not-a-key"}])
    with pytest.raises(ConfigurationError) as caught:
        PagerDuty(app)
    assert "PAGERDUTY_ROUTING_RULES is invalid: rule 1: routing_key is malformed" in str(
        caught.value
    )
    assert "not-a-key" not in str(caught.value)
