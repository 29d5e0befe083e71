"""Alert policy through the Starlette/FastAPI middleware's keywords and the environment."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from pd_integrations.errors import ConfigurationError
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents
from tests.clock import FakeClock
from tests.policy_hooks import PAYMENTS_KEY, SEARCH_KEY, tag_team

from .apps import FLAVOURS, Flavour

FASTAPI = FLAVOURS[0]
STARLETTE = FLAVOURS[1]


def client_for(flavour: Flavour, clock: FakeClock | None = None, **middleware: Any) -> TestClient:
    return TestClient(flavour.build(clock=clock, **middleware), raise_server_exceptions=False)


def sent(events: CapturedEvents) -> list[tuple[str, str, str]]:
    return sorted(
        (t["payload"]["summary"].split(" - ")[0], t["payload"]["severity"], t["routing_key"])
        for t in events.triggers
    )


def test_rules_ignore_reroute_and_rerate_by_exception_kind_and_route(
    flavour: Flavour, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    rules = [
        # Disaster is a RuntimeError: matched through its base class.
        {
            "match": {"exception": "RuntimeError", "path_prefix": flavour.url("/boom")},
            "ignore": True,
        },
        {"match": {"exception": "builtins.LookupError"}, "routing_key": PAYMENTS_KEY},
        {"match": {"kind": "slow_request", "route": flavour.route("/slow")}, "severity": "info"},
        {"match": {"kind": "handled_5xx", "status": 503}, "routing_key": SEARCH_KEY},
    ]
    client = client_for(
        flavour, clock, routing_rules=rules, slow_request_ms=50, alert_on_handled_5xx=True
    )

    assert client.get(flavour.url("/boom/1")).status_code == 500
    assert client.get(flavour.url("/fail/b")).status_code == 500
    assert client.get(flavour.url("/fail/a")).status_code == 500
    assert client.get(flavour.url("/slow")).status_code == 200
    assert client.get(flavour.url("/unavailable")).status_code == 503

    route = flavour.route
    assert sent(pagerduty_events) == sorted(
        [
            ("[500] LookupError: b went wrong", "critical", PAYMENTS_KEY),
            ("[500] ValueError: a went wrong", "critical", TEST_ROUTING_KEY),
            (
                f"Slow request: GET {route('/slow')} took 100 ms (threshold 50 ms)",
                "info",
                TEST_ROUTING_KEY,
            ),
            (f"[503] response from GET {route('/unavailable')}", "error", SEARCH_KEY),
        ]
    )


def test_before_send_keyword_sees_the_request_alert_kind(
    pagerduty_events: CapturedEvents,
) -> None:
    client = client_for(FASTAPI, before_send=tag_team)
    client.get(FASTAPI.url("/fail/a"))
    (event,) = pagerduty_events.triggers
    assert event["payload"]["custom_details"]["team"] == "web"
    assert event["payload"]["custom_details"]["kind"] == "exception"


def test_policy_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, pagerduty_events: CapturedEvents
) -> None:
    monkeypatch.setenv("PAGERDUTY_BEFORE_SEND", "tests.policy_hooks.shout")
    monkeypatch.setenv(
        "PAGERDUTY_ROUTING_RULES", '[{"match": {"exception": "ValueError"}, "ignore": true}]'
    )
    client = client_for(STARLETTE)
    client.get(STARLETTE.url("/fail/a"))
    client.get(STARLETTE.url("/fail/b"))
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"].startswith("[500] LOOKUPERROR: B WENT WRONG")


def test_an_invalid_rule_fails_the_lifespan_start_up_with_a_clear_error() -> None:
    app = STARLETTE.build(routing_rules=[{"match": {"kind": "crash"}, "ignore": True}])
    message = r"routing_rules is invalid: rule 1: match\.kind must be one of"
    with pytest.raises(ConfigurationError, match=message), TestClient(app):
        pass
