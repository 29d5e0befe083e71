from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from typing import Any

import httpx
import pytest

from pd_integrations import signals
from pd_integrations.client import EventsClient, RetryPolicy
from pd_integrations.delivery.dispatcher import Dispatcher, DropLog
from pd_integrations.delivery.ratelimit import RateBudget
from pd_integrations.events import ChangeEvent, ResolveEvent, TriggerEvent
from pd_integrations.scrub import Scrubber
from tests.clock import FakeClock
from tests.spec import assert_valid_event
from tests.transport import FAST, Answer, ScriptedTransport, trigger, wait_until

KEY = "d1spatchtestroutingkey0000000001"


def make(transport: ScriptedTransport, **kwargs: Any) -> Dispatcher:
    client = EventsClient(KEY, source="tests", retry=FAST, transport=transport)
    kwargs.setdefault("rate_limit", None)
    return Dispatcher(client, **kwargs)


def test_events_are_delivered_in_the_background() -> None:
    transport = ScriptedTransport()
    dispatcher = make(transport)
    assert dispatcher.submit(trigger("a"))
    assert dispatcher.submit(ResolveEvent("a"))
    assert dispatcher.submit(ChangeEvent("deployed"))
    assert dispatcher.flush(10)
    paths = [r.url.path for r in transport.requests]
    assert paths == ["/v2/enqueue", "/v2/enqueue", "/v2/change/enqueue"]
    for request in transport.requests:
        assert_valid_event(request.url.path, request.content)
    stats = dispatcher.stats()
    assert (stats.sent, stats.failed, stats.dropped, stats.queued) == (3, 0, 0, 0)
    dispatcher.close()


def test_a_trigger_without_key_gets_one_before_it_is_queued() -> None:
    transport = ScriptedTransport([503])
    dispatcher = make(transport)
    dispatcher.submit(TriggerEvent("s", "error", "h"))
    assert dispatcher.flush(10)
    keys = {body["dedup_key"] for body in transport.bodies}
    assert len(transport.bodies) == 2
    assert len(keys) == 1


def test_a_storm_of_identical_triggers_coalesces(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport)
    coalesced: list[int] = []

    def on_coalesced(sender: object, **kw: Any) -> None:
        coalesced.append(kw["occurrences"])

    signals.event_coalesced.connect(on_coalesced)
    try:
        dispatcher.submit(trigger("storm", summary="first"))
        assert transport.arrived.wait(10)  # the first one is in flight, blocked
        for i in range(500):
            dispatcher.submit(trigger("storm", summary=f"again {i}"))
    finally:
        signals.event_coalesced.disconnect(on_coalesced)
    gate.set()
    assert dispatcher.flush(10)
    bodies = transport.bodies
    assert len(bodies) == 2
    assert bodies[1]["payload"]["summary"] == "again 499"  # the latest payload wins
    assert bodies[1]["payload"]["custom_details"]["occurrences"] == 500
    assert dispatcher.stats().coalesced == 499
    assert coalesced[-1] == 500


def test_a_trigger_never_merges_back_across_a_resolve(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport)
    dispatcher.submit(trigger("blocker"))
    assert transport.arrived.wait(10)
    dispatcher.submit(trigger("k", summary="one"))
    dispatcher.submit(ResolveEvent("k"))
    dispatcher.submit(trigger("k", summary="two"))
    dispatcher.submit(trigger("k", summary="three"))
    gate.set()
    assert dispatcher.flush(10)
    actions = [(b["event_action"], b.get("payload", {}).get("summary")) for b in transport.bodies]
    assert actions == [
        ("trigger", "boom"),
        ("trigger", "one"),
        ("resolve", None),
        ("trigger", "three"),
    ]


def test_a_full_queue_drops_the_least_important_first(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, max_queue=3)
    dropped: list[tuple[str, str]] = []

    def on_dropped(sender: object, **kw: Any) -> None:
        dropped.append((kw["event"].dedup_key, kw["reason"]))

    signals.event_dropped.connect(on_dropped)
    try:
        dispatcher.submit(trigger("inflight"))
        assert transport.arrived.wait(10)
        assert dispatcher.submit(trigger("info", "info"))
        assert dispatcher.submit(trigger("warning", "warning"))
        assert dispatcher.submit(trigger("critical-1", "critical"))
        assert dispatcher.submit(trigger("critical-2", "critical"))  # evicts "info"
        assert not dispatcher.submit(trigger("info-2", "info"))  # nothing ranks lower
    finally:
        signals.event_dropped.disconnect(on_dropped)
    assert dropped == [("info", "queue-full"), ("info-2", "queue-full")]
    gate.set()
    assert dispatcher.flush(10)
    sent = [b["dedup_key"] for b in transport.bodies]
    # The most important first once the endpoint answers again, oldest first within a rank.
    assert sent == ["inflight", "critical-1", "critical-2", "warning"]
    assert dispatcher.stats().dropped == 2


def test_retryable_failures_are_retried_with_the_same_key() -> None:
    transport = ScriptedTransport([500, 429, httpx.ConnectError("refused"), 502])
    dispatcher = make(transport)
    dispatcher.submit(trigger("retry-me"))
    assert dispatcher.flush(10)
    assert [b["dedup_key"] for b in transport.bodies] == ["retry-me"] * 5
    stats = dispatcher.stats()
    assert (stats.sent, stats.retried, stats.failed) == (1, 4, 0)


def test_an_invalid_event_is_not_retried_and_is_signalled() -> None:
    transport = ScriptedTransport([400])
    dispatcher = make(transport)
    failures: list[Any] = []

    def on_failed(sender: object, **kw: Any) -> None:
        failures.append(kw["error"])

    signals.event_failed.connect(on_failed)
    try:
        dispatcher.submit(trigger("bad"))
        assert dispatcher.flush(10)
    finally:
        signals.event_failed.disconnect(on_failed)
    assert len(transport.requests) == 1
    assert dispatcher.stats().failed == 1
    assert failures[0].errors == ["'payload.summary' is missing"]


def test_retries_give_up_after_the_configured_time() -> None:
    transport = ScriptedTransport([503] * 10_000)
    dispatcher = make(transport, give_up_after=0.2)
    dispatcher.submit(trigger("down"))
    assert dispatcher.flush(10)
    stats = dispatcher.stats()
    assert stats.failed == 1
    assert stats.sent == 0
    assert stats.retried >= 1


def test_submit_never_waits_for_a_hanging_endpoint(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport)
    for i in range(200):
        dispatcher.submit(trigger(f"k{i}"))  # would deadlock here if submit waited
    assert transport.arrived.wait(10)
    started = time.monotonic()
    assert dispatcher.flush(0.2) is False
    # Loose bound: flush must give up on time, not after the endpoint answers.
    assert time.monotonic() - started < 5
    assert dispatcher.stats().queued == 200
    gate.set()
    assert dispatcher.flush(10)


def test_the_rate_budget_holds_events_back() -> None:
    now = [1000.0]
    budget = RateBudget(3, clock=lambda: now[0])
    transport = ScriptedTransport()
    dispatcher = make(transport, budget=budget)
    for i in range(5):
        dispatcher.submit(trigger(f"k{i}"))
    assert wait_until(lambda: len(transport.requests) == 3)
    assert dispatcher.flush(0.3) is False
    assert len(transport.requests) == 3
    now[0] += 60
    assert dispatcher.flush(10)
    assert len(transport.requests) == 5


def test_rate_budget_sliding_window() -> None:
    now = [0.0]
    budget = RateBudget(2, clock=lambda: now[0])
    assert budget.try_acquire() == 0
    now[0] = 10
    assert budget.try_acquire() == 0
    assert budget.try_acquire() == pytest.approx(50)
    now[0] = 60
    assert budget.try_acquire() == 0
    assert budget.try_acquire() == pytest.approx(10)
    with pytest.raises(ValueError, match="at least one"):
        RateBudget(0)


def test_close_reports_what_could_not_be_sent(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport)
    dispatcher.submit(trigger("inflight"))
    assert transport.arrived.wait(10)
    dispatcher.submit(trigger("left-behind"))
    assert dispatcher.close(timeout=0.1) is False
    assert dispatcher.stats().dropped == 1
    assert dispatcher.submit(trigger("after-close")) is False
    assert dispatcher.stats().dropped == 2


def test_submit_never_raises_even_when_a_receiver_does(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, max_queue=1)

    def broken(sender: object, **kw: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.event_dropped.connect(broken)
    try:
        dispatcher.submit(trigger("a"))
        assert transport.arrived.wait(10)
        dispatcher.submit(trigger("b"))
        assert dispatcher.submit(trigger("c", "info")) is False
    finally:
        signals.event_dropped.disconnect(broken)
        gate.set()
        dispatcher.close(10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_fresh_worker_and_the_parent_keeps_sending(
    gate: threading.Event,
) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport)
    dispatcher.submit(trigger("parent-1"))
    assert transport.arrived.wait(10)
    dispatcher.submit(trigger("parent-2"))  # pending in the parent at fork time
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            gate.set()  # the child's copy of the gate; the parent's stays closed
            child_stats = dispatcher.stats()
            dispatcher.submit(trigger("child"))
            ok = dispatcher.flush(10)
            sent = [b["dedup_key"] for b in transport.bodies]
            code = 0 if ok and child_stats.queued == 0 and sent[-1:] == ["child"] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    gate.set()
    dispatcher.submit(trigger("parent-3"))
    assert dispatcher.flush(10)
    assert [b["dedup_key"] for b in transport.bodies] == ["parent-1", "parent-2", "parent-3"]


def test_sent_and_retried_signals_carry_the_event_and_the_answer() -> None:
    transport = ScriptedTransport([503])
    dispatcher = make(transport)
    seen: list[tuple[str, Any]] = []

    def on_sent(sender: object, **kw: Any) -> None:
        seen.append(("sent", kw["response"].dedup_key))

    def on_retried(sender: object, **kw: Any) -> None:
        seen.append(("retried", kw["error"].status_code))

    signals.event_sent.connect(on_sent)
    signals.event_retried.connect(on_retried)
    try:
        dispatcher.submit(trigger("signalled"))
        assert dispatcher.flush(10)
    finally:
        signals.event_sent.disconnect(on_sent)
        signals.event_retried.disconnect(on_retried)
    assert seen == [("retried", 503), ("sent", "signalled")]


# -- drop logging: one line now and then, however many are dropped -------------------------


def drop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pd_integrations.dispatch" and "dropped" in r.getMessage()
    ]


def test_the_first_drop_warns_at_once_and_later_ones_are_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(500.0)
    log = DropLog(10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="pd_integrations.dispatch"):
        log.dropped("trigger", "queue-full", 1)
        assert drop_lines(caplog) == [
            "dropped a PagerDuty trigger event (queue-full); 1 dropped so far; "
            "more drops are summarised every 10 s"
        ]
        for total in range(2, 502):
            clock.now += 0.01
            log.dropped("trigger", "queue-full", total)
        assert len(drop_lines(caplog)) == 1  # 500 drops within the interval: no new line
        clock.now = 510.0
        log.dropped("resolve", "shutdown", 502)
        assert drop_lines(caplog)[1:] == [
            "dropped 501 more PagerDuty event(s) in the last 10 s "
            "(queue-full: 500, shutdown: 1); 502 dropped so far"
        ]
        # After a quiet interval, a drop is news again: it warns on its own at once.
        clock.now = 600.0
        log.dropped("trigger", "closed", 503)
        assert drop_lines(caplog)[2:] == [
            "dropped a PagerDuty trigger event (closed); 503 dropped so far; "
            "more drops are summarised every 10 s"
        ]
        log.flush(503)
        assert len(drop_lines(caplog)) == 3  # nothing counted since: nothing to say
        clock.now = 603.0
        log.dropped("trigger", "queue-full", 504)
        log.dropped("trigger", "queue-full", 505)
        log.flush(505)
        assert drop_lines(caplog)[3:] == [
            "dropped 2 more PagerDuty event(s) in the last 3 s (queue-full: 2); 505 dropped so far"
        ]


def test_a_zero_interval_warns_for_every_drop(caplog: pytest.LogCaptureFixture) -> None:
    log = DropLog(0, clock=FakeClock(500.0))
    with caplog.at_level(logging.WARNING, logger="pd_integrations.dispatch"):
        for total in range(1, 4):
            log.dropped("trigger", "queue-full", total)
    assert drop_lines(caplog) == [
        f"dropped a PagerDuty trigger event (queue-full); {n} dropped so far" for n in (1, 2, 3)
    ]


@pytest.mark.parametrize("interval", [-1, float("nan"), "10", True])
def test_the_drop_log_interval_is_checked(interval: Any) -> None:
    with pytest.raises(ValueError, match="drop_log_interval"):
        DropLog(interval)
    with pytest.raises(ValueError, match="drop_log_interval"):
        make(ScriptedTransport(), drop_log_interval=interval)


def test_a_storm_of_drops_logs_two_lines_and_signals_every_one(
    gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, max_queue=1, drop_log_interval=3600)
    signalled: list[str] = []

    def on_dropped(sender: object, **kw: Any) -> None:
        if sender is dispatcher:
            signalled.append(kw["reason"])

    signals.event_dropped.connect(on_dropped)
    try:
        with caplog.at_level(logging.WARNING, logger="pd_integrations.dispatch"):
            dispatcher.submit(trigger("inflight"))
            assert transport.arrived.wait(10)
            assert dispatcher.submit(trigger("queued"))
            for i in range(200):
                assert not dispatcher.submit(trigger(f"info-{i}", "info"))
            assert len(drop_lines(caplog)) == 1
            assert signalled == ["queue-full"] * 200
            assert dispatcher.stats().dropped == 200
            gate.set()
            assert dispatcher.close(10)
    finally:
        signals.event_dropped.disconnect(on_dropped)
    first, summary = drop_lines(caplog)
    assert first.startswith("dropped a PagerDuty trigger event (queue-full); 1 dropped so far")
    assert re.fullmatch(
        r"dropped 199 more PagerDuty event\(s\) in the last \d+ s \(queue-full: 199\); "
        r"200 dropped so far",
        summary,
    )


# -- no event can hold up another (the delivery scheduler) ------------------------------


class LongestBackoff(random.Random):
    """Jitter that always waits the longest the policy allows, so waits are known."""

    def uniform(self, a: float, b: float) -> float:
        return b


SLOW = RetryPolicy(base_delay=30.0, max_delay=60.0, rate_limited_base_delay=0.5)


def sent_keys(transport: ScriptedTransport) -> list[str]:
    return [body["dedup_key"] for body in transport.bodies]


def test_an_event_waiting_for_its_retry_does_not_delay_the_others() -> None:
    # "stuck" fails once and then waits 30 s for its retry; "next" must not wait with it.
    transport = ScriptedTransport(by_key={"stuck": [500]})
    client = EventsClient(KEY, source="tests", retry=SLOW, transport=transport)
    dispatcher = Dispatcher(client, rate_limit=None, rng=LongestBackoff())
    dispatcher.submit(trigger("stuck"))
    assert wait_until(lambda: len(transport.requests) == 1, 30)
    dispatcher.submit(trigger("next"))
    assert wait_until(lambda: sent_keys(transport) == ["stuck", "next"], 20)
    assert dispatcher.stats().sent == 1
    dispatcher.close(0)


def test_a_critical_is_sent_while_fifty_events_keep_failing() -> None:
    failing: dict[str, list[Answer]] = {f"w{n}": [500] * 1000 for n in range(50)}
    transport = ScriptedTransport(by_key=failing)
    retry = RetryPolicy(base_delay=0.05, max_delay=0.5, rate_limited_base_delay=0.05)
    client = EventsClient(KEY, source="tests", retry=retry, transport=transport)
    dispatcher = Dispatcher(client, rate_limit=None)
    delivered = threading.Event()

    def on_sent(sender: object, **kw: Any) -> None:
        if kw["event"].dedup_key == "page":
            delivered.set()

    signals.event_sent.connect(on_sent, sender=dispatcher)
    try:
        for key in failing:
            dispatcher.submit(trigger(key, "warning"))
        assert wait_until(lambda: len(transport.requests) >= 100, 60)  # all retrying
        dispatcher.submit(trigger("page", "critical"))
        assert delivered.wait(20)
        # Those 50 are still failing and retrying: none of them was given up on meanwhile.
        assert dispatcher.stats().failed == 0
    finally:
        signals.event_sent.disconnect(on_sent, sender=dispatcher)
        dispatcher.close(0)


def test_a_429_pauses_every_event_of_the_routing_key() -> None:
    transport = ScriptedTransport(by_key={"first": [429]})
    client = EventsClient(KEY, source="tests", retry=SLOW, transport=transport)
    dispatcher = Dispatcher(client, rate_limit=None, rng=LongestBackoff())
    times: list[float] = []
    signals.event_retried.connect(lambda sender, **kw: times.append(time.monotonic()), weak=False)
    dispatcher.submit(trigger("first"))
    assert wait_until(lambda: bool(times), 30)
    dispatcher.submit(trigger("second"))
    assert dispatcher.flush(30)
    delivered_at = time.monotonic()
    # The 429 paused the key for 0.5 s (rate_limited_base_delay): "second" waited too.
    assert delivered_at - times[0] >= 0.5
    assert sorted(sent_keys(transport)) == ["first", "first", "second"]
    dispatcher.close(0)


def test_repeated_connection_failures_open_a_circuit_instead_of_hammering() -> None:
    refused = [httpx.ConnectError("refused")] * 3
    transport = ScriptedTransport(refused)
    retry = RetryPolicy(base_delay=0.5, max_delay=1.0, rate_limited_base_delay=0.5)
    client = EventsClient(KEY, source="tests", retry=retry, transport=transport)
    dispatcher = Dispatcher(client, rate_limit=None, rng=LongestBackoff())
    for key in "abcde":
        dispatcher.submit(trigger(key))
    assert wait_until(lambda: len(transport.requests) >= 3, 30)
    third_failure = time.monotonic()
    assert wait_until(lambda: len(transport.requests) >= 4, 30)
    # Three failures in a row: the next request is a probe after the pause, not at once.
    assert time.monotonic() - third_failure >= 0.5 - 0.05
    assert dispatcher.flush(30)
    assert sorted(set(sent_keys(transport))) == list("abcde")
    dispatcher.close(0)


def test_an_event_that_cannot_be_encoded_fails_loudly(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding(Scrubber):
        def scrub_text(self, text: str) -> str:
            raise RuntimeError("scrubber bug")

    transport = ScriptedTransport()
    client = EventsClient(
        KEY, source="tests", retry=FAST, transport=transport, scrubber=Exploding()
    )
    dispatcher = Dispatcher(client, rate_limit=None)
    failed: list[tuple[Any, Any]] = []
    signals.event_failed.connect(
        lambda sender, **kw: failed.append((kw["event"], kw["error"])),
        sender=dispatcher,
        weak=False,
    )
    with caplog.at_level(logging.ERROR, "pd_integrations.dispatch"):
        assert not dispatcher.submit(trigger("poison"))
    assert dispatcher.stats().failed == 1
    ((event, error),) = failed
    assert event.dedup_key == "poison"
    assert "scrubber bug" in str(error)
    assert "poison" in caplog.text
    assert "not delivered" in caplog.text
    dispatcher.close(0)


def test_a_slow_object_costs_its_own_caller_not_other_alerts() -> None:
    release = threading.Event()
    encoding = threading.Event()

    class Slow:
        def __repr__(self) -> str:
            encoding.set()
            release.wait(30)
            return "slow"

    transport = ScriptedTransport()
    dispatcher = make(transport)
    poisoned = threading.Thread(
        target=dispatcher.submit,
        args=(
            TriggerEvent("slow", "error", "tests", dedup_key="slow", custom_details={"v": Slow()}),
        ),
    )
    poisoned.start()
    try:
        assert encoding.wait(10)
        dispatcher.submit(trigger("healthy"))
        assert wait_until(lambda: sent_keys(transport) == ["healthy"], 20)
    finally:
        release.set()
        poisoned.join(10)
    assert dispatcher.flush(10)
    assert sent_keys(transport) == ["healthy", "slow"]
    dispatcher.close(0)


def test_what_is_sent_is_frozen_when_submitted(gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport)
    dispatcher.submit(trigger("busy"))
    assert transport.arrived.wait(10)
    details: dict[str, Any] = {"order": 1}
    dispatcher.submit(TriggerEvent("s", "error", "tests", dedup_key="k", custom_details=details))
    details["order"] = 2
    details["card"] = "4111"
    gate.set()
    assert dispatcher.flush(10)
    (body,) = [b for b in transport.bodies if b["dedup_key"] == "k"]
    assert body["payload"]["custom_details"] == {"order": 1}
    dispatcher.close(0)


def test_a_receiver_that_raises_does_not_keep_the_others_from_hearing() -> None:
    transport = ScriptedTransport()
    dispatcher = make(transport)
    heard: list[str] = []

    def broken(sender: object, **kw: Any) -> None:
        raise RuntimeError("receiver bug")

    def counting(sender: object, **kw: Any) -> None:
        heard.append(kw["event"].dedup_key)

    signals.event_sent.connect(broken, sender=dispatcher)
    signals.event_sent.connect(counting, sender=dispatcher)
    try:
        dispatcher.submit(trigger("a"))
        assert dispatcher.flush(10)
    finally:
        signals.event_sent.disconnect(broken, sender=dispatcher)
        signals.event_sent.disconnect(counting, sender=dispatcher)
    assert heard == ["a"]
    dispatcher.close(0)
