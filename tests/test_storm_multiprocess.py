"""A storm in four real processes sharing Redis, against the emulator's 120/min budget.

Each worker is a separate interpreter (multiprocessing with ``spawn``) with its own
AlertManager, RequestMonitor and HealthMonitor, as gunicorn workers would have. They
raise the same errors and fail the same health check; PagerDuty (the emulator) must see
one trigger per distinct problem, no 429, and one resolve when the check recovers.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import pytest

from pd_integrations import AlertManager
from pd_integrations.emulator import Emulator
from pd_integrations.health import HealthMonitor
from pd_integrations.monitor import RequestInfo, RequestMonitor

from .redis_server import unique_routing_key, with_query

pytest_plugins = ["tests.redis_server"]

WORKERS = 4
ROUNDS = 5
REPEATS = 30
# Generous: four interpreters on a loaded two-core machine.
JOIN_TIMEOUT = 120.0
SYNC_TIMEOUT = 120.0
# Patient Redis timeouts, so a slow machine is not mistaken for a Redis outage.
STATE_OPTIONS = {"socket_timeout": 10}


class PaymentDeclinedError(Exception):
    pass


def charge_card() -> None:
    raise PaymentDeclinedError("card declined")


def load_profile() -> None:
    profile: dict[str, str] = {}
    print(profile["name"])


def render_invoice() -> None:
    _ = 1 / 0


PROBLEMS = (charge_card, load_profile, render_invoice)


def storm_worker(
    index: int,
    base_url: str,
    state_url: str,
    routing_key: str,
    database_up: Event,
    phase: Barrier,
) -> None:
    """One web worker: an error storm and a failing health check, then recovery."""
    alerts = AlertManager(
        routing_key, base_url=base_url, state_url=state_url, source=f"worker-{index}"
    )
    monitor = RequestMonitor(alerts)
    health = HealthMonitor(alerts)  # 2 failures in a row page, 1 success resolves
    health.register("database", database_up.is_set)
    request = RequestInfo(method="POST", route="/checkout")
    try:
        for _ in range(ROUNDS):
            for problem in PROBLEMS:
                for _ in range(REPEATS):
                    try:
                        problem()
                    except Exception as exc:
                        monitor.exception(exc, request, 500)
            health.run()
        # Everything raised so far reaches PagerDuty before the database recovers, as it
        # would in production, where a recovery comes many check intervals later.
        assert alerts.flush(SYNC_TIMEOUT)
        phase.wait(SYNC_TIMEOUT)  # the parent brings the database back
        phase.wait(SYNC_TIMEOUT)
        for _ in range(3):
            health.run()
        assert alerts.flush(SYNC_TIMEOUT)
    finally:
        alerts.close(SYNC_TIMEOUT)


def budget_worker(index: int, base_url: str, state_url: str, routing_key: str, stop: Event) -> None:
    """60 distinct alerts from each of four workers: twice PagerDuty's budget."""
    alerts = AlertManager(
        routing_key, base_url=base_url, state_url=state_url, source=f"worker-{index}"
    )
    try:
        for n in range(60):
            alerts.critical(f"worker {index} problem {n}")
        stop.wait(SYNC_TIMEOUT)
    finally:
        alerts.close(0)  # what the budget still holds back is dropped, on purpose


def run_workers(target: Any, args: list[tuple[Any, ...]]) -> list[SpawnProcess]:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=a, daemon=True) for a in args]
    for process in processes:
        process.start()
    return processes


def join(processes: list[SpawnProcess]) -> None:
    for process in processes:
        process.join(JOIN_TIMEOUT)
    stuck = [p for p in processes if p.is_alive()]
    for process in stuck:
        process.kill()
    assert not stuck, "a worker did not finish"
    assert [p.exitcode for p in processes] == [0] * len(processes)


def rejected(emulator: Emulator, status: int) -> int:
    return sum(1 for r in emulator.requests() if r.get("status") == status)


def test_a_storm_in_four_processes_pages_once_per_problem(
    redis_url: str, redis_prefix: str
) -> None:
    context = multiprocessing.get_context("spawn")
    database_up = context.Event()
    phase = context.Barrier(WORKERS + 1)
    routing_key = unique_routing_key()
    state_url = with_query(redis_url, prefix=redis_prefix, **STATE_OPTIONS)
    with Emulator(port=0, rate_limit_per_minute=120) as emulator:
        processes = run_workers(
            storm_worker,
            [(i, emulator.url, state_url, routing_key, database_up, phase) for i in range(WORKERS)],
        )
        try:
            phase.wait(SYNC_TIMEOUT)  # every worker has stormed and flushed
            database_up.set()
            phase.wait(SYNC_TIMEOUT)
        finally:
            join(processes)

        events = emulator.events()
        triggers = Counter(e["dedup_key"] for e in events if e["type"] == "trigger")
        resolves = Counter(e["dedup_key"] for e in events if e["type"] == "resolve")
        assert len(triggers) == len(PROBLEMS) + 1, triggers
        assert set(triggers.values()) == {1}, triggers
        (health_key,) = [k for k in triggers if k.endswith("health_check:database")]
        assert resolves == Counter({health_key: 1})
        assert rejected(emulator, 429) == 0
        alerts = emulator.alerts()
        assert sorted(a["status"] for a in alerts) == ["resolved"] + ["triggered"] * len(PROBLEMS)


def test_four_processes_share_one_rate_budget(redis_url: str, redis_prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    routing_key = unique_routing_key()
    state_url = with_query(redis_url, prefix=redis_prefix, **STATE_OPTIONS)
    with Emulator(port=0, rate_limit_per_minute=120) as emulator:
        processes = run_workers(
            budget_worker,
            [(i, emulator.url, state_url, routing_key, stop) for i in range(WORKERS)],
        )
        try:
            # 240 alerts want out; one shared budget lets 120 through in the minute.
            emulator.wait_for_events(120, timeout=SYNC_TIMEOUT)
            # Each dispatcher re-checks the budget every second: give them time to try,
            # and see none of them send beyond it (the window is a minute long).
            with pytest.raises(TimeoutError):
                emulator.wait_for_requests(121, timeout=3.0)
        finally:
            stop.set()
            join(processes)
        assert rejected(emulator, 429) == 0
        assert 120 <= len(emulator.events()) < 240
