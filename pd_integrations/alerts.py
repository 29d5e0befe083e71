"""AlertManager: deterministic dedup keys, suppression of open alerts, refresh, auto-resolve.

``alert()`` returns the dedup key at once; delivery happens on the dispatcher's worker
thread. An alert that is already open is not sent again (its occurrence count grows),
unless it comes back more severe, so a problem that repeats a thousand times pages once.
While it keeps occurring, its trigger is sent again at most once per ``refresh_after``
(the same dedup key, with the occurrence count and last-seen time): PagerDuty adds that
to its incident if open, and opens a new one if a responder resolved it meanwhile, so a
premature resolve cannot silence a problem that goes on. Which alerts are open is kept in
a :class:`~pd_integrations.state.StateBackend`: this process's memory by default, or
Redis shared by every worker (``state_url=``). What responders do in PagerDuty reaches it
through :meth:`AlertManager.mark_resolved` and :meth:`AlertManager.mark_acknowledged`,
which the webhook receiver calls.
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
from .dispatch import DEFAULT_MAX_QUEUE, Dispatcher, DispatchStats, with_occurrences
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
from .state import DEFAULT_ALERT_TTL, AlertRecord, StateBackend, open_state

_log = logging.getLogger("pd_integrations.alerts")

DEFAULT_AUTO_RESOLVE_AFTER = 1800.0
DEFAULT_REFRESH_AFTER = config.DEFAULT_REFRESH_AFTER
LAST_SEEN_KEY = "last_seen"
"""The ``custom_details`` key of a re-sent trigger's last occurrence (RFC 3339, UTC)."""


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


def _snapshot(record: AlertRecord) -> Alert:
    return Alert(
        record.dedup_key,
        record.summary,
        record.severity,
        record.alert_type,
        record.component,
        record.identifier,
        datetime.fromtimestamp(record.first_seen, UTC),
        datetime.fromtimestamp(record.last_seen, UTC),
        record.occurrences,
        record.acknowledged,
        record.auto_resolve,
    )


class AlertManager:
    """Raise, acknowledge and resolve alerts without ever waiting for PagerDuty.

    Every argument left out falls back to its environment variable (see
    :mod:`pd_integrations.config`). Without a routing key the manager is disabled: it
    warns once, sends nothing, and every call still works.

    ``state_url`` (else ``PAGERDUTY_STATE_URL``) says where open alerts, occurrence
    counts, health-check state and the rate budget live: ``memory://`` or unset for this
    process, ``redis://host:6379/0`` (or ``rediss://``, ``unix://``) to share them with
    every process and host using the same routing key. ``state`` passes a ready
    :class:`~pd_integrations.state.StateBackend` instead (the manager does not close it).

    ``spool`` (else ``PAGERDUTY_SPOOL``) is a file where events wait on disk until
    PagerDuty accepted them, so a crash or a kill loses nothing (see the "Delivery
    guarantees" page); ``shutdown_timeout`` (else ``PAGERDUTY_FLUSH_TIMEOUT``, else 2)
    bounds, in seconds, the flush at exit and on SIGTERM.

    ``refresh_after`` (else ``PAGERDUTY_REFRESH_AFTER``, else 300) is the least number of
    seconds between two triggers of an open alert that keeps occurring; ``0`` or
    ``"off"`` sends none but the first (and escalations).
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
        state_url: str | None = None,
        state: StateBackend | None = None,
        spool: str | os.PathLike[str] | None = None,
        shutdown_timeout: float | None = None,
        refresh_after: float | str | None = None,
    ) -> None:
        key = client.routing_key if client is not None else config.routing_key(routing_key)
        self.source = client.source if client is not None and not source else config.source(source)
        self.dedup_key_prefix = config.environment(dedup_key_prefix)
        self.auto_resolve_after = auto_resolve_after
        # Seconds between triggers of an open alert that keeps occurring; 0: never.
        self.refresh_after = config.resolve_refresh_after(refresh_after)
        self.client_url = config.client_url(client_url)
        # Stamped on every trigger's details (the ``release`` setting sets it).
        self.release: str | None = None
        self._dispatcher: Dispatcher | None = None
        if key:
            check_routing_key(key)
        self._owns_state = state is None
        if state is None:
            # Disabled (no key): nothing is sent, so nothing needs sharing.
            state = open_state(config.state_url(state_url) if key else None, key or "")
        self._state = state
        if key:
            if client is None:
                client = EventsClient(
                    key, source=self.source, base_url=base_url, timeout=timeout, scrubber=scrubber
                )
            budget = state.rate_budget(rate_limit) if rate_limit is not None else None
            self._dispatcher = Dispatcher(
                client,
                max_queue=max_queue,
                rate_limit=rate_limit,
                budget=budget,
                spool=spool,
                exit_flush_timeout=shutdown_timeout,
            )
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

    @property
    def state(self) -> StateBackend:
        """Where open alerts, occurrence counts and health-check state are kept."""
        return self._state

    def __repr__(self) -> str:
        key = self._dispatcher.client.routing_key if self._dispatcher else None
        return f"<AlertManager routing_key={mask_key(key)} state={self._state.description}>"

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
        class_: str | None = None,
        group: str | None = None,
        event_component: str | None = None,
    ) -> str:
        """Raise an alert and return its dedup key; delivery happens in the background.

        ``component`` is part of the dedup key and the event's ``component``, unless
        ``event_component`` (a route, a task: not part of the key) is given; ``class_``
        and ``group`` are the event's ``class`` and ``group``.

        Invalid arguments (empty summary, unknown severity, missing ``alert_type``) raise
        ``ValueError`` here; nothing about delivery ever raises.
        """
        fields = (class_, group, event_component or component)
        level = Severity.parse(severity)
        if not isinstance(summary, str) or not summary.strip():
            raise InvalidEventError("summary is required and must be a non-empty string")
        key = make_dedup_key(
            alert_type, prefix=self.dedup_key_prefix, component=component, identifier=identifier
        )
        now = time.time()
        raised = self._state.raise_alert(
            AlertRecord(
                key,
                summary,
                level,
                alert_type,
                component,
                identifier,
                now,
                now,
                1,
                False,
                auto_resolve,
            ),
            self._ttl(auto_resolve),
            self.refresh_after,
        )
        occurrences = raised.occurrences
        resolve_later = auto_resolve and self.auto_resolve_after is not None
        if not raised.send:
            if resolve_later:
                # Another process may have opened it: every process that sees it keeps a
                # timer, and the shared state lets exactly one of them send the resolve.
                self._resolver.ensure(key, self.auto_resolve_after or 0.0)
            # The hot path of a storm: build the event only if someone listens.
            if signals.event_suppressed.receivers:
                event = self._trigger(
                    summary, level, key, component, custom_details, alert_type, fields=fields
                )
                signals.emit(
                    signals.event_suppressed,
                    self,
                    event=event,
                    dedup_key=key,
                    occurrences=occurrences,
                )
            return key
        if raised.severity is not None:
            level = raised.severity  # a refresh keeps the worst severity it was raised with
        if occurrences > 1:
            # Came back more severe, or a refresh: say how often and when it last happened.
            details = dict(custom_details or {})
            details[LAST_SEEN_KEY] = datetime.fromtimestamp(now, UTC).isoformat()
            custom_details = details
        event = self._trigger(
            summary, level, key, component, custom_details, alert_type, links, images, fields
        )
        if occurrences > 1:
            event = with_occurrences(event, occurrences)
        self._send(event)
        if resolve_later:
            # Scheduled once per opened alert; recurrences only move last_seen, which the
            # timer checks when it fires.
            self._resolver.schedule(key, self.auto_resolve_after or 0.0)
        return key

    def _ttl(self, auto_resolve: bool) -> float:
        """How long the state remembers an alert after its last occurrence."""
        if auto_resolve and self.auto_resolve_after is not None:
            # Long enough for the auto-resolve timer to find it and send the resolve.
            return max(DEFAULT_ALERT_TTL, 2 * self.auto_resolve_after)
        return DEFAULT_ALERT_TTL

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
        fields: tuple[str | None, str | None, str | None] | None = None,
    ) -> TriggerEvent:
        details: dict[str, Any] = {"alert_type": alert_type}
        if custom_details:
            details.update(custom_details)
        if self.release and "release" not in details:
            details["release"] = self.release
        class_, group, shown = fields or (None, None, component)
        return TriggerEvent(
            summary,
            severity,
            self.source,
            dedup_key=dedup_key,
            component=shown,
            group=group,
            class_=class_,
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
        """Acknowledge an open alert; :class:`UnknownAlertError` if the state has none."""
        if not self._state.acknowledge(dedup_key):
            raise UnknownAlertError(f"no open alert with dedup key {dedup_key!r}")
        self._send(AcknowledgeEvent(dedup_key))

    def resolve(self, dedup_key: str) -> None:
        """Resolve an alert; sent even when the state does not know the key."""
        event = ResolveEvent(dedup_key)
        self._state.resolve(dedup_key)
        self._resolver.cancel(dedup_key)
        self._send(event)

    def mark_resolved(self, dedup_key: str) -> bool:
        """Record that PagerDuty closed the alert, without sending anything.

        Its next occurrence then triggers at once (PagerDuty opens a new incident for it)
        instead of waiting for a refresh. The webhook receiver calls this for an
        ``incident.resolved`` event; ``False`` when the alert was not open.
        """
        self._resolver.cancel(dedup_key)
        return self._state.resolve(dedup_key)

    def mark_acknowledged(self, dedup_key: str) -> bool:
        """Record that a responder acknowledged the alert in PagerDuty; sends nothing.

        Shown by ``get_alert(key).acknowledged``; ``False`` when the alert is not open.
        """
        return self._state.acknowledge(dedup_key)

    def active_alerts(self) -> list[Alert]:
        """Every open alert (of every process, with shared state)."""
        return [_snapshot(record) for record in self._state.active_alerts()]

    def get_alert(self, dedup_key: str) -> Alert | None:
        record = self._state.get_alert(dedup_key)
        return _snapshot(record) if record is not None else None

    def forget_all(self) -> None:
        """Forget every open alert and health state without resolving (tests, restarts).

        With shared state this forgets them for every process using the routing key.
        """
        self._state.clear()
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
        """Flush, stop the background threads and close the HTTP and Redis connections."""
        self._resolver.stop()
        _live.discard(self)
        flushed = True
        if self._dispatcher is not None:
            flushed = self._dispatcher.close(timeout)
            self._dispatcher.client.close()
        if self._owns_state:
            self._state.close()
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
        if self.auto_resolve_after is None:
            return
        # Each recurrence pushed the deadline; resolve only if it has not come back since.
        # Atomic in the state: of all the processes whose timers fire, one sends it.
        remaining = self._state.resolve_if_quiet(dedup_key, self.auto_resolve_after, time.time())
        if remaining is None:
            return
        if remaining > 0:
            self._resolver.schedule(dedup_key, remaining)
            return
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

    def ensure(self, dedup_key: str, delay: float) -> None:
        """Schedule unless a timer for ``dedup_key`` is already pending."""
        if dedup_key not in self._due or self._pid != os.getpid():
            self.schedule(dedup_key, delay)

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


def _trigger_lost(sender: object, **extra: Any) -> None:
    """The dispatcher dropped or gave up on a trigger: PagerDuty never opened that alert.

    Left open here, every recurrence would be suppressed and PagerDuty would never hear
    of the problem; closed, the next recurrence sends a fresh trigger.
    """
    event = extra.get("event")
    if not isinstance(event, TriggerEvent) or event.dedup_key is None:
        return
    for manager in list(_live):
        if manager._dispatcher is sender:
            manager.mark_resolved(event.dedup_key)
            return


# Connected for good (weak=False: a module-level function); drops and failures are rare.
signals.event_dropped.connect(_trigger_lost, weak=False)
signals.event_failed.connect(_trigger_lost, weak=False)


def live_managers() -> list[AlertManager]:
    """Every AlertManager not yet closed (the pytest plugin resets them between tests)."""
    return list(_live)
