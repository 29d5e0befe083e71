"""The state contract, run against both backends: in-process memory and a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pd_integrations import ConfigurationError, Severity, environment
from pd_integrations.delivery.ratelimit import RateBudget, shared_budget
from pd_integrations.state import (
    DEFAULT_ALERT_TTL,
    Alert,
    Edge,
    HealthState,
    MemoryState,
    StateBackend,
    next_health,
    open_state,
    routing_key_hash,
    safe_url,
)
from tests.redis_server import unique_routing_key, with_query
from tests.transport import wait_until

pytest_plugins = ["tests.redis_server"]

TTL = DEFAULT_ALERT_TTL


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> Iterator[StateBackend]:
    key = unique_routing_key()
    if request.param == "memory":
        backend: StateBackend = MemoryState(key)
    else:
        from pd_integrations.state.redis import RedisState

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        # Generous timeout: a loaded test machine must not look like a Redis outage.
        # No local window: these tests are of what Redis decides (test_state_redis.py
        # covers the window).
        backend = RedisState(url, key, prefix=prefix, socket_timeout=10, local_window=0)
    try:
        yield backend
    finally:
        backend.close()


def record(
    key: str = "prod:db_down",
    severity: Severity = Severity.ERROR,
    summary: str = "Database unreachable",
    *,
    at: float | None = None,
    auto_resolve: bool = False,
) -> Alert:
    now = time.time() if at is None else at
    return Alert(
        dedup_key=key,
        summary=summary,
        severity=severity,
        alert_type="db_down",
        component=None,
        identifier="primary",
        first_seen_timestamp=now,
        last_seen_timestamp=now,
        auto_resolve=auto_resolve,
    )


def test_a_new_alert_is_sent_and_its_repeats_are_counted(state: StateBackend) -> None:
    first = state.raise_alert(record(at=1000.0 + time.time()), TTL)
    assert (first.send, first.occurrences) == (True, 1)
    for expected in range(2, 6):
        again = state.raise_alert(record(summary="a later summary"), TTL)
        assert (again.send, again.occurrences) == (False, expected)
    stored = state.get_alert("prod:db_down")
    assert stored is not None
    assert stored.summary == "Database unreachable"  # a repeat keeps the first summary
    assert stored.severity is Severity.ERROR
    assert stored.alert_type == "db_down"
    assert stored.component is None
    assert stored.identifier == "primary"
    assert stored.occurrences == 5
    assert stored.first_seen > stored.last_seen  # first_seen was set in the future above
    assert not stored.acknowledged
    assert not stored.auto_resolve
    assert state.get_alert("unknown") is None


def test_only_a_more_severe_repeat_is_sent_again(state: StateBackend) -> None:
    state.raise_alert(record(severity=Severity.WARNING, summary="slow"), TTL)
    assert not state.raise_alert(record(severity=Severity.WARNING), TTL).send
    escalated = state.raise_alert(record(severity=Severity.CRITICAL, summary="down"), TTL)
    assert (escalated.send, escalated.occurrences) == (True, 3)
    assert not state.raise_alert(record(severity=Severity.ERROR, summary="meh"), TTL).send
    stored = state.get_alert("prod:db_down")
    assert stored is not None
    assert (stored.severity, stored.summary, stored.occurrences) == (Severity.CRITICAL, "down", 4)


REFRESH = 300.0


def test_an_alert_that_keeps_occurring_is_refreshed_once_per_interval(
    state: StateBackend,
) -> None:
    t0 = time.time()
    assert state.raise_alert(record(at=t0), TTL, REFRESH).send
    decisions = [
        (offset, state.raise_alert(record(at=t0 + offset), TTL, REFRESH))
        for offset in (1.0, REFRESH - 1, REFRESH, REFRESH + 1, 2 * REFRESH - 1, 2 * REFRESH)
    ]
    assert [(offset, raised.send) for offset, raised in decisions] == [
        (1.0, False),
        (REFRESH - 1, False),
        (REFRESH, True),  # due: sent again, and the next one is due an interval later
        (REFRESH + 1, False),
        (2 * REFRESH - 1, False),
        (2 * REFRESH, True),
    ]
    refreshed = decisions[2][1]
    assert (refreshed.occurrences, refreshed.severity) == (4, Severity.ERROR)
    stored = state.get_alert("prod:db_down")
    assert stored is not None
    assert stored.occurrences == 7
    assert stored.last_seen_timestamp == pytest.approx(t0 + 2 * REFRESH)


def test_a_refresh_keeps_the_worst_severity_and_an_escalation_restarts_the_interval(
    state: StateBackend,
) -> None:
    t0 = time.time()
    state.raise_alert(record(at=t0, severity=Severity.WARNING), TTL, REFRESH)
    escalated = state.raise_alert(record(at=t0 + 100, severity=Severity.CRITICAL), TTL, REFRESH)
    assert (escalated.send, escalated.severity) == (True, None)
    assert not state.raise_alert(record(at=t0 + REFRESH), TTL, REFRESH).send
    refreshed = state.raise_alert(record(at=t0 + 100 + REFRESH), TTL, REFRESH)
    assert (refreshed.send, refreshed.severity) == (True, Severity.CRITICAL)


def test_without_refresh_only_the_first_trigger_is_sent(state: StateBackend) -> None:
    t0 = time.time()
    assert state.raise_alert(record(at=t0), TTL, 0.0).send
    for hours in range(1, 5):
        assert not state.raise_alert(record(at=t0 + hours * 3600), TTL, 0.0).send
    # The argument's default is off too: a backend used without it behaves as before.
    assert not state.raise_alert(record(at=t0 + 5 * 3600), TTL).send


def test_threads_racing_on_a_due_refresh_send_it_once(state: StateBackend) -> None:
    t0 = time.time()
    state.raise_alert(record(at=t0), TTL, REFRESH)
    start = threading.Barrier(8)
    sends: list[bool] = []
    lock = threading.Lock()

    def raise_many() -> None:
        start.wait(30)
        for i in range(25):
            raised = state.raise_alert(record(at=t0 + REFRESH + i), TTL, REFRESH)
            with lock:
                sends.append(raised.send)

    threads = [threading.Thread(target=raise_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(sends) == 200
    assert sends.count(True) == 1


def test_acknowledge_resolve_and_reopen(state: StateBackend) -> None:
    assert not state.acknowledge("prod:db_down")
    state.raise_alert(record(), TTL)
    assert state.acknowledge("prod:db_down")
    stored = state.get_alert("prod:db_down")
    assert stored is not None
    assert stored.acknowledged
    assert state.resolve("prod:db_down")
    assert state.get_alert("prod:db_down") is None
    assert not state.resolve("prod:db_down")
    reopened = state.raise_alert(record(), TTL)
    assert (reopened.send, reopened.occurrences) == (True, 1)


def test_active_alerts_lists_every_open_alert(state: StateBackend) -> None:
    for name in ("a", "b", "c"):
        state.raise_alert(record(f"prod:{name}"), TTL)
    state.resolve("prod:b")
    assert sorted(a.dedup_key for a in state.active_alerts()) == ["prod:a", "prod:c"]


def test_resolve_if_quiet(state: StateBackend) -> None:
    now = time.time()
    state.raise_alert(record(at=now, auto_resolve=True), TTL)
    remaining = state.resolve_if_quiet("prod:db_down", 60.0, now + 10)
    assert remaining == pytest.approx(50.0, abs=0.01)
    assert state.get_alert("prod:db_down") is not None
    assert state.resolve_if_quiet("prod:db_down", 60.0, now + 60) == 0.0
    assert state.get_alert("prod:db_down") is None
    assert state.resolve_if_quiet("prod:db_down", 60.0, now + 61) is None


def test_alerts_expire_after_their_ttl(state: StateBackend) -> None:
    state.raise_alert(record(), 0.2)
    assert state.get_alert("prod:db_down") is not None
    assert wait_until(lambda: state.get_alert("prod:db_down") is None)
    assert state.active_alerts() == []
    assert state.raise_alert(record(), TTL).send  # forgotten: a recurrence pages again


def test_a_repeat_keeps_the_alert_in_memory_for_its_ttl_after_it() -> None:
    state = MemoryState(unique_routing_key())
    start = time.time()
    assert state.raise_alert(record(at=start), 10.0).send
    assert not state.raise_alert(record(at=start + 8), 10.0).send
    # Open until 10 s after the last occurrence, not after the first.
    repeat = state.raise_alert(record(at=start + 15), 10.0)
    assert not repeat.send
    assert repeat.occurrences == 3
    # A shorter ttl never shortens what an earlier occurrence was promised.
    assert not state.raise_alert(record(at=start + 16), 1.0).send
    assert not state.raise_alert(record(at=start + 20), 1.0).send
    assert state.raise_alert(record(at=start + 26), 1.0).send


def test_health_pages_once_and_resolves_once(state: StateBackend) -> None:
    edges = []
    for _ in range(5):
        result = state.observe_health("prod:health_check:db", False, 3, 2)
        edges.append(result.edge)
    assert edges == [None, None, Edge.TRIGGER, None, None]
    assert state.health("prod:health_check:db") == HealthState(5, 0, True)
    edges = [state.observe_health("prod:health_check:db", True, 3, 2).edge for _ in range(4)]
    assert edges == [None, Edge.RESOLVE, None, None]
    assert state.health("prod:health_check:db") == HealthState(0, 4, False)
    assert state.health("prod:health_check:other") == HealthState()


def test_an_opposite_result_restarts_the_count(state: StateBackend) -> None:
    key = "prod:health_check:cache"
    for healthy in (False, True, False, True, False, True):
        assert state.observe_health(key, healthy, 2, 1).edge is None
    assert not state.health(key).down


def test_clear_forgets_alerts_and_health(state: StateBackend) -> None:
    state.raise_alert(record(), TTL)
    state.observe_health("prod:health_check:db", False, 1, 1)
    state.clear()
    assert state.get_alert("prod:db_down") is None
    assert state.active_alerts() == []
    assert state.health("prod:health_check:db") == HealthState()


def test_the_rate_budget_spends_per_minute_then_says_how_long_to_wait(
    state: StateBackend,
) -> None:
    budget = state.rate_budget(3)
    assert isinstance(budget, RateBudget)
    assert budget is state.rate_budget(3)
    assert [budget.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = budget.try_acquire()
    assert 0 < wait <= 60
    budget.reset()
    assert budget.try_acquire() == 0.0


def test_threads_racing_on_one_new_alert_send_it_once(state: StateBackend) -> None:
    start = threading.Barrier(8)
    sends: list[bool] = []
    lock = threading.Lock()

    def raise_many() -> None:
        start.wait(30)
        for _ in range(25):
            raised = state.raise_alert(record(), TTL)
            with lock:
                sends.append(raised.send)

    threads = [threading.Thread(target=raise_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sends.count(True) == 1
    stored = state.get_alert("prod:db_down")
    assert stored is not None
    assert stored.occurrences == 200


def test_racing_health_observations_flip_once(state: StateBackend) -> None:
    start = threading.Barrier(6)
    edges: list[Edge | None] = []
    lock = threading.Lock()

    def observe(healthy: bool) -> None:
        start.wait(30)
        for _ in range(20):
            edge = state.observe_health("prod:health_check:db", healthy, 2, 1).edge
            with lock:
                edges.append(edge)

    for healthy, expected in ((False, Edge.TRIGGER), (True, Edge.RESOLVE)):
        edges.clear()
        threads = [threading.Thread(target=observe, args=(healthy,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert edges.count(expected) == 1
        assert len([e for e in edges if e is not None]) == 1


# -- the rule, the factory and the helpers -----------------------------------------------


def test_next_health_is_the_documented_rule() -> None:
    state = HealthState()
    state = next_health(state, False, 2, 2)
    assert state == HealthState(1, 0, False)
    state = next_health(state, False, 2, 2)
    assert state == HealthState(2, 0, True, Edge.TRIGGER)
    state = next_health(state, True, 2, 2)
    assert state == HealthState(0, 1, True)
    state = next_health(state, False, 2, 2)  # still down: no second trigger
    assert state == HealthState(1, 0, True)
    state = next_health(next_health(state, True, 2, 2), True, 2, 2)
    assert state == HealthState(0, 2, False, Edge.RESOLVE)


def test_open_state_picks_the_backend_from_the_url(redis_url: str) -> None:
    from pd_integrations.state.redis import RedisState

    key = unique_routing_key()
    assert isinstance(open_state(None, key), MemoryState)
    assert isinstance(open_state("", key), MemoryState)
    assert isinstance(open_state("memory://", key), MemoryState)
    redis_state = open_state(with_query(redis_url, prefix="pdtest-open"), key)
    try:
        assert isinstance(redis_state, RedisState)
        assert redis_state.namespace == f"pdtest-open:{{{routing_key_hash(key)}}}"
        assert key not in repr(redis_state)
    finally:
        redis_state.close()
    for bad in ("postgres://db/1", "localhost:6379", "redis-cluster://x"):
        with pytest.raises(ConfigurationError, match="unsupported state URL"):
            open_state(bad, key)


def test_a_bad_redis_url_is_a_configuration_error() -> None:
    from pd_integrations.state.redis import RedisState

    with pytest.raises(ConfigurationError, match="invalid Redis URL"):
        RedisState("redis://127.0.0.1:port/0", unique_routing_key())
    with pytest.raises(ConfigurationError, match="braces"):
        RedisState("redis://127.0.0.1:6379/0", unique_routing_key(), prefix="a{b}")
    with pytest.raises(ConfigurationError, match="positive"):
        RedisState("redis://127.0.0.1:6379/0", unique_routing_key(), socket_timeout=0)


def test_the_state_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(environment.STATE_URL_VAR, " redis://cache:6379/2 ")
    assert environment.state_url() == "redis://cache:6379/2"
    assert environment.state_url("memory://") == "memory://"
    assert environment.state_url(environ={}) is None


def test_urls_and_keys_are_never_logged_in_full() -> None:
    assert safe_url("redis://:s3cret@cache:6379/0") == "redis://:****@cache:6379/0"
    assert safe_url("rediss://app:s3cret@cache:6380/1") == "rediss://app:****@cache:6380/1"
    assert safe_url("redis://cache:6379/0") == "redis://cache:6379/0"
    key = unique_routing_key()
    assert key not in routing_key_hash(key)
    assert routing_key_hash(key) == routing_key_hash(key)
    assert len(routing_key_hash(key)) == 16


def test_the_memory_budget_is_the_process_wide_one() -> None:
    key = unique_routing_key()
    assert MemoryState(key).rate_budget(120) is shared_budget(key, 120)
