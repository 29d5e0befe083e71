"""The state kept in this process: the default, and Redis's fallback during an outage."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from pd_integrations.delivery import lifecycle, ratelimit
from pd_integrations.delivery.ratelimit import RateBudget

from .base import (
    HEALTH_TTL,
    Alert,
    HealthState,
    Raised,
    StateBackend,
    next_health,
)

# A sweep of expired entries every so many writes keeps memory bounded without a timer.
_SWEEP_EVERY = 256
# The refresh deadline of an alert that is never refreshed.
_NEVER = math.inf
# A recurrence this close to the deadline counts as quiet: timers fire a little early.
_QUIET_SLACK = 0.001


class _Entry:
    """Mutable, so the storm path (a repeat of an open alert) only bumps three fields."""

    __slots__ = (
        "acknowledged",
        "alert_type",
        "auto_resolve",
        "component",
        "expires",
        "first_seen",
        "identifier",
        "last_seen",
        "occurrences",
        "refresh_at",
        "severity",
        "summary",
    )

    def __init__(self, alert: Alert, expires: float, refresh_at: float) -> None:
        self.summary = alert.summary
        self.severity = alert.severity
        self.alert_type = alert.alert_type
        self.component = alert.component
        self.identifier = alert.identifier
        self.first_seen = alert.first_seen_timestamp
        self.last_seen = alert.last_seen_timestamp
        self.occurrences = alert.occurrences
        self.acknowledged = alert.acknowledged
        self.auto_resolve = alert.auto_resolve
        self.expires = expires
        # When a repeat is sent again (a refresh); infinity when refreshing is off.
        self.refresh_at = refresh_at

    def record(self, dedup_key: str) -> Alert:
        return Alert(
            dedup_key,
            self.summary,
            self.severity,
            self.alert_type,
            self.component,
            self.identifier,
            self.first_seen,
            self.last_seen,
            self.occurrences,
            self.acknowledged,
            self.auto_resolve,
        )


class MemoryState(StateBackend):
    """State kept in this process: what every process decided alone before Redis.

    Entries expire ``ttl`` seconds after their last occurrence, so a long-running process
    never accumulates alerts that nobody resolved. Thread-safe.

    :param routing_key: selects the process-wide rate budget of that key.
    :param clock: wall clock for health-state expiry (tests move it).
    """

    description = "memory"

    def __init__(self, routing_key: str = "", *, clock: Callable[[], float] = time.time) -> None:
        self.routing_key = routing_key
        self._clock = clock
        self._lock = threading.Lock()
        self._alerts: dict[str, _Entry] = {}
        self._health: dict[str, tuple[HealthState, float]] = {}
        self._writes = 0
        lifecycle.replace_locks_after_fork(self)

    # -- alerts --------------------------------------------------------------------------

    def raise_alert(self, alert: Alert, ttl: float, refresh_after: float = 0.0) -> Raised:
        now = alert.last_seen_timestamp
        with self._lock:
            self._writes += 1
            if not self._writes % _SWEEP_EVERY:
                self._sweep(now)
            entry = self._alerts.get(alert.dedup_key)
            if entry is None or entry.expires <= now:
                refresh_at = now + refresh_after if refresh_after > 0 else _NEVER
                self._alerts[alert.dedup_key] = _Entry(alert, now + ttl, refresh_at)
                return Raised(True, alert.occurrences)
            entry.occurrences += alert.occurrences
            entry.last_seen = now
            if now + ttl > entry.expires:
                entry.expires = now + ttl
            severity = alert.severity
            # Identity first: the storm repeats one severity, and rank is a look-up.
            if severity is not entry.severity and severity.rank > entry.severity.rank:
                # Came back worse: PagerDuty must see the new severity.
                entry.severity, entry.summary = alert.severity, alert.summary
                refreshed = None
            elif now >= entry.refresh_at:
                # Still occurring: PagerDuty may have closed its incident meanwhile.
                refreshed = entry.severity
            else:
                # The storm's path, suppressed: Raised(False, n) without the named tuple's
                # Python-level __new__.
                return tuple.__new__(Raised, (False, entry.occurrences))
            entry.refresh_at = now + refresh_after if refresh_after > 0 else _NEVER
            return Raised(True, entry.occurrences, refreshed)

    def get_alert(self, dedup_key: str) -> Alert | None:
        with self._lock:
            entry = self._alerts.get(dedup_key)
            if entry is None or entry.expires <= self._clock():
                return None
            return entry.record(dedup_key)

    def active_alerts(self) -> list[Alert]:
        now = self._clock()
        with self._lock:
            return [e.record(k) for k, e in self._alerts.items() if e.expires > now]

    def acknowledge(self, dedup_key: str) -> bool:
        with self._lock:
            entry = self._alerts.get(dedup_key)
            if entry is None or entry.expires <= self._clock():
                return False
            entry.acknowledged = True
            return True

    def resolve(self, dedup_key: str) -> bool:
        with self._lock:
            entry = self._alerts.pop(dedup_key, None)
            return entry is not None and entry.expires > self._clock()

    def resolve_if_quiet(self, dedup_key: str, quiet_for: float, now: float) -> float | None:
        with self._lock:
            entry = self._alerts.get(dedup_key)
            if entry is None or entry.expires <= now:
                return None
            remaining = entry.last_seen + quiet_for - now
            if remaining > _QUIET_SLACK:
                return remaining
            del self._alerts[dedup_key]
            return 0.0

    # -- health --------------------------------------------------------------------------

    def observe_health(
        self, key: str, healthy: bool, failure_threshold: int, recovery_threshold: int
    ) -> HealthState:
        now = self._clock()
        with self._lock:
            self._tick(now)
            state = self._current_health(key, now)
            state = next_health(state, healthy, failure_threshold, recovery_threshold)
            self._health[key] = (state, now + HEALTH_TTL)
            return state

    def health(self, key: str) -> HealthState:
        with self._lock:
            return self._current_health(key, self._clock())

    def _current_health(self, key: str, now: float) -> HealthState:
        stored = self._health.get(key)
        if stored is None or stored[1] <= now:
            return HealthState()
        return stored[0]

    # -- the rest ------------------------------------------------------------------------

    def rate_budget(self, per_minute: int) -> RateBudget:
        return ratelimit.shared_budget(self.routing_key, per_minute)

    def clear(self) -> None:
        with self._lock:
            self._alerts.clear()
            self._health.clear()

    def _tick(self, now: float) -> None:
        """Drop expired entries now and then (called with the lock held)."""
        self._writes += 1
        if not self._writes % _SWEEP_EVERY:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Drop expired entries (called with the lock held)."""
        for key in [k for k, e in self._alerts.items() if e.expires <= now]:
            del self._alerts[key]
        for key in [k for k, (_, expires) in self._health.items() if expires <= now]:
            del self._health[key]

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
