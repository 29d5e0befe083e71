"""The interface of alert state, and the values every backend trades in.

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

:class:`StateBackend` is that state's interface; :mod:`pd_integrations.state` lists the
backends and opens one from a URL.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from pd_integrations.delivery.ratelimit import RateBudget
from pd_integrations.errors import ConfigurationError
from pd_integrations.events import Severity

DEFAULT_ALERT_TTL = 24 * 3600.0
"""How long an open alert is remembered after its last occurrence (seconds)."""
DEFAULT_LEASE = 30.0
"""Seconds a process owns the delivery of a new alert's trigger before another may send it."""
HEALTH_TTL = 7 * 24 * 3600.0
"""How long a health check's state is remembered after its last run (seconds)."""
MEMORY_SCHEMES = frozenset({"memory"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


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
