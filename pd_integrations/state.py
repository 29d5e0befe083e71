"""Alert state: kept in this process, or shared by every process and host through Redis.

Four things decide what reaches PagerDuty, and with several workers each must be agreed
on by all of them, or fifty workers page fifty times:

- the **open alerts** (a repeat of an open alert is suppressed; acknowledge, resolve and
  auto-resolve are seen by everyone),
- when an open alert that keeps occurring is **refreshed** (its trigger sent again, at
  most once per ``refresh_after`` by the whole fleet, so that an incident someone
  resolved in PagerDuty while the problem went on is opened again),
- the **occurrence count** of each open alert,
- the **rate budget** of the routing key (PagerDuty's ~120 events per minute),
- the **health-check state** (consecutive failures/successes, and whether the check's
  alert is open), so N workers checking one database page once and resolve once,
- the **events owed** to PagerDuty: a trigger, resolve or acknowledge a process decided
  to send, recorded with a lease until PagerDuty accepted it, so another process sends
  it if that one dies first.

:class:`StateBackend` is that state's interface. :class:`MemoryState` keeps it in the
process (the default); ``RedisState`` (in :mod:`pd_integrations.state_redis`, needs the
``redis`` extra) shares it. :func:`open_state` picks one from a URL: ``memory://`` or
nothing for the process, ``redis://``, ``rediss://`` or ``unix://`` for Redis.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

from . import ratelimit
from .errors import ConfigurationError
from .events import Severity
from .ratelimit import RateBudget

DEFAULT_ALERT_TTL = 24 * 3600.0
"""How long an open alert is remembered after its last occurrence (seconds)."""
DEFAULT_LEASE = 30.0
"""Seconds a process owns the delivery of a new alert's trigger before another may send it."""
HEALTH_TTL = 7 * 24 * 3600.0
"""How long a health check's state is remembered after its last run (seconds)."""
MEMORY_SCHEMES = frozenset({"memory"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
# A sweep of expired entries every so many writes keeps memory bounded without a timer.
_SWEEP_EVERY = 256
# The refresh deadline of an alert that is never refreshed.
_NEVER = math.inf


class Alert(NamedTuple):
    """An open alert: what the state stores, and what
    :meth:`~pd_integrations.AlertManager.get_alert` and
    :meth:`~pd_integrations.AlertManager.active_alerts` return.

    A named tuple because one is built for every occurrence, storms included. Times are
    kept as Unix timestamps in seconds; :attr:`first_seen` and :attr:`last_seen` give
    them as UTC datetimes.
    """

    dedup_key: str
    summary: str
    severity: Severity
    alert_type: str
    component: str | None
    identifier: str | None
    first_seen_timestamp: float
    last_seen_timestamp: float
    """For an alert passed to :meth:`StateBackend.raise_alert`: the time of this occurrence."""
    occurrences: int = 1
    """Stored: the alert's count. Passed to :meth:`StateBackend.raise_alert`: how many
    occurrences this call records (more than 1 when repeats were counted meanwhile)."""
    acknowledged: bool = False
    auto_resolve: bool = False

    @property
    def first_seen(self) -> datetime:
        """When the alert was first raised (UTC)."""
        return datetime.fromtimestamp(self.first_seen_timestamp, UTC)

    @property
    def last_seen(self) -> datetime:
        """When the alert was last raised (UTC)."""
        return datetime.fromtimestamp(self.last_seen_timestamp, UTC)


class Raised(NamedTuple):
    """What :meth:`StateBackend.raise_alert` decided for one occurrence."""

    send: bool
    """The caller must send a trigger: the alert was not open, came back more severe, or
    is due for a refresh."""
    occurrences: int
    """Occurrences of the open alert, this one included (1 for a new alert)."""
    severity: Severity | None = None
    """For a refresh, the open alert's severity (the worst it was raised with), which the
    refreshed trigger must keep; ``None`` otherwise."""


class Owed(StrEnum):
    """A resolve or acknowledge a shared state records until PagerDuty accepted it."""

    RESOLVE = "resolve"
    ACKNOWLEDGE = "acknowledge"


class Edge(StrEnum):
    """A health check's state flip; only the observation that flipped it carries it."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class HealthState:
    """A health check's edge-trigger state after an observation."""

    failures: int = 0
    """Consecutive failed runs (of every process sharing the state)."""
    successes: int = 0
    """Consecutive successful runs."""
    down: bool = False
    """The check crossed its failure threshold and its alert is open."""
    edge: Edge | None = None
    """Set only for the one observation that flipped ``down``: its caller sends the event."""


class StateBackend(ABC):
    """The state one :class:`~pd_integrations.AlertManager` (one routing key) decides with.

    Every method is atomic with respect to every other user of the same state: of N
    processes raising the same new alert at once, exactly one is told to send it.
    Implementations never raise for an unavailable store; they fall back and warn.
    """

    description: str = "state"
    """Where the state lives, safe for logs (no password)."""
    decides_locally: bool = True
    """Every call is answered from this process's memory, at once. ``False`` for a remote
    store: the manager then makes the calls that need it on a background thread."""
    lease: float = DEFAULT_LEASE
    """Seconds a process owns the delivery of a trigger it must send (renewed while it
    lives); once expired, another process takes the trigger over."""

    @abstractmethod
    def raise_alert(self, alert: Alert, ttl: float, refresh_after: float = 0.0) -> Raised:
        """Record one occurrence of ``alert`` (opening it if needed), kept ``ttl`` seconds.

        ``alert.last_seen_timestamp`` is the time of this occurrence; a repeat keeps the stored
        summary unless it is more severe, which replaces severity and summary.

        With ``refresh_after`` > 0, a repeat at least that many seconds after the alert's
        last trigger is sent again (a refresh): of every caller sharing the state, exactly
        one is told to, and the next refresh is due ``refresh_after`` seconds later.
        """

    def raise_alert_locally(
        self, alert: Alert, ttl: float, refresh_after: float = 0.0
    ) -> Raised | None:
        """:meth:`raise_alert` if this process can decide it without a round trip, else
        ``None`` (the caller then calls :meth:`raise_alert` on a background thread)."""
        return self.raise_alert(alert, ttl, refresh_after) if self.decides_locally else None

    def flush(self) -> None:  # noqa: B027 - nothing is counted apart
        """Merge what this process counted on its own into the shared state."""

    def confirm_trigger(self, dedup_key: str) -> None:  # noqa: B027 - local: open at once
        """PagerDuty accepted the alert's trigger: it is open, no longer pending delivery."""

    def renew_leases(self, dedup_keys: list[str]) -> None:  # noqa: B027 - nothing to renew
        """This process still owes (and is sending) these alerts' triggers."""

    def take_expired(self, limit: int = 100) -> list[Alert]:
        """Pending alerts whose owner's lease expired, now owed by this process.

        The caller sends their triggers (with the same dedup keys). A process-local state
        dies with its process, so it never has any.
        """
        return []

    def resolve_owed(self, dedup_key: str) -> bool:
        """:meth:`resolve`, recording that this process owes PagerDuty the resolve.

        A shared state keeps the record (with this process's lease) until
        :meth:`confirm_owed`; if the lease expires first, :meth:`take_owed` hands the
        resolve to another process. A process-local state has nobody to hand it to.
        """
        return self.resolve(dedup_key)

    def acknowledge_owed(self, dedup_key: str) -> bool:
        """:meth:`acknowledge`, recording the acknowledge as owed like :meth:`resolve_owed`."""
        return self.acknowledge(dedup_key)

    def confirm_owed(self, owed: Owed, dedup_key: str) -> None:  # noqa: B027 - nothing kept
        """PagerDuty accepted the owed event (or refused it for good): no longer owed."""

    def renew_owed(self, owed: list[tuple[Owed, str]]) -> None:  # noqa: B027 - nothing kept
        """This process still owes (and is sending) these events."""

    def take_owed(self, limit: int = 100) -> list[tuple[Owed, str]]:
        """Owed events whose owner's lease expired, now owed by this process (to send)."""
        return []

    def forget_locally(self, dedup_key: str) -> bool:
        """Drop what this process alone knows of the alert, without a round trip.

        ``True`` if it knew the alert open. For a remote state, which the caller then
        updates in the background; a process-local state simply resolves it.
        """
        return self.resolve(dedup_key)

    def knows_open(self, dedup_key: str) -> bool:
        """Whether this process knows the alert open, without a round trip."""
        return self.get_alert(dedup_key) is not None

    @abstractmethod
    def get_alert(self, dedup_key: str) -> Alert | None:
        """The open alert with this key, if any."""

    @abstractmethod
    def active_alerts(self) -> list[Alert]:
        """Every open alert."""

    @abstractmethod
    def acknowledge(self, dedup_key: str) -> bool:
        """Mark an open alert acknowledged; ``False`` if it is not open."""

    @abstractmethod
    def resolve(self, dedup_key: str) -> bool:
        """Close the alert; ``False`` if it was not open."""

    @abstractmethod
    def resolve_if_quiet(self, dedup_key: str, quiet_for: float, now: float) -> float | None:
        """Close the alert if nothing raised it for ``quiet_for`` seconds before ``now``.

        Returns ``0.0`` when this call closed it (the caller sends the resolve, which a
        shared state records as owed, as :meth:`resolve_owed` does), the seconds still to
        wait when it recurred meanwhile, ``None`` when it is not open.
        """

    @abstractmethod
    def observe_health(
        self, key: str, healthy: bool, failure_threshold: int, recovery_threshold: int
    ) -> HealthState:
        """Count one run of the check ``key``; the result has the edge if this run flipped it."""

    @abstractmethod
    def health(self, key: str) -> HealthState:
        """The check's state without counting a run."""

    @abstractmethod
    def rate_budget(self, per_minute: int) -> RateBudget:
        """The routing key's send budget, shared as widely as this state is."""

    @abstractmethod
    def clear(self) -> None:
        """Forget every alert and health state (for tests and restarts)."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


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
        register_fork_safe(self)

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


# A recurrence this close to the deadline counts as quiet: timers fire a little early.
_QUIET_SLACK = 0.001


def next_health(
    state: HealthState, healthy: bool, failure_threshold: int, recovery_threshold: int
) -> HealthState:
    """The edge-trigger rule every backend applies to one run of a check.

    ``failure_threshold`` failures in a row open the alert, ``recovery_threshold``
    successes in a row then close it; any opposite result restarts the count, which is
    what keeps a brief disagreement between workers from flipping the state.
    """
    if healthy:
        successes = state.successes + 1
        if state.down and successes >= recovery_threshold:
            return HealthState(0, successes, False, Edge.RESOLVE)
        return HealthState(0, successes, state.down)
    failures = state.failures + 1
    if not state.down and failures >= failure_threshold:
        return HealthState(failures, 0, True, Edge.TRIGGER)
    return HealthState(failures, 0, state.down)


def routing_key_hash(routing_key: str) -> str:
    """A short, stable name for a routing key that reveals nothing of the key."""
    return hashlib.sha256(routing_key.encode("utf-8")).hexdigest()[:16]


def safe_url(url: str) -> str:
    """``url`` without its password, for logs, reprs and error messages.

    ``user:pass@`` becomes ``user:****@``; a user name alone (``token@host``, how some
    services take a key) becomes ``****@``.
    """
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        if parts.password is None:
            return urlunsplit(parts._replace(netloc=f"****@{netloc}"))
        user = f"{parts.username}:" if parts.username else ":"
        return urlunsplit(parts._replace(netloc=f"{user}****@{netloc}"))
    except ValueError:
        return "<unparsable URL>"


def state_backend_kind(url: str | None) -> Literal["memory", "redis"]:
    """Which backend a state URL names, without importing or connecting to anything.

    :raises ConfigurationError: for a scheme that is neither memory nor Redis.
    """
    if url is None or not url.strip():
        return "memory"
    url = url.strip()
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in MEMORY_SCHEMES:
        return "memory"
    if scheme in REDIS_SCHEMES:
        return "redis"
    raise ConfigurationError(
        f"unsupported state URL {safe_url(url)!r}: use memory://, redis://, rediss:// "
        "or unix:// (PAGERDUTY_STATE_URL)"
    )


def open_state(url: str | None, routing_key: str) -> StateBackend:
    """The state backend ``url`` names: ``None``/``memory://`` in-process, else Redis.

    :raises ConfigurationError: for an unknown scheme, or a Redis URL without the
        ``redis`` package installed.
    """
    if state_backend_kind(url) == "memory":
        return MemoryState(routing_key)
    assert url is not None
    url = url.strip()
    try:
        from .state_redis import RedisState  # the redis extra is optional: import late
    except ImportError as error:
        raise ConfigurationError(
            f"state URL {safe_url(url)!r} needs the redis package: "
            "pip install 'pd-integrations[redis]'"
        ) from error
    return RedisState(url, routing_key)


class ForkSafe(Protocol):
    """Something holding locks that a forked child must replace."""

    def _after_fork(self) -> None: ...


_fork_safe: weakref.WeakSet[ForkSafe] = weakref.WeakSet()


def register_fork_safe(obj: ForkSafe) -> None:
    """Have ``obj._after_fork()`` called in every forked child."""
    _fork_safe.add(obj)


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    for state in list(_fork_safe):
        state._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
