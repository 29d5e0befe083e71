"""Helpers for the fault-injection suite: a fault mix, scripted outages, signal records.

Kept apart from the tests so that each test reads as what it proves.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pd_integrations import signals
from pd_integrations.client import RetryPolicy
from pd_integrations.emulator import Emulator
from pd_integrations.emulator.faults import OutageMode

from .transport import wait_until

SEED = 20240607
# Short enough that thousands of events with retries fit in seconds; the slow answers
# below wait well past it, so their 202s are lost on the way back.
CLIENT_TIMEOUT = 0.15
SLOW_ANSWER = 0.5
FAST_RETRY = RetryPolicy(base_delay=0.002, max_delay=0.05, rate_limited_base_delay=0.005)
FAULT_MIX: dict[str, Any] = {
    "error_rate": 0.08,  # 500, 502 and 503 alike
    "rate_limit_429_rate": 0.05,
    "drop_rate": 0.04,  # the connection closes before the event is processed
    "slow_rate": 0.004,  # the event is processed, its answer comes after the client gave up
    "slow_latency": SLOW_ANSWER,
}
OUTAGE_SECONDS = 0.5
# Background work on a busy 2-core machine: generous, never a timing assertion.
WAIT = 120.0


def routing_key(name: str) -> str:
    """A well-formed 32-character integration key per test, to keep their traffic apart."""
    return name.ljust(32, "0")[:32]


class OutageScript:
    """Starts a timed outage each time the emulator has accepted the given number of events.

    Used as a context manager around the run; leaving it waits for the script to finish
    and re-raises anything that went wrong in it (an outage that never started included).
    """

    def __init__(
        self,
        emulator: Emulator,
        plan: Iterable[tuple[int, OutageMode]],
        seconds: float = OUTAGE_SECONDS,
    ) -> None:
        self.emulator = emulator
        self.plan = list(plan)
        self.seconds = seconds
        self.started: list[OutageMode] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="outage-script", daemon=True)

    def _run(self) -> None:
        try:
            for accepted, mode in self.plan:
                self.emulator.wait_for_events(accepted, timeout=WAIT)
                self.emulator.set_faults(outage=True, outage_seconds=self.seconds, outage_mode=mode)
                self.started.append(mode)
                if not wait_until(lambda: not self.emulator.faults()["outage"], WAIT):
                    raise TimeoutError("a timed outage did not end")
        except BaseException as error:  # reported by __exit__ on the test's thread
            self._error = error

    def __enter__(self) -> OutageScript:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._thread.join(WAIT)
        if exc is None:
            assert not self._thread.is_alive(), "the outage script is still running"
            if self._error is not None:
                raise self._error
            assert self.started == [mode for _, mode in self.plan]


@dataclass
class SignalLog:
    """What the library signalled about one sender's events, recorded from any thread."""

    sender: object
    sent: list[Any] = field(default_factory=list)
    dropped: list[tuple[Any, str]] = field(default_factory=list)
    failed: list[Any] = field(default_factory=list)
    retried: list[Any] = field(default_factory=list)

    def _on_sent(self, sender: object, **kw: Any) -> None:
        self.sent.append(kw["event"])

    def _on_dropped(self, sender: object, **kw: Any) -> None:
        self.dropped.append((kw["event"], kw["reason"]))

    def _on_failed(self, sender: object, **kw: Any) -> None:
        self.failed.append(kw["event"])

    def _on_retried(self, sender: object, **kw: Any) -> None:
        self.retried.append(kw["event"])

    def _pairs(self) -> list[tuple[Any, Any]]:
        return [
            (signals.event_sent, self._on_sent),
            (signals.event_dropped, self._on_dropped),
            (signals.event_failed, self._on_failed),
            (signals.event_retried, self._on_retried),
        ]

    def __enter__(self) -> SignalLog:
        for signal, receiver in self._pairs():
            signal.connect(receiver, sender=self.sender)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signal, receiver in self._pairs():
            signal.disconnect(receiver, sender=self.sender)


def alerts_by_key(emulator: Emulator, key: str) -> dict[str, dict[str, Any]]:
    """The emulator's alerts for one routing key, by dedup key; fails on any duplicate."""
    alerts = emulator.alerts(routing_key=key)
    counts = Counter(alert["dedup_key"] for alert in alerts)
    doubled = sorted(dedup for dedup, n in counts.items() if n > 1)
    assert not doubled, f"{len(doubled)} dedup key(s) opened more than one alert: {doubled[:5]}"
    return {alert["dedup_key"]: alert for alert in alerts}


def assert_exactly(found: Iterable[str], expected: set[str]) -> None:
    """``found`` holds every expected dedup key once and nothing else."""
    found = set(found)
    missing = sorted(expected - found)
    unexpected = sorted(found - expected)
    assert not missing, f"{len(missing)} dedup key(s) never reached PagerDuty: {missing[:5]}"
    assert not unexpected, f"{len(unexpected)} unexpected dedup key(s): {unexpected[:5]}"


def assert_every_fault_happened(emulator: Emulator) -> None:
    """The run really met each kind of fault (else the test proves less than it says)."""
    requests = emulator.requests()
    by_fault: dict[str | None, set[int | None]] = {}
    for request in requests:
        by_fault.setdefault(request["fault"], set()).add(request["status"])
    assert by_fault.get("error_rate") == {500, 502, 503}
    assert by_fault.get("rate_limit_429_rate") == {429}
    assert by_fault.get("drop_rate") == {None}
    # One outage that closed connections, one that answered 503.
    assert by_fault.get("outage") == {None, 503}
