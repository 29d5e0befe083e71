"""AlertManager: deterministic dedup keys, suppression of open alerts, auto-resolve.

``alert()`` returns the dedup key at once; delivery happens on the dispatcher's worker
thread. An alert that is already open is not sent again (its occurrence count grows),
unless it comes back more severe, so a problem that repeats a thousand times pages once.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import config, signals
from .client import EventsClient
from .dispatch import DEFAULT_MAX_QUEUE, Dispatcher, DispatchStats
from .errors import InvalidEventError, UnknownAlertError
from .events import (
    AcknowledgeEvent,
    ChangeEvent,
    Event,
    ImageLike,
    LinkLike,
    ResolveEvent,
    Severity,
    TriggerEvent,
    check_routing_key,
    fit_dedup_key,
    mask_key,
)
from .ratelimit import DEFAULT_PER_MINUTE
from .scrub import DEFAULT_SCRUBBER, Scrubber

_log = logging.getLogger("pd_integrations.alerts")

DEFAULT_AUTO_RESOLVE_AFTER = 1800.0


@dataclass(frozen=True, slots=True)
class Alert:
    """A snapshot of an alert this manager has open."""

    dedup_key: str
    summary: str
    severity: Severity
    alert_type: str
    component: str | None
    identifier: str | None
    first_seen: datetime
    last_seen: datetime
    occurrences: int = 1
    acknowledged: bool = False
    auto_resolve: bool = False


class _Record:
    """The manager's own, mutable state of an open alert; users get :class:`Alert` copies.

    Mutable so that the storm path (a repeat of an open alert) only bumps two fields.
    """

    __slots__ = (
        "acknowledged",
        "alert_type",
        "auto_resolve",
        "component",
        "dedup_key",
        "first_seen",
        "identifier",
        "last_seen",
        "occurrences",
        "severity",
        "summary",
    )

    def __init__(
        self,
        dedup_key: str,
        summary: str,
        severity: Severity,
        alert_type: str,
        component: str | None,
        identifier: str | None,
        now: float,
        auto_resolve: bool,
    ) -> None:
        self.dedup_key = dedup_key
        self.summary = summary
        self.severity = severity
        self.alert_type = alert_type
        self.component = component
        self.identifier = identifier
        self.first_seen = self.last_seen = now
        self.occurrences = 1
        self.acknowledged = False
        self.auto_resolve = auto_resolve

    def snapshot(self) -> Alert:
        return Alert(
            self.dedup_key,
            self.summary,
            self.severity,
            self.alert_type,
            self.component,
            self.identifier,
            datetime.fromtimestamp(self.first_seen, UTC),
            datetime.fromtimestamp(self.last_seen, UTC),
            self.occurrences,
            self.acknowledged,
            self.auto_resolve,
        )


def make_dedup_key(
    alert_type: str,
    *,
    prefix: str | None = None,
    component: str | None = None,
    identifier: str | None = None,
) -> str:
    """``prefix:component:alert_type:identifier`` without the empty parts, at most 255 chars."""
    if not alert_type:
        raise ValueError("alert_type is required: it names the kind of problem")
    parts = (prefix, component, alert_type, identifier)
    return fit_dedup_key(":".join(part for part in parts if part))


def _summary_id(summary: str) -> str:
    return hashlib.sha256(summary.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class AlertManager:
    """Raise, acknowledge and resolve alerts without ever waiting for PagerDuty.

    Every argument left out falls back to its environment variable (see
    :mod:`pd_integrations.config`). Without a routing key the manager is disabled: it
    warns once, sends nothing, and every call still works.
    """

    def __init__(
        self,
        routing_key: str | None = None,
        *,
        source: str | None = None,
        dedup_key_prefix: str | None = None,
        auto_resolve_after: float | None = DEFAULT_AUTO_RESOLVE_AFTER,
        base_url: str | None = None,
        client_url: str | None = None,
        timeout: float = 10.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
        rate_limit: int | None = DEFAULT_PER_MINUTE,
        scrubber: Scrubber | None = DEFAULT_SCRUBBER,
        client: EventsClient | None = None,
    ) -> None:
        key = client.routing_key if client is not None else config.routing_key(routing_key)
        self.source = client.source if client is not None and not source else config.source(source)
        self.dedup_key_prefix = config.environment(dedup_key_prefix)
        self.auto_resolve_after = auto_resolve_after
        self.client_url = config.client_url(client_url)
        self._dispatcher: Dispatcher | None = None
        if key:
            check_routing_key(key)
            if client is None:
                client = EventsClient(
                    key, source=self.source, base_url=base_url, timeout=timeout, scrubber=scrubber
                )
            self._dispatcher = Dispatcher(client, max_queue=max_queue, rate_limit=rate_limit)
        self._active: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self._resolver = _AutoResolver(self)
        self._warned_disabled = False
        _live.add(self)

    @classmethod
    def from_env(cls, **overrides: Any) -> AlertManager:
        """A manager configured from the environment; keyword arguments override it."""
        return cls(**overrides)

    @property
    def enabled(self) -> bool:
        return self._dispatcher is not None

    @property
    def dispatcher(self) -> Dispatcher | None:
        return self._dispatcher

    def __repr__(self) -> str:
        key = self._dispatcher.client.routing_key if self._dispatcher else None
        return f"<AlertManager routing_key={mask_key(key)} active={len(self._active)}>"

    # -- raising alerts ------------------------------------------------------------------

    def alert(
        self,
        summary: str,
        severity: Severity | str,
        *,
        alert_type: str,
        component: str | None = None,
        identifier: str | None = None,
        custom_details: Mapping[str, Any] | None = None,
        auto_resolve: bool = False,
        links: Iterable[LinkLike] | None = None,
        images: Iterable[ImageLike] | None = None,
    ) -> str:
        """Raise an alert and return its dedup key; delivery happens in the background.

        Invalid arguments (empty summary, unknown severity, missing ``alert_type``) raise
        ``ValueError`` here; nothing about delivery ever raises.
        """
        level = Severity.parse(severity)
        if not isinstance(summary, str) or not summary.strip():
            raise InvalidEventError("summary is required and must be a non-empty string")
        key = make_dedup_key(
            alert_type, prefix=self.dedup_key_prefix, component=component, identifier=identifier
        )
        now = time.time()
        with self._lock:
            record = self._active.get(key)
            if record is None:
                record = self._active[key] = _Record(
                    key, summary, level, alert_type, component, identifier, now, auto_resolve
                )
                suppressed = False
            else:
                suppressed = level.rank <= record.severity.rank
                if not suppressed:  # came back worse: PagerDuty must see the new severity
                    record.severity, record.summary = level, summary
                record.occurrences += 1
                record.last_seen = now
            occurrences = record.occurrences
        if suppressed:
            # The hot path of a storm: build the event only if someone listens.
            if signals.event_suppressed.receivers:
                event = self._trigger(summary, level, key, component, custom_details, alert_type)
                signals.emit(
                    signals.event_suppressed,
                    self,
                    event=event,
                    dedup_key=key,
                    occurrences=occurrences,
                )
            return key
        self._send(
            self._trigger(summary, level, key, component, custom_details, alert_type, links, images)
        )
        if auto_resolve and self.auto_resolve_after is not None:
            # Scheduled once per opened alert; recurrences only move last_seen, which the
            # timer checks when it fires.
            self._resolver.schedule(key, self.auto_resolve_after)
        return key

    def _trigger(
        self,
        summary: str,
        severity: Severity,
        dedup_key: str,
        component: str | None,
        custom_details: Mapping[str, Any] | None,
        alert_type: str,
        links: Iterable[LinkLike] | None = None,
        images: Iterable[ImageLike] | None = None,
    ) -> TriggerEvent:
        details: dict[str, Any] = {"alert_type": alert_type}
        if custom_details:
            details.update(custom_details)
        return TriggerEvent(
            summary,
            severity,
            self.source,
            dedup_key=dedup_key,
            component=component,
            custom_details=details,
            links=links,
            images=images,
            client=self.source if self.client_url else None,
            client_url=self.client_url,
        )

    def critical(
        self, summary: str, custom_details: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """A ``critical`` alert that stays open until resolved."""
        return self._convenience(summary, Severity.CRITICAL, custom_details, False, kw)

    def error(
        self, summary: str, custom_details: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """An ``error`` alert that resolves itself once it stops recurring."""
        return self._convenience(summary, Severity.ERROR, custom_details, True, kw)

    def warning(
        self, summary: str, custom_details: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """A ``warning`` alert that resolves itself once it stops recurring."""
        return self._convenience(summary, Severity.WARNING, custom_details, True, kw)

    def _convenience(
        self,
        summary: str,
        severity: Severity,
        custom_details: Mapping[str, Any] | None,
        auto_resolve: bool,
        kw: dict[str, Any],
    ) -> str:
        kw.setdefault("auto_resolve", auto_resolve)
        if "alert_type" not in kw:
            # One alert per distinct summary: a shared key would hide every later problem
            # behind the first one.
            kw["alert_type"] = severity.value
            kw.setdefault("identifier", _summary_id(summary))
        return self.alert(summary, severity, custom_details=custom_details, **kw)

    def change(
        self,
        summary: str,
        *,
        custom_details: Mapping[str, Any] | None = None,
        links: Iterable[LinkLike] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record a change event (a deploy, a config change); it pages nobody."""
        self._send(
            ChangeEvent(
                summary,
                source=self.source,
                timestamp=timestamp or datetime.now(UTC),
                custom_details=custom_details,
                links=links,
            )
        )

    # -- acting on alerts ---------------------------------------------------------------

    def acknowledge(self, dedup_key: str) -> None:
        """Acknowledge an open alert; :class:`UnknownAlertError` if this manager has none."""
        with self._lock:
            record = self._active.get(dedup_key)
            if record is None:
                raise UnknownAlertError(f"no open alert with dedup key {dedup_key!r}")
            record.acknowledged = True
        self._send(AcknowledgeEvent(dedup_key))

    def resolve(self, dedup_key: str) -> None:
        """Resolve an alert; sent even when this manager does not know the key."""
        event = ResolveEvent(dedup_key)
        with self._lock:
            self._active.pop(dedup_key, None)
        self._resolver.cancel(dedup_key)
        self._send(event)

    def active_alerts(self) -> list[Alert]:
        with self._lock:
            return [record.snapshot() for record in self._active.values()]

    def get_alert(self, dedup_key: str) -> Alert | None:
        with self._lock:
            record = self._active.get(dedup_key)
            return record.snapshot() if record is not None else None

    def forget_all(self) -> None:
        """Forget every open alert without resolving it (for tests and restarts)."""
        with self._lock:
            self._active.clear()
        self._resolver.cancel_all()

    # -- delivery -----------------------------------------------------------------------

    def _send(self, event: Event) -> None:
        if self._dispatcher is not None:
            self._dispatcher.submit(event)
            return
        if not self._warned_disabled:
            self._warned_disabled = True
            _log.warning(
                "PagerDuty alerting is disabled: no routing key (set PAGERDUTY_ROUTING_KEY); "
                "alerts are recorded locally and not sent"
            )
        signals.emit(signals.event_dropped, self, event=event, reason="disabled")

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait for queued events to be delivered; ``False`` if some are still pending."""
        return self._dispatcher.flush(timeout) if self._dispatcher else True

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the background threads and close the HTTP connections."""
        self._resolver.stop()
        _live.discard(self)
        if self._dispatcher is None:
            return True
        flushed = self._dispatcher.close(timeout)
        self._dispatcher.client.close()
        return flushed

    def stats(self) -> DispatchStats:
        if self._dispatcher is not None:
            return self._dispatcher.stats()
        return DispatchStats(queued=0, sent=0, retried=0, failed=0, dropped=0, coalesced=0)

    def __enter__(self) -> AlertManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _auto_resolve(self, dedup_key: str, due: float) -> None:
        with self._lock:
            record = self._active.get(dedup_key)
            if record is None:
                return
            # Each recurrence pushed the deadline; resolve only if it has not come back since.
            quiet_for = time.time() - record.last_seen
            if self.auto_resolve_after is not None and quiet_for + 0.001 < self.auto_resolve_after:
                self._resolver.schedule(dedup_key, self.auto_resolve_after - quiet_for)
                return
            del self._active[dedup_key]
        self._send(ResolveEvent(dedup_key))


class _AutoResolver:
    """One timer thread per manager, however many alerts wait to auto-resolve."""

    def __init__(self, manager: AlertManager) -> None:
        self._manager = weakref.ref(manager)
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._pid = os.getpid()

    def schedule(self, dedup_key: str, delay: float) -> None:
        if self._pid != os.getpid():
            self._init_state()
        due = time.monotonic() + delay
        with self._lock:
            if self._stopped:
                return
            self._due[dedup_key] = due
            heapq.heappush(self._heap, (due, dedup_key))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="pd_integrations-auto-resolve", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def cancel(self, dedup_key: str) -> None:
        with self._lock:
            self._due.pop(dedup_key, None)

    def cancel_all(self) -> None:
        with self._lock:
            self._due.clear()
            self._heap.clear()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._due.clear()
            self._heap.clear()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopped:
                    if not self._heap:
                        self._changed.wait()
                        continue
                    due, key = self._heap[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        self._changed.wait(wait)
                        continue
                    heapq.heappop(self._heap)
                    if self._due.get(key) == due:  # else cancelled or rescheduled
                        del self._due[key]
                        break
                else:
                    return
            manager = self._manager()
            if manager is None:
                return
            try:
                manager._auto_resolve(key, due)
            except Exception:
                _log.exception("auto-resolve of %r failed", key)
            del manager


_live: weakref.WeakSet[AlertManager] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    for manager in list(_live):
        manager._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def live_managers() -> list[AlertManager]:
    """Every AlertManager not yet closed (the pytest plugin resets them between tests)."""
    return list(_live)
