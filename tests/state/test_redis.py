"""Shared state through a real Redis: several managers act as several workers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pd_integrations import AlertManager, ConfigurationError, Severity, environment
from pd_integrations.client import EventsClient
from pd_integrations.delivery.ratelimit import SharedRateBudget
from pd_integrations.health import HealthMonitor
from pd_integrations.state import Alert, Edge, MemoryState, routing_key_hash
from pd_integrations.state import redis as state_redis
from pd_integrations.state.redis import RedisState
from tests.clock import FakeClock
from tests.redis_server import RedisServer, unique_routing_key, with_query
from tests.transport import FAST, ScriptedTransport, wait_until

pytest_plugins = ["tests.redis_server"]

# Generous: a loaded test machine must not look like a Redis outage.
PATIENT = 10.0

Workers = Callable[..., list[AlertManager]]


@pytest.fixture
def transport() -> ScriptedTransport:
    """One PagerDuty for every worker: what all of them sent, in arrival order."""
    return ScriptedTransport()


@pytest.fixture
def workers(redis_url: str, redis_prefix: str, transport: ScriptedTransport) -> Iterator[Workers]:
    """Build ``n`` managers on one routing key sharing one Redis, as n processes would."""
    built: list[AlertManager] = []
    routing_key = unique_routing_key()

    def build(n: int, **kw: Any) -> list[AlertManager]:
        for i in range(n):
            client = EventsClient(routing_key, source=f"web-{i}", retry=FAST, transport=transport)
            state = RedisState(redis_url, routing_key, prefix=redis_prefix, socket_timeout=PATIENT)
            kw.setdefault("rate_limit", None)
            built.append(AlertManager(client=client, dedup_key_prefix="prod", state=state, **kw))
        return built[-n:]

    yield build
    for manager in built:
        manager.close(10)
        manager.state.close()


def flush(*managers: AlertManager) -> None:
    for manager in managers:
        assert manager.flush(10)


def actions(transport: ScriptedTransport) -> list[tuple[str, str]]:
    return [(b["event_action"], b["dedup_key"]) for b in transport.bodies]


def test_an_alert_raised_by_every_worker_pages_once(
    workers: Workers, transport: ScriptedTransport
) -> None:
    managers = workers(4)
    for _ in range(25):
        for manager in managers:
            manager.alert("Payments failing", "critical", alert_type="payments")
    flush(*managers)
    assert actions(transport) == [("trigger", "prod:payments")]
    for manager in managers:  # every worker sees the alert and the fleet-wide count
        alert = manager.get_alert("prod:payments")
        assert alert is not None
        assert alert.occurrences == 100
        assert [a.dedup_key for a in manager.active_alerts()] == ["prod:payments"]


def test_acknowledge_and_resolve_are_seen_by_every_worker(
    workers: Workers, transport: ScriptedTransport
) -> None:
    a, b = workers(2)
    key = a.critical("Disk full")
    flush(a)  # two workers send on their own threads: else b's acknowledge may go first
    b.acknowledge(key)  # b never raised it, but it is open for the fleet
    alert = a.get_alert(key)
    assert alert is not None
    assert alert.acknowledged
    b.resolve(key)
    flush(b)  # b's resolve reaches Redis in the background
    assert a.get_alert(key) is None
    flush(a, b)
    a.critical("Disk full")  # after the resolve a recurrence is a new incident
    flush(a)
    assert [action for action, _ in actions(transport)] == [
        "trigger",
        "acknowledge",
        "resolve",
        "trigger",
    ]


def test_an_escalation_is_sent_once_with_the_fleet_wide_count(
    workers: Workers, transport: ScriptedTransport
) -> None:
    a, b = workers(2)
    a.alert("Latency high", "warning", alert_type="latency")
    b.alert("Latency high", "warning", alert_type="latency")
    flush(a, b)
    b.alert("Latency very high", "critical", alert_type="latency")
    a.alert("Latency very high", "critical", alert_type="latency")
    flush(a, b)
    bodies = transport.bodies
    assert [body["payload"]["severity"] for body in bodies] == ["warning", "critical"]
    assert bodies[1]["payload"]["custom_details"]["occurrences"] == 3


def test_auto_resolve_is_sent_by_exactly_one_worker(
    workers: Workers, transport: ScriptedTransport
) -> None:
    # Quiet for 1 s before resolving: the four raises below must all land before that,
    # also on a loaded machine.
    managers = workers(3, auto_resolve_after=1.0)
    for manager in managers:
        manager.warning("Cache cold")
    key = managers[0].warning("Cache cold")
    assert wait_until(lambda: managers[0].get_alert(key) is None)
    # Every worker's timer fires; give the two that lose the race time to (not) send.
    assert wait_until(lambda: all(not m._resolver._due for m in managers))
    flush(*managers)
    assert actions(transport) == [("trigger", key), ("resolve", key)]


def test_the_health_of_one_database_pages_once_and_resolves_once(
    workers: Workers, transport: ScriptedTransport
) -> None:
    database = {"up": False}
    monitors = []
    for manager in workers(4):
        monitor = HealthMonitor(manager, failure_threshold=3)
        monitor.register("db", lambda: database["up"])
        monitors.append(monitor)
    for _ in range(3):
        for monitor in monitors:
            monitor.run()
    flush(*(m.alerts for m in monitors))
    assert actions(transport) == [("trigger", "prod:health_check:db")]
    # Every worker reports the shared state, not only the one that paged.
    assert all(m.last_report and m.last_report["db"].alerting for m in monitors)
    database["up"] = True
    for _ in range(3):
        for monitor in monitors:
            monitor.run()
    flush(*(m.alerts for m in monitors))
    assert actions(transport) == [
        ("trigger", "prod:health_check:db"),
        ("resolve", "prod:health_check:db"),
    ]


def test_workers_that_briefly_disagree_do_not_flap(
    workers: Workers, transport: ScriptedTransport
) -> None:
    views = {"a": False, "b": False}
    a, b = workers(2)
    health_a, health_b = HealthMonitor(a), HealthMonitor(b)  # 2 failures page, 1 success resolves
    health_a.register("db", lambda: views["a"])

    def run(monitor: HealthMonitor) -> None:
        # Each run reaches Redis in the background: wait, so Redis sees this interleaving.
        monitor.run()
        flush(monitor.alerts)

    health_b.register("db", lambda: views["b"])
    # The outage begins: a sees it first, b's next run still passes.
    views["a"] = False
    views["b"] = True
    run(health_a)
    run(health_b)
    run(health_a)
    views["b"] = False
    run(health_b)
    run(health_a)
    run(health_b)
    # The outage ends: a recovers first, b's run already under way still fails once.
    views["a"] = True
    run(health_a)
    run(health_b)
    views["b"] = True
    for _ in range(3):
        run(health_b)
        run(health_a)
    flush(a, b)
    assert actions(transport) == [
        ("trigger", "prod:health_check:db"),
        ("resolve", "prod:health_check:db"),
    ]


def test_the_rate_budget_is_one_for_every_worker(
    redis_url: str, redis_prefix: str, transport: ScriptedTransport
) -> None:
    routing_key = unique_routing_key()
    states = [
        RedisState(redis_url, routing_key, prefix=redis_prefix, socket_timeout=PATIENT)
        for _ in range(3)
    ]
    try:
        budgets = [state.rate_budget(10) for state in states]
        assert all(isinstance(b, SharedRateBudget) for b in budgets)
        granted = [b.try_acquire() == 0 for _ in range(5) for b in budgets]
        assert granted.count(True) == 10
        assert budgets[0].try_acquire() > 0
    finally:
        for state in states:
            state.close()


def test_keys_are_namespaced_by_a_hash_of_the_routing_key_and_all_expire(
    redis_url: str, redis_prefix: str
) -> None:
    routing_key = unique_routing_key()
    url = with_query(redis_url, prefix=redis_prefix, socket_timeout=PATIENT)
    client = EventsClient(routing_key, transport=ScriptedTransport(), retry=FAST)
    with AlertManager(client=client, state_url=url) as manager:
        assert isinstance(manager.state, RedisState)
        manager.critical("Disk full")
        manager.state.observe_health("prod:health_check:db", False, 2, 1)
        assert manager.state.rate_budget(120).try_acquire() == 0
        assert manager.flush(10)
        assert routing_key not in repr(manager)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = sorted(raw.scan_iter(match=f"{redis_prefix}:*"))
        namespace = f"{redis_prefix}:{{{routing_key_hash(routing_key)}}}"
        kinds = sorted({key.removeprefix(namespace + ":").split(":")[0] for key in keys})
        assert kinds == ["alert", "alerts", "health", "rate"]
        for key in keys:
            assert key.startswith(namespace + ":")
            assert routing_key not in key
            assert raw.pttl(key) > 0, f"{key} never expires"
    finally:
        raw.close()


def test_adapters_get_the_state_from_the_environment(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    routing_key = unique_routing_key()
    monkeypatch.setenv(environment.ROUTING_KEY_VARS[0], routing_key)
    monkeypatch.setenv(environment.STATE_URL_VAR, with_query(redis_url, prefix=redis_prefix))
    manager = AlertManager.from_env(rate_limit=None)
    try:
        assert isinstance(manager.state, RedisState)
        assert manager.state.description == redis_url
    finally:
        manager.close(0)
    monkeypatch.setenv(environment.STATE_URL_VAR, "memory://")
    with AlertManager.from_env() as manager:
        assert isinstance(manager.state, MemoryState)
    # Disabled (no routing key): nothing is sent, so nothing is shared.
    monkeypatch.delenv(environment.ROUTING_KEY_VARS[0])
    monkeypatch.delenv(environment.ROUTING_KEY_VARS[1], raising=False)
    monkeypatch.setenv(environment.STATE_URL_VAR, redis_url)
    with AlertManager.from_env() as manager:
        assert isinstance(manager.state, MemoryState)


def test_redis_down_means_local_state_one_warning_and_alerts_still_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pd_integrations.state")
    routing_key = unique_routing_key()
    transport = ScriptedTransport()
    with RedisServer() as server:
        state = RedisState(server.url, routing_key, socket_timeout=PATIENT, retry_after=0.05)
        client = EventsClient(routing_key, retry=FAST, transport=transport)
        manager = AlertManager(client=client, state=state, rate_limit=120)
        try:
            manager.critical("before the outage")
            assert state.available

            server.stop()
            edges = []
            for i in range(20):
                for _ in range(5):  # repeats are still suppressed, by the local state
                    manager.critical(f"during the outage {i}")
                edges.append(state.observe_health("health_check:db", False, 1, 1).edge)
            assert edges == [Edge.TRIGGER] + [None] * 19
            assert not state.available
            assert manager.flush(10)
            summaries = [b["payload"]["summary"] for b in transport.bodies]
            assert summaries == ["before the outage"] + [
                f"during the outage {i}" for i in range(20)
            ]
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "unavailable" in warnings[0].getMessage()

            server.start()  # same port: the state finds it again after its back-off
            keys: list[str] = []

            def raise_and_check() -> bool:
                keys.append(manager.critical("after the outage"))
                return state.available

            assert wait_until(raise_and_check)
            raw = redis.Redis.from_url(server.url, decode_responses=True)
            try:  # the call that found Redis again recorded the alert there
                assert raw.hget(f"{state.namespace}:alert:{keys[-1]}", "summary") == (
                    "after the outage"
                )
            finally:
                raw.close()
            infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
            assert any("reachable again" in message for message in infos)
            assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        finally:
            manager.close(10)
            state.close()


def test_an_unreachable_redis_never_stops_alerting(caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer() as server:
        url = server.url
    # The server is gone: nothing listens on that port any more.
    routing_key = unique_routing_key()
    transport = ScriptedTransport()
    client = EventsClient(routing_key, retry=FAST, transport=transport)
    with AlertManager(client=client, state_url=url, rate_limit=120) as manager:
        for i in range(10):
            manager.error(f"problem {i}")
        assert manager.flush(10)
        assert len(transport.bodies) == 10
        assert len(manager.active_alerts()) == 10
    warnings = [r for r in caplog.records if r.name == "pd_integrations.state"]
    assert len(warnings) == 1


def test_a_unix_socket_url_keeps_its_path_and_options(tmp_path: Path) -> None:
    socket_path = tmp_path / "missing.sock"
    state = RedisState(f"unix://{socket_path}?db=3&prefix=stg", unique_routing_key())
    try:
        assert state.namespace.startswith("stg:{")
        assert state.description == f"unix://{socket_path}?db=3"
        kwargs = state.redis.connection_pool.connection_kwargs
        assert (kwargs["path"], kwargs["db"]) == (str(socket_path), 3)
        # Nothing listens there: the state falls back, and alerting goes on.
        assert state.raise_alert(_record("prod:db_down"), 60).send
        assert not state.available
    finally:
        state.close()


def _record(key: str) -> Alert:
    now = time.time()
    return Alert(key, "summary", Severity.ERROR, "t", None, None, now, now)


# -- the local window: repeats counted without a round trip ---------------------------------


# Long, so the background flusher never runs during a test that moves the clock by hand.
WINDOW = 600.0


def _windowed(
    redis_url: str, redis_prefix: str, routing_key: str, clock: FakeClock, window: float = WINDOW
) -> RedisState:
    return RedisState(
        redis_url,
        routing_key,
        prefix=redis_prefix,
        socket_timeout=PATIENT,
        local_window=window,
        clock=clock,
    )


def _stored_occurrences(state: RedisState, key: str) -> int:
    value = state.redis.hget(state._alert_key(key), "occurrences")
    assert isinstance(value, str)
    return int(value)


class _RoundTrips:
    """Counts a state's trips to Redis: every command and pipeline takes a pooled connection."""

    def __init__(self, state: RedisState, monkeypatch: pytest.MonkeyPatch) -> None:
        # A script's first use on a server costs extra trips (NOSCRIPT, SCRIPT LOAD), and
        # whether another test already loaded it depends on the order tests run in.
        for script in (state._raise, state._push_script, state._acknowledge):
            state.redis.script_load(script.script)
        self.count = 0
        pool = state.redis.connection_pool
        get_connection = pool.get_connection

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return get_connection(*args, **kwargs)

        monkeypatch.setattr(pool, "get_connection", counting)

    def since(self, before: int) -> int:
        return self.count - before


def test_repeats_in_the_local_window_make_no_round_trip(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), clock)
    trips = _RoundTrips(state, monkeypatch)
    try:
        assert state.raise_alert(_record("prod:db_down"), 60).send
        assert trips.count == 1
        for expected in range(2, 12):
            assert state.raise_alert(_record("prod:db_down"), 60)[:2] == (False, expected)
        assert trips.count == 1
        # Counted here only until the flush, which is one pipeline for every alert.
        assert _stored_occurrences(state, "prod:db_down") == 1
        before = trips.count
        state.flush()
        assert trips.since(before) == 1
        assert _stored_occurrences(state, "prod:db_down") == 11
        # The flush found the alert open and renewed the window: still no round trip.
        clock.now += WINDOW - 1
        before = trips.count
        assert state.raise_alert(_record("prod:db_down"), 60)[:2] == (False, 12)
        assert trips.since(before) == 0
    finally:
        state.close()


def test_a_flush_refreshes_last_seen_and_the_ttl(redis_url: str, redis_prefix: str) -> None:
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), FakeClock())
    try:
        first = _record("prod:db_down")
        state.raise_alert(first, 5)
        key = state._alert_key("prod:db_down")
        state.redis.pexpire(key, 1000)  # as if the alert were close to expiring
        later = first._replace(last_seen_timestamp=first.last_seen_timestamp + 3)
        state.raise_alert(later, 5)
        state.flush()
        stored = state.get_alert("prod:db_down")
        assert stored is not None
        assert stored.last_seen_timestamp == later.last_seen_timestamp
        assert int(state.redis.pttl(key)) > 1000
    finally:
        state.close()


def test_fleet_wide_counts_are_exact_after_a_flush(redis_url: str, redis_prefix: str) -> None:
    routing_key, clock = unique_routing_key(), FakeClock()
    workers = [_windowed(redis_url, redis_prefix, routing_key, clock) for _ in range(3)]
    try:
        sends = [w.raise_alert(_record("prod:queue"), 60).send for w in workers]
        assert sends == [True, False, False]
        for n in range(30):
            workers[n % 3].raise_alert(_record("prod:queue"), 60)
        for worker in workers:
            worker.flush()
        assert _stored_occurrences(workers[0], "prod:queue") == 33
        # A flush brings back the fleet-wide count, which later repeats continue.
        assert workers[2].raise_alert(_record("prod:queue"), 60)[:2] == (False, 34)
    finally:
        for worker in workers:
            worker.close()


def test_the_background_thread_sends_the_counts(redis_url: str, redis_prefix: str) -> None:
    routing_key = unique_routing_key()
    state = RedisState(
        redis_url, routing_key, prefix=redis_prefix, socket_timeout=PATIENT, local_window=0.05
    )
    try:
        state.raise_alert(_record("prod:disk"), 60)
        for _ in range(9):
            state.raise_alert(_record("prod:disk"), 60)
        assert wait_until(lambda: _stored_occurrences(state, "prod:disk") == 10, PATIENT)
        flusher = state._flusher
        assert flusher is not None
        assert flusher.is_alive()
    finally:
        state.close()
    assert not flusher.is_alive()


def test_a_worse_repeat_is_decided_by_redis_inside_the_window(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), FakeClock())
    trips = _RoundTrips(state, monkeypatch)
    try:
        state.raise_alert(_record("prod:latency"), 60)
        state.raise_alert(_record("prod:latency"), 60)
        worse = _record("prod:latency")._replace(severity=Severity.CRITICAL)
        assert state.raise_alert(worse, 60)[:2] == (True, 3)
        assert trips.count == 2
        # Redis now knows it as critical, and so does the local window.
        assert state.raise_alert(worse, 60)[:2] == (False, 4)
        assert trips.count == 2
    finally:
        state.close()


def test_a_due_refresh_is_decided_by_redis_once_for_every_window(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    routing_key, clock, refresh = unique_routing_key(), FakeClock(), 300.0
    first = _windowed(redis_url, redis_prefix, routing_key, clock)
    second = _windowed(redis_url, redis_prefix, routing_key, clock)
    trips = _RoundTrips(first, monkeypatch)
    t0 = time.time()

    def at(offset: float) -> Alert:
        return _record("prod:queue")._replace(last_seen_timestamp=t0 + offset)

    try:
        assert first.raise_alert(at(0), 60, refresh).send
        assert not second.raise_alert(at(1), 60, refresh).send
        before = trips.count
        # Both windows are open for another 600 s, but the refresh is due at 300 s: the
        # repeats before it stay local, the first one after it goes to Redis.
        assert not first.raise_alert(at(refresh - 1), 60, refresh).send
        assert trips.since(before) == 0
        refreshed = first.raise_alert(at(refresh), 60, refresh)
        assert (refreshed.send, refreshed.occurrences) == (True, 4)  # with the local repeat
        assert trips.since(before) == 1
        # The other worker asks Redis too, is told no, and learns the next deadline.
        assert not second.raise_alert(at(refresh + 1), 60, refresh).send
        assert not second.raise_alert(at(refresh + 2), 60, refresh).send
        before = trips.count
        assert not first.raise_alert(at(2 * refresh - 1), 60, refresh).send
        assert trips.since(before) == 0
        assert second.raise_alert(at(2 * refresh), 60, refresh).send
        assert not first.raise_alert(at(2 * refresh + 1), 60, refresh).send
    finally:
        first.close()
        second.close()


def test_another_workers_resolve_is_seen_after_the_window(
    redis_url: str, redis_prefix: str
) -> None:
    routing_key, clock = unique_routing_key(), FakeClock()
    first = _windowed(redis_url, redis_prefix, routing_key, clock)
    second = RedisState(redis_url, routing_key, prefix=redis_prefix, socket_timeout=PATIENT)
    try:
        assert first.raise_alert(_record("prod:queue"), 60).send
        assert second.resolve("prod:queue")
        # Inside the window the first worker still believes the alert is open...
        assert not first.raise_alert(_record("prod:queue"), 60).send
        clock.now += WINDOW + 1
        # ...and after it, the recurrence opens a new incident.
        assert first.raise_alert(_record("prod:queue"), 60).send
        # A flush that finds the alert gone ends the window at once.
        first.raise_alert(_record("prod:queue"), 60)
        assert second.resolve("prod:queue")
        first.flush()
        assert first.raise_alert(_record("prod:queue"), 60).send
    finally:
        first.close()
        second.close()


def test_own_resolve_and_acknowledge_reach_redis(redis_url: str, redis_prefix: str) -> None:
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), FakeClock())
    try:
        state.raise_alert(_record("prod:cache"), 60)
        state.raise_alert(_record("prod:cache"), 60)
        assert state.acknowledge("prod:cache")
        stored = state.get_alert("prod:cache")
        assert stored is not None
        assert (stored.acknowledged, stored.occurrences) == (True, 2)
        assert state.resolve("prod:cache")
        assert state.get_alert("prod:cache") is None
        assert state.raise_alert(_record("prod:cache"), 60).send
    finally:
        state.close()


def test_counts_left_in_the_window_reach_redis_at_close(redis_url: str, redis_prefix: str) -> None:
    routing_key = unique_routing_key()
    state = _windowed(redis_url, redis_prefix, routing_key, FakeClock())
    state.raise_alert(_record("prod:disk"), 60)
    for _ in range(4):
        state.raise_alert(_record("prod:disk"), 60)
    state.close()
    reader = RedisState(redis_url, routing_key, prefix=redis_prefix, socket_timeout=PATIENT)
    try:
        stored = reader.get_alert("prod:disk")
        assert stored is not None
        assert stored.occurrences == 5
    finally:
        reader.close()


def test_alerts_beyond_the_bound_are_decided_by_redis(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_redis, "_RECENT_LIMIT", 2)
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), FakeClock())
    trips = _RoundTrips(state, monkeypatch)
    try:
        for key in ("prod:a", "prod:b", "prod:c"):
            state.raise_alert(_record(key), 60)
            state.raise_alert(_record(key), 60)
        assert trips.count == 4  # prod:c's repeat went to Redis
        state.flush()
        for key in ("prod:a", "prod:b", "prod:c"):
            assert _stored_occurrences(state, key) == 2  # no remembered count was lost
    finally:
        state.close()


def test_no_local_window_decides_every_repeat_in_redis(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), FakeClock(), window=0)
    trips = _RoundTrips(state, monkeypatch)
    try:
        for expected in range(1, 6):
            assert state.raise_alert(_record("prod:db_down"), 60)[:2] == (expected == 1, expected)
        assert trips.count == 5
        assert _stored_occurrences(state, "prod:db_down") == 5
        assert state._flusher is None
        assert not state._recent
    finally:
        state.close()


def test_the_local_window_from_the_url(redis_url: str, redis_prefix: str) -> None:
    url = with_query(redis_url, prefix=redis_prefix, local_window="0.5")
    state = RedisState(url, unique_routing_key())
    try:
        assert state.local_window == 0.5
        assert "local_window" not in state.description
    finally:
        state.close()
    with pytest.raises(ConfigurationError, match="local_window"):
        RedisState(with_query(redis_url, local_window="soon"), unique_routing_key())
    with pytest.raises(ConfigurationError, match="local_window"):
        RedisState(redis_url, unique_routing_key(), local_window=-1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_window(redis_url: str, redis_prefix: str) -> None:
    state = _windowed(redis_url, redis_prefix, unique_routing_key(), FakeClock())
    try:
        state.raise_alert(_record("prod:db_down"), 60)
        state.raise_alert(_record("prod:db_down"), 60)
        pid = os.fork()
        if pid == 0:  # the child: exit codes say what went wrong, asserts cannot reach pytest
            code = 0
            try:
                if state._recent or state._flusher is not None:
                    code = 2  # inherited the parent's counts or its (dead) thread
                elif state.raise_alert(_record("prod:db_down"), 60)[:2] != (False, 2):
                    code = 3  # Redis holds one occurrence: the parent's repeat is unsent
                else:
                    state.raise_alert(_record("prod:db_down"), 60)
                    state.close()  # sends the child's own repeat
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        state.flush()
        assert _stored_occurrences(state, "prod:db_down") == 4
    finally:
        state.close()


def test_a_health_alert_paged_alone_during_an_outage_is_resolved_once_redis_is_back() -> None:
    with RedisServer() as server:
        state = RedisState(server.url, unique_routing_key(), retry_after=0.01, max_retry_after=0.01)
        try:
            server.stop()
            # Redis is out: this worker decides alone, and pages.
            assert state.observe_health("health_check:db", False, 1, 1).edge is Edge.TRIGGER
            server.start()
            assert wait_until(lambda: state.get_alert("probe") is None and state.available)
            # Redis never heard of that page; the resolve is still owed.
            assert state.observe_health("health_check:db", True, 1, 1).edge is Edge.RESOLVE
            assert state.observe_health("health_check:db", True, 1, 1).edge is None
        finally:
            state.close()
