from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pd_integrations import (
    Alert,
    AlertManager,
    ConfigurationError,
    Severity,
    TriggerEvent,
    UnknownAlertError,
    signals,
)
from pd_integrations.alerts import make_dedup_key
from pd_integrations.client import EventsClient
from pd_integrations.state import Alert as StoredAlert

from .spec import assert_valid_event
from .transport import FAST, ScriptedTransport, wait_until

KEY = "a1ertmanagertestroutingkey000001"


@pytest.fixture
def transport() -> ScriptedTransport:
    return ScriptedTransport()


@pytest.fixture
def manager(transport: ScriptedTransport) -> Iterator[AlertManager]:
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    with AlertManager(client=client, dedup_key_prefix="prod", rate_limit=None) as manager:
        yield manager


def sent(manager: AlertManager, transport: ScriptedTransport) -> list[dict[str, Any]]:
    assert manager.flush(10)
    for request in transport.requests:
        assert_valid_event(request.url.path, request.content)
    return transport.bodies


def test_dedup_keys_are_deterministic_and_readable() -> None:
    assert make_dedup_key("db_down", prefix="prod", component="db", identifier="primary") == (
        "prod:db:db_down:primary"
    )
    assert make_dedup_key("db_down") == "db_down"
    assert make_dedup_key("db_down", prefix="", component=None, identifier="") == "db_down"
    assert make_dedup_key("db_down", identifier="replica") == "db_down:replica"
    assert len(make_dedup_key("t", identifier="x" * 1000)) == 255
    assert make_dedup_key("t" * 255) == "t" * 255
    long_key = make_dedup_key("t" * 256)
    assert len(long_key) == 255
    assert long_key != make_dedup_key("t" * 257)
    with pytest.raises(ValueError, match="alert_type"):
        make_dedup_key("")
    with pytest.raises(TypeError):
        make_dedup_key(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make_dedup_key("t", identifier=5)  # type: ignore[arg-type]


def test_alert_returns_the_key_and_sends_one_trigger(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    key = manager.alert(
        "Database unreachable",
        Severity.CRITICAL,
        alert_type="db_down",
        component="db",
        identifier="primary",
        custom_details={"host": "db-1", "password": "hunter2"},
        links=[{"href": "https://runbooks.example.com/db", "text": "runbook"}],
    )
    assert key == "prod:db:db_down:primary"
    (body,) = sent(manager, transport)
    assert body["dedup_key"] == key
    assert body["payload"]["source"] == "web-1"
    assert body["payload"]["component"] == "db"
    details = body["payload"]["custom_details"]
    assert details["alert_type"] == "db_down"
    assert details["host"] == "db-1"
    assert details["password"] == "[Filtered]"
    assert body["links"] == [{"href": "https://runbooks.example.com/db", "text": "runbook"}]


def test_an_open_alert_is_not_sent_again(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    suppressed: list[int] = []

    def on_suppressed(sender: object, **kw: Any) -> None:
        suppressed.append(kw["occurrences"])

    signals.event_suppressed.connect(on_suppressed)
    try:
        for _ in range(50):
            key = manager.alert("Queue backed up", "error", alert_type="queue")
    finally:
        signals.event_suppressed.disconnect(on_suppressed)
    assert len(sent(manager, transport)) == 1
    alert = manager.get_alert(key)
    assert alert is not None
    assert alert.occurrences == 50
    assert suppressed[-1] == 50


def test_an_open_alert_is_read_with_utc_datetimes_and_unix_timestamps(
    manager: AlertManager,
) -> None:
    before = time.time()
    key = manager.alert("Disk full", "error", alert_type="disk", identifier="sda")
    manager.alert("Disk full", "error", alert_type="disk", identifier="sda")
    alert = manager.get_alert(key)
    assert isinstance(alert, Alert)
    assert Alert is StoredAlert  # one type: what the state stores is what callers read
    assert (alert.dedup_key, alert.summary, alert.severity) == (key, "Disk full", Severity.ERROR)
    assert (alert.alert_type, alert.component, alert.identifier) == ("disk", None, "sda")
    assert (alert.occurrences, alert.acknowledged, alert.auto_resolve) == (2, False, False)
    assert before <= alert.first_seen_timestamp <= alert.last_seen_timestamp <= time.time()
    assert alert.first_seen == datetime.fromtimestamp(alert.first_seen_timestamp, UTC)
    assert alert.last_seen == datetime.fromtimestamp(alert.last_seen_timestamp, UTC)
    assert alert.first_seen.tzinfo is UTC
    assert manager.active_alerts() == [alert]


def test_repeats_nobody_listens_for_are_counted_without_building_an_event(
    manager: AlertManager, transport: ScriptedTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not signals.event_suppressed.receivers
    built: list[str] = []
    build = AlertManager._trigger

    def counting_trigger(self: AlertManager, *args: Any, **kwargs: Any) -> TriggerEvent:
        built.append(args[0])
        return build(self, *args, **kwargs)

    monkeypatch.setattr(AlertManager, "_trigger", counting_trigger)
    for _ in range(100):
        key = manager.alert("Queue backed up", "error", alert_type="queue")
    assert built == ["Queue backed up"]
    assert len(sent(manager, transport)) == 1
    alert = manager.get_alert(key)
    assert alert is not None
    assert alert.occurrences == 100


def test_a_more_severe_repeat_is_sent(manager: AlertManager, transport: ScriptedTransport) -> None:
    manager.alert("Latency high", "warning", alert_type="latency")
    manager.alert("Latency high", "warning", alert_type="latency")
    assert manager.flush(10)  # else the queue would merge the two triggers, as it should
    manager.alert("Latency very high", "critical", alert_type="latency")
    manager.alert("Latency high", "warning", alert_type="latency")
    severities = [b["payload"]["severity"] for b in sent(manager, transport)]
    assert severities == ["warning", "critical"]
    (alert,) = manager.active_alerts()
    assert alert.severity is Severity.CRITICAL
    assert alert.occurrences == 4


def test_acknowledge_and_resolve(manager: AlertManager, transport: ScriptedTransport) -> None:
    key = manager.critical("Payments failing")
    manager.acknowledge(key)
    assert manager.get_alert(key).acknowledged  # type: ignore[union-attr]
    manager.resolve(key)
    assert manager.get_alert(key) is None
    actions = [b["event_action"] for b in sent(manager, transport)]
    assert actions == ["trigger", "acknowledge", "resolve"]
    # Raised again after resolve: a new trigger, as PagerDuty opens a new alert.
    manager.critical("Payments failing")
    assert [b["event_action"] for b in sent(manager, transport)][-1] == "trigger"


def test_acknowledge_of_an_unknown_key_is_a_clear_error(manager: AlertManager) -> None:
    with pytest.raises(UnknownAlertError, match="no open alert") as info:
        manager.acknowledge("nope")
    assert isinstance(info.value, KeyError)


def test_resolve_is_sent_even_for_unknown_keys(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    manager.resolve("from-a-previous-process")
    (body,) = sent(manager, transport)
    assert body == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": "from-a-previous-process",
    }


def test_convenience_methods_keep_distinct_problems_apart(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    a = manager.critical("Disk full")
    b = manager.critical("Disk full")
    c = manager.critical("CPU on fire")
    d = manager.error("Disk full")
    assert a == b
    assert len({a, c, d}) == 3
    bodies = sent(manager, transport)
    assert [x["payload"]["severity"] for x in bodies] == ["critical", "critical", "error"]
    assert manager.get_alert(d).auto_resolve  # type: ignore[union-attr]
    assert not manager.get_alert(a).auto_resolve  # type: ignore[union-attr]


def test_auto_resolve_after_the_alert_stops_recurring(transport: ScriptedTransport) -> None:
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    with AlertManager(client=client, auto_resolve_after=0.2, rate_limit=None) as manager:
        key = manager.warning("Cache cold")
        manager.critical("Not auto-resolved")
        assert wait_until(lambda: manager.get_alert(key) is None)
        assert manager.flush(10)
        actions = [(b["event_action"], b["dedup_key"]) for b in transport.bodies]
        assert ("resolve", key) in actions
        assert len(manager.active_alerts()) == 1


def test_recurrence_postpones_auto_resolve(transport: ScriptedTransport) -> None:
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    # Recurring for longer than the quiet period; each pause between recurrences is
    # 20 ms, so only a stall of a whole second on a loaded machine could resolve it early.
    with AlertManager(client=client, auto_resolve_after=1.0, rate_limit=None) as manager:
        key = manager.warning("Flapping")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            manager.warning("Flapping")
            assert manager.get_alert(key) is not None
            time.sleep(0.02)
        assert wait_until(lambda: manager.get_alert(key) is None)


def test_change_events(manager: AlertManager, transport: ScriptedTransport) -> None:
    manager.change("Deployed v1.2.3", custom_details={"sha": "abc123"})
    assert manager.flush(10)
    (request,) = transport.requests
    assert request.url.path == "/v2/change/enqueue"
    body = assert_valid_event(request.url.path, request.content)
    assert body["payload"]["summary"] == "Deployed v1.2.3"
    assert body["payload"]["timestamp"].endswith("Z")


def test_without_a_routing_key_it_stays_out_of_the_way(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    caplog.set_level(logging.WARNING, logger="pd_integrations")
    manager = AlertManager()
    assert not manager.enabled
    assert manager.critical("a")
    assert manager.critical("b")
    manager.resolve("x")
    assert manager.flush(1)
    warnings = [r for r in caplog.records if "disabled" in r.getMessage()]
    assert len(warnings) == 1
    assert manager.stats().sent == 0
    manager.close()


def test_a_malformed_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "not-a-real-key")
    with pytest.raises(ConfigurationError, match="malformed"):
        AlertManager.from_env()


def test_from_env_reads_the_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", KEY)
    monkeypatch.setenv("APP_NAME", "checkout")
    monkeypatch.setenv("APP_ENV", "staging")
    monkeypatch.setenv("APP_URL", "https://checkout.example.com")
    monkeypatch.setenv("PAGERDUTY_EVENTS_BASE_URL", "https://events.eu.pagerduty.com")
    manager = AlertManager.from_env(rate_limit=None)
    try:
        assert manager.enabled
        assert manager.source == "checkout"
        assert manager.dedup_key_prefix == "staging"
        assert manager.client_url == "https://checkout.example.com"
        assert manager.dispatcher is not None
        assert manager.dispatcher.client.base_url == "https://events.eu.pagerduty.com"
        assert KEY not in repr(manager)
    finally:
        manager.close(0)


def test_alert_never_waits_for_a_hanging_endpoint() -> None:
    gate = threading.Event()
    transport = ScriptedTransport(gate=gate)
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    manager = AlertManager(client=client, rate_limit=None)
    try:
        for i in range(100):
            manager.critical(f"problem {i}")  # would block forever if alert() waited
        assert transport.arrived.wait(10)
        started = time.monotonic()
        assert manager.flush(0.1) is False
        assert time.monotonic() - started < 5
    finally:
        gate.set()
        manager.close(10)


def test_invalid_arguments_raise_at_the_call_site(manager: AlertManager) -> None:
    with pytest.raises(ValueError, match="severity"):
        manager.alert("s", "fatal", alert_type="t")
    with pytest.raises(ValueError, match="summary"):
        manager.alert("", "error", alert_type="t")


def test_the_pytest_fixture_captures_alerts(pagerduty_events: Any) -> None:
    manager = AlertManager(source="fixture-test")
    try:
        key = manager.critical("Captured", {"order": 42})
        manager.resolve(key)
        manager.change("Deployed")
        (trigger,) = pagerduty_events.triggers
        assert trigger["dedup_key"] == key
        assert trigger["payload"]["custom_details"]["order"] == 42
        assert [r["dedup_key"] for r in pagerduty_events.resolves] == [key]
        assert pagerduty_events.changes[0]["payload"]["summary"] == "Deployed"
        for body in pagerduty_events.events:
            assert_valid_event(body.pop("_path"), body)
    finally:
        manager.close()


def test_alert_never_waits_for_a_refused_connection() -> None:
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manager = AlertManager(KEY, base_url=f"http://127.0.0.1:{port}", rate_limit=None)
    try:
        for i in range(100):
            manager.critical(f"problem {i}")
        started = time.monotonic()
        assert manager.flush(0.2) is False  # retrying: PagerDuty is unreachable
        assert time.monotonic() - started < 5
        assert wait_until(lambda: manager.stats().retried > 0)
        assert manager.stats().sent == 0
    finally:
        manager.close(0)


def test_a_trigger_pagerduty_refused_is_sent_again_when_the_problem_recurs(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    transport.script = [400]
    key = manager.alert("Queue stuck", "error", alert_type="queue_stuck")
    assert manager.flush(10)
    # PagerDuty never opened it: the manager must not suppress the next occurrence.
    assert manager.get_alert(key) is None
    manager.alert("Queue stuck", "error", alert_type="queue_stuck")
    bodies = sent(manager, transport)
    assert [body["event_action"] for body in bodies] == ["trigger", "trigger"]
    assert manager.get_alert(key) is not None


def test_a_lost_trigger_of_another_manager_leaves_this_one_alone(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    key = manager.alert("Queue stuck", "error", alert_type="queue_stuck")
    other_transport = ScriptedTransport([400])
    other_client = EventsClient(KEY, source="web-2", retry=FAST, transport=other_transport)
    with AlertManager(client=other_client, dedup_key_prefix="prod", rate_limit=None) as other:
        assert other.alert("Queue stuck", "error", alert_type="queue_stuck") == key
        assert other.flush(10)
        assert other.get_alert(key) is None
    assert manager.get_alert(key) is not None


def _refreshing(transport: ScriptedTransport, refresh_after: float | str) -> AlertManager:
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    return AlertManager(client=client, rate_limit=None, refresh_after=refresh_after)


def test_an_alert_that_keeps_occurring_is_sent_again_after_refresh_after(
    transport: ScriptedTransport,
) -> None:
    with _refreshing(transport, 0.2) as manager:
        key = manager.error("Queue consumer crashed", {"queue": "mail"})
        (first,) = sent(manager, transport)
        opened = time.time()

        def repeat_until_refreshed() -> bool:
            manager.error("Queue consumer crashed", {"queue": "mail"})
            manager.flush(10)
            return len(transport.bodies) >= 2

        assert wait_until(repeat_until_refreshed)
        refreshed = sent(manager, transport)[1]
    assert refreshed["event_action"] == "trigger"
    assert refreshed["dedup_key"] == first["dedup_key"] == key
    assert refreshed["payload"]["summary"] == first["payload"]["summary"]
    assert refreshed["payload"]["severity"] == "error"
    details = refreshed["payload"]["custom_details"]
    assert details["queue"] == "mail"
    assert details["occurrences"] >= 2
    last_seen = datetime.fromisoformat(details["last_seen"])
    assert last_seen.tzinfo is not None
    # Never earlier than the interval: the repeats before it were suppressed.
    assert last_seen.timestamp() >= opened + 0.2 - 0.05
    assert "occurrences" not in first["payload"]["custom_details"]


def test_a_refresh_keeps_the_worst_severity(transport: ScriptedTransport) -> None:
    with _refreshing(transport, 0.2) as manager:
        manager.alert("Latency high", "warning", alert_type="latency")
        assert manager.flush(10)  # else the queue would merge the two triggers
        manager.alert("Latency very high", "critical", alert_type="latency")
        assert manager.flush(10)

        def repeat_until_refreshed() -> bool:
            manager.alert("Latency high", "warning", alert_type="latency")
            manager.flush(10)
            return len(transport.bodies) >= 3

        assert wait_until(repeat_until_refreshed)
        severities = [b["payload"]["severity"] for b in sent(manager, transport)]
    assert severities[:3] == ["warning", "critical", "critical"]


def test_repeats_within_refresh_after_are_suppressed(transport: ScriptedTransport) -> None:
    # The default interval (300 s) is far longer than this test.
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    with AlertManager(client=client, rate_limit=None) as manager:
        assert manager.refresh_after == 300.0
        for _ in range(50):
            manager.error("Queue consumer crashed")
        assert len(sent(manager, transport)) == 1


@pytest.mark.parametrize(
    ("given", "env", "expected"),
    [
        (None, None, 300.0),
        (None, "60", 60.0),
        (None, "off", 0.0),
        (None, "0", 0.0),
        (12.5, "60", 12.5),
        (0, None, 0.0),
        ("off", "60", 0.0),
    ],
)
def test_refresh_after_comes_from_the_argument_else_the_environment(
    monkeypatch: pytest.MonkeyPatch, given: float | str | None, env: str | None, expected: float
) -> None:
    if env is None:
        monkeypatch.delenv("PAGERDUTY_REFRESH_AFTER", raising=False)
    else:
        monkeypatch.setenv("PAGERDUTY_REFRESH_AFTER", env)
    with AlertManager(None, refresh_after=given) as manager:
        assert manager.refresh_after == expected


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "soon", [5]])
def test_an_invalid_refresh_after_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, bad: Any
) -> None:
    with pytest.raises(ConfigurationError, match="refresh_after"):
        AlertManager(None, refresh_after=bad)
    monkeypatch.setenv("PAGERDUTY_REFRESH_AFTER", "soon")
    with pytest.raises(ConfigurationError, match="PAGERDUTY_REFRESH_AFTER"):
        AlertManager(None)


def test_refresh_off_never_sends_a_repeat_again(transport: ScriptedTransport) -> None:
    with _refreshing(transport, "off") as manager:
        assert manager.refresh_after == 0.0
        # An open alert that would be long due for a refresh, had it one.
        manager.error("Queue consumer crashed")
        alert = manager.active_alerts()[0]
        for _ in range(20):
            manager.error("Queue consumer crashed")
        assert len(sent(manager, transport)) == 1
        assert manager.get_alert(alert.dedup_key).occurrences == 21  # type: ignore[union-attr]


def test_marking_an_alert_resolved_lets_its_next_occurrence_trigger_at_once(
    manager: AlertManager, transport: ScriptedTransport
) -> None:
    key = manager.critical("Payments failing")
    assert manager.mark_acknowledged(key)
    assert manager.get_alert(key).acknowledged  # type: ignore[union-attr]
    manager.critical("Payments failing")
    assert len(sent(manager, transport)) == 1  # still open: suppressed
    assert manager.mark_resolved(key)
    assert manager.get_alert(key) is None
    assert not manager.mark_resolved(key)
    assert not manager.mark_acknowledged(key)
    # Nothing was sent for the marks (PagerDuty did it); the next occurrence triggers.
    manager.critical("Payments failing")
    assert [b["event_action"] for b in sent(manager, transport)] == ["trigger", "trigger"]


def test_a_forked_child_auto_resolves_its_own_alerts(transport: ScriptedTransport) -> None:
    client = EventsClient(KEY, source="web-1", retry=FAST, transport=transport)
    with AlertManager(client=client, auto_resolve_after=0.3, rate_limit=None) as manager:
        parent_key = manager.warning("Raised by the parent")  # its timer is the parent's
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            code = 1
            try:
                key = manager.warning("Raised by the child")
                # The parent's timer is due first: had the child inherited it, it would
                # have resolved the parent's alert before its own.
                if wait_until(lambda: manager.get_alert(key) is None, timeout=20):
                    manager.flush(10)
                    sent = [(b["event_action"], b["dedup_key"]) for b in transport.bodies]
                    if ("resolve", key) in sent and ("resolve", parent_key) not in sent:
                        code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert wait_until(lambda: not manager.active_alerts())
