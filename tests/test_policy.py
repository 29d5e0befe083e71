"""Alert policy in the core: before_send, routing rules, one manager per routing key."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from pd_integrations import AlertManager, signals
from pd_integrations.emulator import Emulator
from pd_integrations.events import TriggerEvent
from pd_integrations.health import HealthMonitor
from pd_integrations.policy import InvalidRule, parse_rules
from pd_integrations.routing import RoutingAlertManager
from pd_integrations.settings import load
from pd_integrations.settings.build import build_alerts
from pd_integrations.settings.report import settings_findings
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents
from tests.policy_hooks import PAYMENTS_KEY, SEARCH_KEY, broken, returns_text, tag_team
from tests.transport import wait_until


class PaymentError(RuntimeError):
    pass


class CardDeclinedError(PaymentError):
    pass


@pytest.fixture
def managers() -> Iterator[list[AlertManager]]:
    made: list[AlertManager] = []
    yield made
    for manager in made:
        manager.close(5)


def routed(managers: list[AlertManager], rules: Any, **options: Any) -> RoutingAlertManager:
    manager = RoutingAlertManager(rules=rules, rate_limit=None, **options)
    managers.append(manager)
    return manager


def plain(managers: list[AlertManager], **options: Any) -> AlertManager:
    manager = AlertManager(rate_limit=None, **options)
    managers.append(manager)
    return manager


# -- before_send ------------------------------------------------------------------------


def test_before_send_changes_the_trigger_and_sees_the_hint(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    seen: list[dict[str, Any]] = []

    def hook(event: TriggerEvent, hint: Any) -> TriggerEvent:
        seen.append(dict(hint))
        event.custom_details["team"] = "checkout"
        return replace(event, summary="[checkout] " + event.summary)

    manager = plain(managers, before_send=hook)
    error = PaymentError("card service down")
    key = manager.alert(
        "Payment failed", "critical", alert_type="payment", hint={"exception": error}
    )

    (event,) = pagerduty_events.triggers
    assert event["dedup_key"] == key
    assert event["payload"]["summary"] == "[checkout] Payment failed"
    assert event["payload"]["custom_details"]["team"] == "checkout"
    assert seen == [{"exception": error, "kind": "payment", "alert_type": "payment"}]


def test_before_send_returning_none_drops_counts_and_signals(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    calls: list[str] = []
    signalled: list[dict[str, Any]] = []

    def drop(event: TriggerEvent, hint: Any) -> None:
        calls.append(event.summary)

    def receiver(sender: object, **extra: Any) -> None:
        signalled.append(extra)

    manager = plain(managers, before_send=drop)
    with signals.event_suppressed_by_policy.connected_to(receiver):
        first = manager.alert("Noisy", "warning", alert_type="noise")
        second = manager.alert("Noisy", "warning", alert_type="noise")

    assert pagerduty_events.triggers == []
    assert first == second
    # Dropped alerts are not left open: the hook is asked again about the next one.
    assert calls == ["Noisy", "Noisy"]
    assert manager.active_alerts() == []
    assert manager.stats().suppressed_by_policy == 2
    assert [(s["dedup_key"], s["reason"]) for s in signalled] == [(first, "before_send")] * 2
    assert signalled[0]["event"].summary == "Noisy"


@pytest.mark.parametrize("hook", [broken, returns_text], ids=["raises", "returns-text"])
def test_a_failing_before_send_sends_the_original_and_logs_once(
    hook: Any,
    pagerduty_events: CapturedEvents,
    managers: list[AlertManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = plain(managers, before_send=hook)
    with caplog.at_level(logging.ERROR, logger="pd_integrations.policy"):
        manager.alert("Disk full", "critical", alert_type="disk", custom_details={"n": {"a": 1}})
        manager.alert("Queue stuck", "critical", alert_type="queue")

    triggers = pagerduty_events.triggers
    assert [t["payload"]["summary"] for t in triggers] == ["Disk full", "Queue stuck"]
    # The hook changed its copy before failing: the original is sent as it was.
    assert triggers[0]["payload"]["custom_details"] == {"alert_type": "disk", "n": {"a": 1}}
    records = [r for r in caplog.records if r.name == "pd_integrations.policy"]
    assert len(records) == 1
    assert hook.__name__ in records[0].getMessage()
    assert "the original event is sent" in records[0].getMessage()
    assert manager.stats().suppressed_by_policy == 0


def test_before_send_cannot_move_the_dedup_key(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    def rekey(event: TriggerEvent, hint: Any) -> TriggerEvent:
        return replace(event, dedup_key="elsewhere", summary="changed")

    manager = plain(managers, before_send=rekey)
    key = manager.alert("Original", "error", alert_type="x")

    (event,) = pagerduty_events.triggers
    assert (event["dedup_key"], event["payload"]["summary"]) == (key, "changed")


def test_before_send_by_dotted_path(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    manager = plain(managers, before_send="tests.policy_hooks.tag_team")
    manager.alert("Hello", "info", alert_type="greeting")
    (event,) = pagerduty_events.triggers
    assert event["payload"]["custom_details"]["team"] == "web"
    assert event["payload"]["custom_details"]["kind"] == "greeting"


def test_before_send_is_not_asked_about_suppressed_repeats(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    calls: list[str] = []

    def count(event: TriggerEvent, hint: Any) -> TriggerEvent:
        calls.append(event.summary)
        return event

    manager = plain(managers, before_send=count)
    for _ in range(5):
        manager.alert("Same", "error", alert_type="same")
    assert calls == ["Same"]
    assert len(pagerduty_events.triggers) == 1


# -- rules ------------------------------------------------------------------------------


def test_rules_ignore_by_exception_type_with_subclasses_and_by_module(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    manager = routed(
        managers,
        [
            {"match": {"exception": f"{__name__}.PaymentError"}, "ignore": True},
            {"match": {"exception_module": "json"}, "ignore": True},
            {"match": {"exception": "KeyError"}, "severity": "info"},
        ],
    )
    import json

    try:
        json.loads("{")
    except ValueError as error:
        decode_error = error
    manager.alert(
        "declined",
        "critical",
        identifier="declined",
        alert_type="exception",
        hint={"exception": CardDeclinedError()},
    )
    manager.alert(
        "decode",
        "critical",
        identifier="decode",
        alert_type="exception",
        hint={"exception": decode_error},
    )
    manager.alert(
        "key",
        "critical",
        identifier="key",
        alert_type="exception",
        hint={"exception": KeyError("k")},
    )
    manager.alert(
        "other",
        "critical",
        identifier="other",
        alert_type="exception",
        hint={"exception": ValueError()},
    )

    assert sorted(
        (t["payload"]["summary"], t["payload"]["severity"]) for t in pagerduty_events.triggers
    ) == [
        ("key", "info"),
        ("other", "critical"),
    ]
    assert manager.stats().suppressed_by_policy == 2


def test_rules_match_kind_name_status_severity_and_path_prefix(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    manager = routed(
        managers,
        [
            {"match": {"kind": "task", "name": "reports.nightly"}, "severity": "warning"},
            {"match": {"kind": "heartbeat"}, "routing_key": SEARCH_KEY},
            {"match": {"status": [502, 504]}, "severity": "error"},
            {"match": {"severity": "info"}, "ignore": True},
            {"match": {"path_prefix": "/payments"}, "routing_key": PAYMENTS_KEY},
        ],
    )
    manager.alert(
        "nightly",
        "critical",
        identifier="nightly",
        alert_type="task",
        hint={"kind": "task", "name": "reports.nightly"},
    )
    manager.alert(
        "hourly",
        "critical",
        identifier="hourly",
        alert_type="task",
        hint={"kind": "task", "name": "reports.hourly"},
    )
    manager.alert("missed", "error", alert_type="heartbeat", identifier="backup")
    manager.alert(
        "gateway", "critical", identifier="gateway", alert_type="http_error", hint={"status": 502}
    )
    manager.alert("fyi", "info", identifier="fyi", alert_type="note")
    manager.alert(
        "refund",
        "critical",
        identifier="refund",
        alert_type="exception",
        hint={"path": "/payments/refund"},
    )
    manager.alert(
        "lookalike",
        "critical",
        identifier="lookalike",
        alert_type="exception",
        hint={"path": "/paymentsx"},
    )

    sent = [
        (t["payload"]["summary"], t["payload"]["severity"], t["routing_key"])
        for t in pagerduty_events.triggers
    ]
    assert sorted(sent) == sorted(
        [
            ("nightly", "warning", TEST_ROUTING_KEY),
            ("hourly", "critical", TEST_ROUTING_KEY),
            ("missed", "error", SEARCH_KEY),
            ("gateway", "error", TEST_ROUTING_KEY),
            ("refund", "critical", PAYMENTS_KEY),
            ("lookalike", "critical", TEST_ROUTING_KEY),
        ]
    )


def test_a_health_check_routed_to_another_key_resolves_there(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    manager = routed(
        managers, [{"match": {"kind": "health", "name": "db"}, "routing_key": PAYMENTS_KEY}]
    )
    healthy = [False]
    health = HealthMonitor(manager, failure_threshold=1, recovery_threshold=1)
    health.register("db", lambda: healthy[0])

    health.run()
    healthy[0] = True
    health.run()

    (trigger,) = pagerduty_events.triggers
    (resolve,) = pagerduty_events.resolves
    assert trigger["routing_key"] == resolve["routing_key"] == PAYMENTS_KEY
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert manager.active_alerts() == []


def test_before_send_applies_to_routed_alerts_too(
    pagerduty_events: CapturedEvents, managers: list[AlertManager]
) -> None:
    manager = routed(
        managers,
        [{"match": {"kind": "slow_request"}, "routing_key": SEARCH_KEY}],
        before_send=tag_team,
    )
    manager.alert("slow", "warning", alert_type="slow_request", hint={"kind": "slow_request"})
    (event,) = pagerduty_events.triggers
    assert event["routing_key"] == SEARCH_KEY
    assert event["payload"]["custom_details"]["kind"] == "slow_request"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("nope", "must be a list of rules"),
        ([{"match": {"pathprefix": "/a"}, "ignore": True}], "did you mean 'path_prefix'"),
        ([{"match": {"kind": "crash"}, "ignore": True}], "match.kind must be one of"),
        ([{"match": {"status": 700}, "ignore": True}], "HTTP status code"),
        ([{"match": {"path_prefix": "pay"}, "ignore": True}], "must start with /"),
        ([{"match": {}}], "rule 1 does nothing"),
        ([{"ignore": True, "severity": "info"}], "cannot be combined"),
        ([{"severity": "loud"}], "critical, error, warning or info"),
        (
            [{"ignore": True}, {"routing_key": "short-secret-key"}],
            "rule 2: routing_key is malformed",
        ),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_message(rules: Any, message: str) -> None:
    with pytest.raises(InvalidRule, match=message.replace("(", r"\(")) as caught:
        parse_rules(rules)
    assert "short-secret-key" not in str(caught.value)


def test_rules_read_from_the_environment_build_one_manager_per_key(
    monkeypatch: pytest.MonkeyPatch, pagerduty_events: CapturedEvents
) -> None:
    monkeypatch.setenv(
        "PAGERDUTY_ROUTING_RULES",
        f'[{{"match": {{"route": "/search"}}, "routing_key": "{SEARCH_KEY}"}},'
        f' {{"MATCH": {{"KIND": "slow_request"}}, "SEVERITY": "info"}}]',
    )
    settings = load({}, origin="test", ref=lambda s: s.name)
    assert settings.errors == ()
    manager = build_alerts(settings)
    try:
        assert isinstance(manager, RoutingAlertManager)
        assert list(manager.routes) == [SEARCH_KEY]
        lines = [f"{f.mark} {f.name} {f.detail}" for f in settings_findings(settings)]
        assert any(
            line.startswith("OK   routing key 2") and SEARCH_KEY not in line and "rule 1" in line
            for line in lines
        ), lines
    finally:
        manager.close(5)


def test_an_invalid_rule_in_the_environment_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_RULES", '[{"match": {"kind": "crash"}, "ignore": true}]')
    settings = load({}, origin="test", ref=lambda s: s.name)
    (problem,) = settings.errors
    assert problem.code == "E041"
    assert "PAGERDUTY_ROUTING_RULES is invalid: rule 1: match.kind must be one of" in str(problem)
    assert any(f.ok is False and f.name == "routing_rules" for f in settings_findings(settings))


# -- separate budgets under a storm -----------------------------------------------------


def test_a_storm_on_one_key_does_not_delay_another(managers: list[AlertManager]) -> None:
    """Key A gets far more distinct alerts than its 120/min budget; key B still pages."""
    main = "stormmainroutingkey0000000000001"
    with Emulator(port=0, rate_limit_per_minute=120) as emulator:
        manager = RoutingAlertManager(
            main,
            rules=[{"match": {"route": "/search"}, "routing_key": SEARCH_KEY}],
            base_url=emulator.url,
            state_url="memory://",
        )
        managers.append(manager)
        for n in range(300):
            manager.alert(f"storm {n}", "error", alert_type="storm", identifier=str(n))
        # The storm is held back by A's budget (it never earns a 429)...
        assert wait_until(lambda: len(emulator.alerts(routing_key=main)) >= 100, timeout=60)
        assert manager.stats().queued > 0
        manager.alert(
            "search is down", "critical", alert_type="exception", hint={"route": "/search"}
        )
        # ...and B's alert is delivered while A's queue still waits for budget.
        assert wait_until(lambda: len(emulator.alerts(routing_key=SEARCH_KEY)) == 1, timeout=60)
        # The emulator records the alert before its 202 reaches the sender.
        assert wait_until(lambda: manager.routes[SEARCH_KEY].stats().sent == 1, timeout=60)
        assert manager.stats().queued > 0
        assert emulator.stats().get("answered_429", 0) == 0
