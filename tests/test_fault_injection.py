"""Delivery guarantees under injected faults, against the real emulator over loopback HTTP.

Thousands of distinct events meet a seeded mix of 500/502/503 answers, 429s, dropped
connections, answers that come after the client timed out (the event was accepted, the
202 was lost) and two outages that end by themselves. Every distinct dedup key must end
as exactly one alert: none missing, none doubled. A queue that is too small drops what
matters least, and counts and signals every drop; memory stays bounded however long
PagerDuty is away. Retry delays are shortened through the library's public knobs
(:class:`RetryPolicy`), never by sleeping in the tests.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import tracemalloc
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from pd_integrations import AlertManager, signals
from pd_integrations.client import EventsClient
from pd_integrations.delivery.dispatcher import Dispatcher
from pd_integrations.emulator import Emulator, FaultConfig
from pd_integrations.emulator.faults import FaultInjector, OutageMode
from pd_integrations.events import Event, ResolveEvent, TriggerEvent

from .faultmix import (
    CLIENT_TIMEOUT,
    FAST_RETRY,
    FAULT_MIX,
    SEED,
    WAIT,
    OutageScript,
    SignalLog,
    alerts_by_key,
    assert_every_fault_happened,
    assert_exactly,
    routing_key,
)

DISTINCT = 2000
PRODUCERS = 4
SEVERITIES = ("critical", "error", "warning", "info")
MEMORY_RUN = 15_000


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    # No rate limit here: the budget is the storm benchmark's subject; injected 429s
    # exercise the client's side of it.
    with Emulator(port=0, seed=SEED, rate_limit_per_minute=None) as running:
        yield running


def make_client(emulator: Emulator, name: str) -> EventsClient:
    return EventsClient(
        routing_key(name),
        source="fault-tests",
        base_url=emulator.url,
        timeout=CLIENT_TIMEOUT,
        retry=FAST_RETRY,
    )


def outages(total: int) -> list[tuple[int, OutageMode]]:
    """A dropping outage a quarter of the way through the run, a 503 one halfway."""
    return [(total // 4, "drop"), (total // 2, "error")]


# -- the Dispatcher on its own --------------------------------------------------------


def producer_plan(rng: random.Random, keys: list[str], resolved: set[str]) -> list[Event]:
    """Triggers in order, each resolve a few events after its own trigger."""
    events: list[Event] = []
    late: list[str] = []
    for key in keys:
        events.append(TriggerEvent(f"Problem {key}", rng.choice(SEVERITIES), "h", dedup_key=key))
        if key in resolved:
            late.append(key)
        if len(late) > 3:
            events.append(ResolveEvent(late.pop(0)))
    events.extend(ResolveEvent(key) for key in late)
    return events


def submit_all(dispatcher: Dispatcher, plans: list[list[Event]]) -> list[bool]:
    """Submit each plan from its own thread, all at once; the results of every submit."""
    results: list[bool] = []
    start = threading.Barrier(len(plans))

    def produce(plan: list[Event]) -> None:
        start.wait()
        mine = [dispatcher.submit(event) for event in plan]
        results.extend(mine)

    threads = [threading.Thread(target=produce, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    return results


def test_the_dispatcher_delivers_every_key_exactly_once_through_the_fault_mix(
    emulator: Emulator,
) -> None:
    client = make_client(emulator, "faultmixdispatcher")
    dispatcher = Dispatcher(client, max_queue=4 * DISTINCT, rate_limit=None)
    rng = random.Random(SEED)
    keys = [f"fault-mix-{n:05d}" for n in range(DISTINCT)]
    resolved = set(rng.sample(keys, DISTINCT // 5))
    plans = [producer_plan(rng, keys[p::PRODUCERS], resolved) for p in range(PRODUCERS)]
    severity = {
        e.dedup_key: e.severity for plan in plans for e in plan if isinstance(e, TriggerEvent)
    }
    emulator.set_faults(**FAULT_MIX)
    with SignalLog(dispatcher) as log, OutageScript(emulator, outages(DISTINCT)):
        results = submit_all(dispatcher, plans)
        assert dispatcher.flush(WAIT)
    emulator.clear_faults()

    # Nothing lost while the queue had room: every submit was taken, every event sent.
    total = DISTINCT + len(resolved)
    assert results == [True] * total
    stats = dispatcher.stats()
    assert (stats.sent, stats.dropped, stats.failed, stats.queued) == (total, 0, 0, 0)
    assert (len(log.sent), log.dropped, log.failed) == (total, [], [])
    assert stats.retried == len(log.retried) > 0

    # Exactly one alert per dedup key, in the state its last event left it.
    alerts = alerts_by_key(emulator, client.routing_key)
    assert_exactly(alerts, set(keys))
    for key, alert in alerts.items():
        assert alert["status"] == ("resolved" if key in resolved else "triggered"), key
        assert alert["severity"] == severity[key], key
    # Some 202s were lost and the event sent again: PagerDuty counted a second trigger
    # on the same alert instead of opening another incident.
    assert any(alert["trigger_count"] > 1 for alert in alerts.values())
    assert_every_fault_happened(emulator)
    dispatcher.close()
    client.close()


# -- AlertManager end to end ----------------------------------------------------------


def test_alert_manager_raises_every_alert_once_through_the_fault_mix(emulator: Emulator) -> None:
    client = make_client(emulator, "faultmixalertmanager")
    manager = AlertManager(
        client=client, rate_limit=None, max_queue=4 * DISTINCT, auto_resolve_after=None
    )
    rng = random.Random(SEED + 1)
    identifiers = [f"problem-{n:05d}" for n in range(DISTINCT)]
    escalated = set(rng.sample(identifiers, DISTINCT // 10))
    resolved = set(rng.sample(identifiers, DISTINCT // 5))
    repeats = {ident: rng.randint(0, 3) for ident in identifiers}
    keys: dict[str, str] = {}
    lock = threading.Lock()

    def raise_alerts(mine: list[str]) -> None:
        to_resolve: list[str] = []
        for ident in mine:
            first = "warning" if ident in escalated else "error"
            for _ in range(1 + repeats[ident]):  # repeats of an open alert are suppressed
                key = manager.alert(
                    f"Problem {ident}", first, alert_type="fault-mix", identifier=ident
                )
            if ident in escalated:  # came back worse: PagerDuty must hear of it
                manager.alert(
                    f"Problem {ident} got worse",
                    "critical",
                    alert_type="fault-mix",
                    identifier=ident,
                )
            with lock:
                keys[ident] = key
            if ident in resolved:
                to_resolve.append(key)
            if len(to_resolve) > 5:
                manager.resolve(to_resolve.pop(0))
        for key in to_resolve:
            manager.resolve(key)

    emulator.set_faults(**FAULT_MIX)
    with OutageScript(emulator, outages(DISTINCT)):
        threads = [
            threading.Thread(target=raise_alerts, args=(identifiers[p::2],)) for p in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert manager.flush(WAIT)
    emulator.clear_faults()

    stats = manager.stats()
    assert (stats.dropped, stats.failed, stats.queued) == (0, 0, 0)
    # One trigger per alert, one more per escalation (unless it merged into the queued
    # first one), one resolve each: the repeats never left the process.
    assert stats.sent + stats.coalesced == DISTINCT + len(escalated) + len(resolved)

    alerts = alerts_by_key(emulator, client.routing_key)
    assert_exactly(alerts, set(keys.values()))
    for ident, key in keys.items():
        alert = alerts[key]
        assert alert["status"] == ("resolved" if ident in resolved else "triggered"), ident
        assert alert["severity"] == ("critical" if ident in escalated else "error"), ident
    open_keys = {keys[ident] for ident in identifiers if ident not in resolved}
    active = {alert.dedup_key: alert for alert in manager.active_alerts()}
    assert set(active) == open_keys
    for ident in set(identifiers) - resolved:
        expected = 1 + repeats[ident] + (ident in escalated)
        assert active[keys[ident]].occurrences == expected, ident
    assert any(alert["trigger_count"] > 1 for alert in alerts.values())
    assert_every_fault_happened(emulator)
    manager.close()


# -- a queue too small for the outage ----------------------------------------------------


def test_a_full_queue_drops_the_least_important_counts_and_signals_every_drop(
    emulator: Emulator,
) -> None:
    max_queue = 40
    client = make_client(emulator, "faultmixsmallqueue")
    dispatcher = Dispatcher(client, max_queue=max_queue, rate_limit=None)
    rng = random.Random(SEED + 2)
    events = [
        TriggerEvent(f"Problem {n}", rng.choice(SEVERITIES), "h", dedup_key=f"small-{n:04d}")
        for n in range(600)
    ]
    emulator.set_faults(outage=True)  # until cleared: nothing gets through meanwhile
    largest = 0
    refused: list[str] = []
    with SignalLog(dispatcher) as log:
        dispatcher.submit(events[0])
        # The first event is in flight (and failing) before the queue fills up.
        emulator.wait_for_requests(1, timeout=WAIT)
        for event in events[1:]:
            if not dispatcher.submit(event):
                refused.append(str(event.dedup_key))
            largest = max(largest, dispatcher.stats().queued)
        stats = dispatcher.stats()
        emulator.clear_faults()
        assert dispatcher.flush(WAIT)

    # The queue never grew past its bound, plus the one event in flight when the queue
    # filled (if the sender was in the middle of an attempt then; between its retries,
    # the failing event waits in the queue and counts against the bound like any other).
    assert max_queue <= largest <= max_queue + 1
    # Every drop was counted and signalled, once, as a full queue.
    dropped = [str(event.dedup_key) for event, _ in log.dropped]
    assert {reason for _, reason in log.dropped} == {"queue-full"}
    assert stats.dropped == len(dropped) == len(set(dropped))
    assert len(events) - max_queue - 1 <= len(dropped) <= len(events) - max_queue
    assert set(refused) <= set(dropped)
    assert dispatcher.stats().dropped == stats.dropped
    # What was kept ranks at least as high as anything dropped.
    by_key = {str(event.dedup_key): event for event in events}
    kept = set(by_key) - set(dropped)
    in_flight = str(events[0].dedup_key)
    lowest_kept = min(by_key[key].priority for key in kept - {in_flight})
    assert lowest_kept >= max(by_key[key].priority for key in dropped)
    # What was kept was delivered once the outage ended, once each.
    assert_exactly(alerts_by_key(emulator, client.routing_key), kept)
    assert dispatcher.stats().sent == len(kept)
    dispatcher.close()
    client.close()


def test_an_alert_whose_trigger_was_dropped_reaches_pagerduty_when_it_recurs(
    emulator: Emulator,
) -> None:
    client = make_client(emulator, "faultmixdroppedrecurs")
    manager = AlertManager(client=client, rate_limit=None, max_queue=1, auto_resolve_after=None)
    dropped: list[str | None] = []

    def on_dropped(sender: object, **kw: object) -> None:
        event = kw["event"]
        assert isinstance(event, TriggerEvent)
        dropped.append(event.dedup_key)

    emulator.set_faults(outage=True)
    signals.event_dropped.connect(on_dropped, sender=manager.dispatcher)
    names = ("first", "second", "third")
    try:
        keys = {}
        for name in names:
            keys[name] = manager.alert(name, "error", alert_type="db", identifier=name)
            if name == "first":
                emulator.wait_for_requests(1, timeout=WAIT)  # failing, retried
    finally:
        signals.event_dropped.disconnect(on_dropped, sender=manager.dispatcher)
    # One event fits (two while one is in the middle of an attempt): the rest were dropped.
    assert 1 <= len(dropped) <= 2
    emulator.clear_faults()
    assert manager.flush(WAIT)
    # The queue has room again and the problems are still there.
    for name in names:
        if keys[name] in dropped:
            manager.alert(name, "error", alert_type="db", identifier=name)
            assert manager.flush(WAIT)
    try:
        assert set(alerts_by_key(emulator, client.routing_key)) == set(keys.values())
    finally:
        manager.close()


# -- memory ------------------------------------------------------------------------------


def test_memory_stays_bounded_however_long_pagerduty_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The drop warnings would pile up in pytest's log capture and be measured too.
    caplog.set_level(logging.ERROR, logger="pd_integrations.dispatch")
    # A bounded request log, so that the emulator's own memory stays flat as well.
    with Emulator(port=0, seed=SEED, rate_limit_per_minute=None, max_records=100) as emulator:
        emulator.set_faults(outage=True)
        client = make_client(emulator, "faultmixmemory")
        dispatcher = Dispatcher(client, max_queue=200, rate_limit=None)
        largest = 0

        def storm(start: int, count: int) -> None:
            nonlocal largest
            for n in range(start, start + count):
                details = {"detail": f"{n:0500d}"}  # 500 bytes of its own per event
                dispatcher.submit(
                    TriggerEvent(
                        f"Problem {n}", "error", "h", dedup_key=f"mem-{n}", custom_details=details
                    )
                )
                if n % 100 == 0:
                    largest = max(largest, dispatcher.stats().queued)

        tracemalloc.start()
        try:
            storm(0, 2_000)  # the queue is full, the worker is retrying
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            storm(2_000, MEMORY_RUN)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        stats = dispatcher.stats()
        dispatcher.close(0)
        client.close()
    assert stats.dropped >= MEMORY_RUN
    assert largest <= 200 + 1
    # Kept, 15,000 events of more than 500 bytes each would take well over 7.5 MB.
    assert after - before < 1_000_000, f"grew by {after - before} bytes"


# -- the emulator's slow answers ------------------------------------------------------------


def test_slow_answers_lose_the_202_of_an_accepted_event(emulator: Emulator) -> None:
    emulator.set_faults(slow_rate=1.0, slow_latency=2.0)
    body = {
        "routing_key": routing_key("faultmixslow"),
        "event_action": "trigger",
        "dedup_key": "slow-1",
        "payload": {"summary": "s", "source": "h", "severity": "error"},
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(emulator.events_url, json=body, timeout=0.2)
    # PagerDuty has the event although the client saw no answer.
    (event,) = emulator.wait_for_events(1, timeout=WAIT)
    assert event["dedup_key"] == "slow-1"
    assert emulator.faults()["slow_rate"] == 1.0


def test_slow_answers_leave_the_other_seeded_decisions_unchanged() -> None:
    base = FaultConfig(error_rate=0.3, drop_rate=0.1, rate_limit_429_rate=0.1, latency=0.25)
    plain = FaultInjector(base, seed=SEED)
    slowed = FaultInjector(
        FaultConfig(**{**base.to_dict(), "slow_rate": 0.2, "slow_latency": 1.0}), seed=SEED
    )
    again = FaultInjector(slowed.config, seed=SEED)
    first = [plain.decide() for _ in range(1000)]
    second = [slowed.decide() for _ in range(1000)]
    assert [(d.kind, d.status, d.reason) for d in first] == [
        (d.kind, d.status, d.reason) for d in second
    ]
    delays = Counter(d.delay for d in second)
    assert set(delays) == {0.25, 1.25}
    assert 150 <= delays[1.25] <= 250
    assert [again.decide() for _ in range(1000)] == second
    # clear() starts both sequences again from the seed.
    slowed.clear()
    slowed.configure(again.config)
    assert [slowed.decide() for _ in range(1000)] == second


@pytest.mark.parametrize(
    "settings",
    [{"slow_rate": 1.5}, {"slow_rate": "some"}, {"slow_latency": -1}, {"slow_latency": 10_000}],
)
def test_invalid_slow_answer_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        FaultConfig.from_mapping(settings)
