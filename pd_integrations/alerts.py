"""AlertManager: deterministic dedup keys, suppression of open alerts, refresh, auto-resolve.

``alert()`` returns the dedup key at once; delivery happens on the dispatcher's worker
thread. An alert that is already open is not sent again (its occurrence count grows),
unless it comes back more severe, so a problem that repeats a thousand times pages once.
While it keeps occurring, its trigger is sent again at most once per ``refresh_after``
(the same dedup key, with the occurrence count and last-seen time): PagerDuty adds that
to its incident if open, and opens a new one if a responder resolved it meanwhile, so a
premature resolve cannot silence a problem that goes on. Which alerts are open is kept in
a :class:`~pd_integrations.state.base.StateBackend`: this process's memory by default, or
Redis shared by every worker (``state_url=``). What responders do in PagerDuty reaches it
through :meth:`AlertManager.mark_resolved` and :meth:`AlertManager.mark_acknowledged`,
which the webhook receiver calls.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pd_integrations import environment
from pd_integrations.delivery import lifecycle
from pd_integrations.delivery.alarm import DeliveryAlarm
from pd_integrations.delivery.dispatcher import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_STALL_AFTER,
    DeliveryHealth,
    Dispatcher,
    DispatchStats,
    with_occurrences,
)
from pd_integrations.delivery.ratelimit import DEFAULT_PER_MINUTE
from pd_integrations.state import open_state
from pd_integrations.state.base import DEFAULT_ALERT_TTL, Owed, Raised, StateBackend
from pd_integrations.state.base import Alert as Alert  # public here, where it always was

from . import signals
from .client import EventsClient
from .errors import InvalidEventError, UnknownAlertError
from .events import (
    MAX_DEDUP_KEY,
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
from .policy import BeforeSend, BeforeSendHook, Hint, Tally, as_hook, full_hint
from .scrub import DEFAULT_SCRUBBER, Scrubber

_log = logging.getLogger("pd_integrations.alerts")

# An event's class, group and component, as the caller gave them (see AlertManager.alert).
_EventFields = tuple[str | None, str | None, str | None]

DELIVERY_ALERT_KEY_VAR = "PAGERDUTY_DELIVERY_ALERT_ROUTING_KEY"

DEFAULT_AUTO_RESOLVE_AFTER = 1800.0
DEFAULT_REFRESH_AFTER = environment.DEFAULT_REFRESH_AFTER
LAST_SEEN_KEY = "last_seen"
"""The ``custom_details`` key of a re-sent trigger's last occurrence (RFC 3339, UTC)."""


def make_dedup_key(
    alert_type: str,
    *,
    prefix: str | None = None,
    component: str | None = None,
    identifier: str | None = None,
) -> str:
    """``prefix:component:alert_type:identifier`` without the empty parts, at most 255 chars."""
    return _dedup_key(alert_type, prefix, component, identifier)


def _dedup_key(
    alert_type: str, prefix: str | None, component: str | None, identifier: str | None
) -> str:
    """:func:`make_dedup_key`, positional: every occurrence of a storm computes one."""
    if not alert_type:
        raise ValueError("alert_type is required: it names the kind of problem")
    if prefix or component or identifier:
        key = ":".join(filter(None, (prefix, component, alert_type, identifier)))
    else:
        key = ":".join((alert_type,))  # alert_type itself, or TypeError if no str
    return key if len(key) <= MAX_DEDUP_KEY else fit_dedup_key(key)


def _summary_id(summary: str) -> str:
    return hashlib.sha256(summary.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class AlertManager:
    """Raise, acknowledge and resolve alerts without ever waiting for PagerDuty.

    Every argument left out falls back to its environment variable (see
    :mod:`pd_integrations.environment`). Without a routing key the manager is disabled: it
    warns once, sends nothing, and every call still works.

    ``state_url`` (else ``PAGERDUTY_STATE_URL``) says where open alerts, occurrence
    counts, health-check state and the rate budget live: ``memory://`` or unset for this
    process, ``redis://host:6379/0`` (or ``rediss://``, ``unix://``) to share them with
    every process and host using the same routing key. ``state`` passes a ready
    :class:`~pd_integrations.state.base.StateBackend` instead (the manager does not close it).

    ``spool`` (else ``PAGERDUTY_SPOOL``) is a file where events wait on disk until
    PagerDuty accepted them, so a crash or a kill loses nothing (see the "Delivery
    guarantees" page); ``shutdown_timeout`` (else ``PAGERDUTY_FLUSH_TIMEOUT``, else 2)
    bounds, in seconds, the flush at exit and on SIGTERM.

    ``refresh_after`` (else ``PAGERDUTY_REFRESH_AFTER``, else 300) is the least number of
    seconds between two triggers of an open alert that keeps occurring; ``0`` or
    ``"off"`` sends none but the first (and escalations).

    ``before_send(event, hint)`` (a callable, or its dotted path) sees every trigger
    about to be queued and returns it, changed or not, or ``None`` to drop it (see
    :mod:`pd_integrations.policy`); a hook that fails never loses the trigger.
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
        delivery_alert_routing_key: str | None = None,
        delivery_stall_after: float = DEFAULT_STALL_AFTER,
        before_send: BeforeSend | BeforeSendHook | str | None = None,
    ) -> None:
        key = client.routing_key if client is not None else environment.routing_key(routing_key)
        self.source = (
            client.source if client is not None and not source else environment.source(source)
        )
        self.dedup_key_prefix = environment.environment(dedup_key_prefix)
        self.auto_resolve_after = auto_resolve_after
        # Seconds between triggers of an open alert that keeps occurring; 0: never.
        self.refresh_after = environment.resolve_refresh_after(refresh_after)
        self.client_url = environment.client_url(client_url)
        # Stamped on every trigger's details (the ``release`` setting sets it).
        self.release: str | None = None
        self._dispatcher: Dispatcher | None = None
        if key:
            check_routing_key(key)
        self._owns_state = state is None
        if state is None:
            # Disabled (no key): nothing is sent, so nothing needs sharing.
            state = open_state(environment.state_url(state_url) if key else None, key or "")
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
        self._alarm: DeliveryAlarm | None = None
        alarm_key = delivery_alert_routing_key or environment.env_value(DELIVERY_ALERT_KEY_VAR)
        if self._dispatcher is not None and alarm_key:
            self._alarm = DeliveryAlarm(
                self._dispatcher,
                Dispatcher(
                    EventsClient(
                        check_routing_key(alarm_key),
                        source=self.source,
                        base_url=base_url,
                        timeout=timeout,
                        scrubber=scrubber,
                    )
                ),
                stall_after=delivery_stall_after,
                source=self.source,
            )
        self._resolver = _AutoResolver(self)
        self._background = _Background(self, self._state.lease)
        if key and not self._state.decides_locally:
            # Its sweep delivers what dead processes owed, even if this one never alerts.
            self._background.start()
        self._warned_disabled = False
        self.before_send = as_hook(before_send)
        self._policy_drops = Tally()
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
        # getattr: a repr may be asked for while __init__ failed half-way (a traceback).
        dispatcher = getattr(self, "_dispatcher", None)
        state = getattr(self, "_state", None)
        key = dispatcher.client.routing_key if dispatcher else None
        where = state.description if state is not None else "-"
        return f"<{type(self).__name__} routing_key={mask_key(key)} state={where}>"

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
        hint: Hint | None = None,
        class_: str | None = None,
        group: str | None = None,
        event_component: str | None = None,
    ) -> str:
        """Raise an alert and return its dedup key; delivery happens in the background.

        ``component`` is part of the dedup key and the event's ``component``, unless
        ``event_component`` (a route, a task: not part of the key) is given; ``class_``
        and ``group`` are the event's ``class`` and ``group``.

        Invalid arguments (empty summary, unknown severity, missing ``alert_type``) raise
        ``ValueError`` here; nothing about delivery ever raises. ``hint`` tells policy
        what caused the alert (see :mod:`pd_integrations.policy`).
        """
        level = Severity.parse(severity)
        if not isinstance(summary, str) or not summary.strip():
            raise InvalidEventError("summary is required and must be a non-empty string")
        key = _dedup_key(alert_type, self.dedup_key_prefix, component, identifier)
        now = time.time()
        # Alert(...) without the named tuple's Python-level __new__: one per occurrence.
        record: Alert = tuple.__new__(
            Alert,
            (
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
        )
        raised = self._state.raise_alert_locally(
            record,
            self._ttl(auto_resolve) if auto_resolve else DEFAULT_ALERT_TTL,
            self.refresh_after,
        )
        if (
            raised is not None
            and not raised.send
            and not auto_resolve
            and not signals.event_suppressed.receivers
        ):
            return key  # the storm's path: suppressed, with nobody to tell
        fields = (class_, group, event_component or component)
        if raised is None:
            # The state needs a round trip: never on the caller's thread (an event loop,
            # a request). The background thread decides and sends.
            if custom_details:
                custom_details = dict(custom_details)  # frozen now, as submit() would
            decision = _Decision(record, custom_details, links, images, hint, fields)
            if self._background.defer(decision):
                return key
            # Too many decisions waiting (the state hangs): send rather than risk silence.
            raised = Raised(True, 1)
        self._decided(record, raised, custom_details, links, images, hint, fields)
        return key

    def _decide(self, decision: _Decision) -> None:
        """On the background thread: the state's verdict on a deferred occurrence."""
        record = decision.record._replace(
            last_seen_timestamp=decision.last_seen, occurrences=decision.occurrences
        )
        raised = self._state.raise_alert(record, self._ttl(record.auto_resolve), self.refresh_after)
        self._decided(
            record,
            raised,
            decision.custom_details,
            decision.links,
            decision.images,
            decision.hint,
            decision.fields,
        )

    def _decided(
        self,
        record: Alert,
        raised: Raised,
        custom_details: Mapping[str, Any] | None,
        links: Iterable[LinkLike] | None,
        images: Iterable[ImageLike] | None,
        hint: Hint | None = None,
        fields: _EventFields = (None, None, None),
    ) -> None:
        key, summary, level = record.dedup_key, record.summary, record.severity
        alert_type, component, auto_resolve = (
            record.alert_type,
            record.component,
            record.auto_resolve,
        )
        now = record.last_seen_timestamp
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
            return
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
        if self.before_send is not None:
            kept = self._before_send(self.before_send, event, alert_type, hint)
            if kept is None:
                return
            event = kept
        self._send_owed(event)
        if resolve_later:
            # Scheduled once per opened alert; recurrences only move last_seen, which the
            # timer checks when it fires.
            self._resolver.schedule(key, self.auto_resolve_after or 0.0)

    def _send_owed(self, event: TriggerEvent) -> None:
        """Send a trigger the shared state made this process the owner of."""
        if not self._state.decides_locally and event.dedup_key is not None:
            self._background.owe(event.dedup_key)
        self._send(event)

    def _send_owed_action(self, owed: Owed, dedup_key: str) -> None:
        """Send a resolve or acknowledge that the shared state records as this
        process's to deliver (renewed by the sweep until PagerDuty accepted it)."""
        if not self._state.decides_locally:
            self._background.owe(dedup_key, owed)
        if owed is Owed.RESOLVE:
            self._send(ResolveEvent(dedup_key))
        else:
            self._send(AcknowledgeEvent(dedup_key))

    def _sweep(self) -> None:
        """On the background thread, every third of the lease: keep the events this
        process still sends owned, and send those whose owner's lease expired."""
        owed = self._background.owed()
        if owed:
            self._state.renew_leases(owed)
        actions = self._background.owed_actions()
        if actions:
            self._state.renew_owed(actions)
        for action, key in self._state.take_owed():
            _log.warning(
                "sending the %s of alert %r for a process that did not deliver it", action, key
            )
            self._send_owed_action(action, key)
        for record in self._state.take_expired():
            _log.warning(
                "sending the trigger of alert %r for a process that did not deliver it",
                record.dedup_key,
            )
            details: dict[str, Any] = {LAST_SEEN_KEY: record.last_seen.isoformat()}
            event = self._trigger(
                record.summary,
                record.severity,
                record.dedup_key,
                record.component,
                details,
                record.alert_type,
            )
            self._send_owed(with_occurrences(event, record.occurrences))
            if record.auto_resolve and self.auto_resolve_after is not None:
                self._resolver.ensure(record.dedup_key, self.auto_resolve_after)

    def _before_send(
        self, hook: BeforeSendHook, event: TriggerEvent, alert_type: str, hint: Hint | None
    ) -> TriggerEvent | None:
        """The trigger ``before_send`` made of ``event``; ``None``: dropped, and forgotten.

        Forgotten by the state too: an alert PagerDuty never heard of must not stay
        open here, or its recurrences would be suppressed instead of asked about again.
        """
        client = self._dispatcher.client if self._dispatcher is not None else None
        kept = hook(event, full_hint(alert_type, hint), client.prepare if client else None)
        if kept is None:
            key = event.dedup_key or ""
            self._state.resolve(key)
            self._policy_drops.suppressed(self, key, "before_send", event)
        return kept

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
        """Acknowledge an open alert; :class:`UnknownAlertError` if the state has none.

        With shared state this is the one call that waits for Redis (one round trip, at
        most its socket timeout): it must tell whether the alert is open. The acknowledge
        is recorded there as this process's to send, and sent by another if it dies first.
        """
        if not self._state.acknowledge_owed(dedup_key):
            raise UnknownAlertError(f"no open alert with dedup key {dedup_key!r}")
        self._send_owed_action(Owed.ACKNOWLEDGE, dedup_key)

    def resolve(self, dedup_key: str) -> None:
        """Resolve an alert; sent even when the state does not know the key.

        With shared state the shared record is closed in the background (no round trip
        here), and the resolve is recorded as this process's to send until PagerDuty
        accepted it: if this process dies first, another one sends it.
        """
        self._resolver.cancel(dedup_key)
        if self._state.decides_locally:
            self._state.resolve(dedup_key)
        else:
            self._state.forget_locally(dedup_key)
            # Queued before the send: the background runs it before the confirmation.
            self._background.run(functools.partial(self._state.resolve_owed, dedup_key))
        self._send_owed_action(Owed.RESOLVE, dedup_key)

    def mark_resolved(self, dedup_key: str) -> bool:
        """Record that PagerDuty closed the alert, without sending anything.

        Its next occurrence then triggers at once (PagerDuty opens a new incident for it)
        instead of waiting for a refresh. The webhook receiver calls this for an
        ``incident.resolved`` event; ``False`` when the alert was not open. With shared
        state, Redis is updated in the background and the answer is whether this process
        knew the alert open.
        """
        self._resolver.cancel(dedup_key)
        if self._state.decides_locally:
            return self._state.resolve(dedup_key)
        known = self._state.forget_locally(dedup_key)
        self._background.run(functools.partial(self._state.resolve, dedup_key))
        return known

    def mark_acknowledged(self, dedup_key: str) -> bool:
        """Record that a responder acknowledged the alert in PagerDuty; sends nothing.

        Shown by ``get_alert(key).acknowledged``; ``False`` when the alert is not open.
        With shared state, Redis is updated in the background and the answer is whether
        this process knew the alert open.
        """
        if self._state.decides_locally:
            return self._state.acknowledge(dedup_key)
        self._background.run(functools.partial(self._state.acknowledge, dedup_key))
        return self._state.knows_open(dedup_key)

    def in_background(self, job: Callable[[], object]) -> None:
        """Run ``job`` (which uses the state) where a remote state's round trips belong.

        On the manager's background thread, in order with its other shared-state work,
        when the state is remote; at once otherwise. Dropped once the manager is closed.
        """
        if self._state.decides_locally:
            job()
        else:
            self._background.run(job)

    def active_alerts(self) -> list[Alert]:
        """Every open alert (of every process, with shared state).

        With shared state this reads Redis on the caller's thread (at most its socket
        timeout), after letting this process's queued updates reach it (at most
        :data:`READ_WAIT` seconds), so it sees its own resolves and acknowledges.
        """
        self._catch_up()
        return list(self._state.active_alerts())  # the caller's own, as a router extends it

    def get_alert(self, dedup_key: str) -> Alert | None:
        """The open alert with this key; reads Redis with shared state, as
        :meth:`active_alerts` does."""
        self._catch_up()
        return self._state.get_alert(dedup_key)

    def _catch_up(self) -> None:
        if not self._state.decides_locally:
            self._background.wait_idle(READ_WAIT)

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
        """Wait for queued events to be delivered; ``False`` if some are still pending.

        With shared state, occurrences still waiting for the state's verdict are decided
        and the repeats counted in this process are merged first (within ``timeout``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._state.decides_locally:
            # The repeats counted locally, too: afterwards the shared count includes them.
            self._background.run(self._state.flush)
        if not self._background.wait_idle(timeout):
            return False
        if self._dispatcher is None:
            return True
        return self._dispatcher.flush(
            None if deadline is None else max(0.0, deadline - time.monotonic())
        )

    def health(self) -> DeliveryHealth | None:
        """Whether this manager's events reach PagerDuty (``None`` when disabled).

        See :meth:`~pd_integrations.delivery.dispatcher.Dispatcher.health`; the stall threshold is
        ``delivery_stall_after``.
        """
        if self._dispatcher is None:
            return None
        stall = self._alarm.stall_after if self._alarm is not None else DEFAULT_STALL_AFTER
        return self._dispatcher.health(stall)

    @property
    def delivery_alarm(self) -> DeliveryAlarm | None:
        """The watcher of ``delivery_alert_routing_key``, if one was given."""
        return self._alarm

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the background threads and close the HTTP and Redis connections."""
        self._resolver.stop()
        if self._alarm is not None:
            self._alarm.stop()
            self._alarm.alarm.close(timeout)
            self._alarm.alarm.client.close()
        flushed = self._background.stop(timeout)
        _live.discard(self)
        if self._dispatcher is not None:
            flushed = self._dispatcher.close(timeout) and flushed
            self._dispatcher.client.close()
        if self._owns_state:
            self._state.close()
        return flushed

    def stats(self) -> DispatchStats:
        if self._dispatcher is not None:
            counts = self._dispatcher.stats()
        else:
            counts = DispatchStats(queued=0, sent=0, retried=0, failed=0, dropped=0, coalesced=0)
        return replace(counts, suppressed_by_policy=self._policy_drops.value)

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
        self._send_owed_action(Owed.RESOLVE, dedup_key)


class _AutoResolver:
    """One timer thread per manager, however many alerts wait to auto-resolve."""

    def __init__(self, manager: AlertManager) -> None:
        self._manager = weakref.ref(manager)
        self._init_state()
        # A forked child starts with no timers: the parent's are the parent's.
        lifecycle.replace_locks_after_fork(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._thread: threading.Thread | None = None
        self._stopped = False

    _after_fork = _init_state

    def schedule(self, dedup_key: str, delay: float) -> None:
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
        if dedup_key not in self._due:
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


READ_WAIT = 1.0
"""Seconds a read of a remote state waits for this process's queued updates to reach it."""

# Occurrences waiting for the state's verdict, at most (distinct alerts); beyond, a new
# alert is sent at once: a duplicate trigger is better than a silenced page.
MAX_DEFERRED = 1000


class _Decision:
    """An occurrence the state must decide, and the repeats that came while it waited."""

    __slots__ = (
        "custom_details",
        "fields",
        "hint",
        "images",
        "last_seen",
        "links",
        "occurrences",
        "record",
    )

    def __init__(
        self,
        record: Alert,
        custom_details: Mapping[str, Any] | None,
        links: Iterable[LinkLike] | None,
        images: Iterable[ImageLike] | None,
        hint: Hint | None = None,
        fields: _EventFields = (None, None, None),
    ) -> None:
        self.record = record
        self.custom_details = custom_details
        self.links = links
        self.images = images
        self.hint = hint
        self.fields = fields
        self.occurrences = record.occurrences
        self.last_seen = record.last_seen_timestamp

    def merge(self, later: _Decision) -> None:
        self.occurrences += later.occurrences
        self.last_seen = max(self.last_seen, later.last_seen)
        if later.record.severity.rank > self.record.severity.rank:
            # Worse: PagerDuty must see the worse one, with its details.
            self.record = later.record
            self.custom_details, self.links, self.images = (
                later.custom_details,
                later.links,
                later.images,
            )


class _Background:
    """The thread that makes a manager's round trips to a remote state (Redis).

    Occurrences wait here for the state's verdict, merged per dedup key, so a storm of a
    brand-new problem costs one round trip, not one per request. Every third of the
    lease it also renews the leases of the triggers this process still sends and takes
    over those whose owner died. Nothing runs for a process-local state.
    """

    def __init__(self, manager: AlertManager, lease: float) -> None:
        self._manager = weakref.ref(manager)
        self._period = lease / 3
        self._init_state()
        # A forked child starts with nothing waiting: the parent's work is the parent's.
        lifecycle.replace_locks_after_fork(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._deciding: dict[str, _Decision] = {}
        self._order: list[str] = []
        self._jobs: list[Callable[[], object]] = []
        self._owed: set[str] = set()
        self._owed_actions: set[tuple[Owed, str]] = set()
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    _after_fork = _init_state

    def _start(self) -> None:
        """Under the lock."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="pd_integrations-shared-state", daemon=True
            )
            self._thread.start()
        self._changed.notify_all()

    def start(self) -> None:
        with self._lock:
            if not self._stopped:
                self._start()

    def defer(self, decision: _Decision) -> bool:
        """Queue ``decision``; ``False`` when too many wait or the manager is closed."""
        key = decision.record.dedup_key
        with self._lock:
            if self._stopped:
                return False
            waiting = self._deciding.get(key)
            if waiting is not None:
                waiting.merge(decision)
                return True
            if len(self._deciding) >= MAX_DEFERRED:
                return False
            self._deciding[key] = decision
            self._order.append(key)
            self._start()
            return True

    def run(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the background thread (dropped once the manager is closed)."""
        with self._lock:
            if not self._stopped:
                self._jobs.append(job)
                self._start()

    def owe(self, dedup_key: str, action: Owed | None = None) -> None:
        """This process sends the trigger (``action`` ``None``) or the resolve or
        acknowledge of ``dedup_key``: the sweep renews its lease until it is settled."""
        with self._lock:
            if action is None:
                self._owed.add(dedup_key)
            else:
                self._owed_actions.add((action, dedup_key))
            self._start()

    def settled(self, dedup_key: str, action: Owed | None = None) -> bool:
        """PagerDuty accepted or gave up on the event: ``True`` if this process owed it."""
        with self._lock:
            if action is not None:
                owed = (action, dedup_key)
                if owed in self._owed_actions:
                    self._owed_actions.discard(owed)
                    return True
                return False
            if dedup_key in self._owed:
                self._owed.discard(dedup_key)
                return True
            return False

    def owed(self) -> list[str]:
        with self._lock:
            return list(self._owed)

    def owed_actions(self) -> list[tuple[Owed, str]]:
        with self._lock:
            return list(self._owed_actions)

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until nothing waits for the state; ``False`` on timeout."""
        if threading.current_thread() is self._thread:
            return False  # the background thread itself: it would wait for itself
        with self._lock:
            return self._changed.wait_for(
                lambda: not (self._order or self._jobs or self._busy), timeout
            )

    def stop(self, timeout: float | None) -> bool:
        """Decide what waits (within ``timeout``), then end the thread."""
        drained = self.wait_idle(timeout)
        with self._lock:
            self._stopped = True
            self._deciding.clear()
            self._order.clear()
            self._jobs.clear()
            self._changed.notify_all()
        return drained

    def _run(self) -> None:
        next_sweep = time.monotonic() + self._period
        while True:
            with self._lock:
                self._busy = False
                self._changed.notify_all()
                while not (self._stopped or self._order or self._jobs):
                    wait = next_sweep - time.monotonic()
                    if wait <= 0:
                        break
                    self._changed.wait(wait)
                if self._stopped:
                    return
                decision: _Decision | None = None
                job: Callable[[], object] | None = None
                if self._order:
                    decision = self._deciding.pop(self._order.pop(0))
                elif self._jobs:
                    job = self._jobs.pop(0)
                self._busy = True
            manager = self._manager()
            if manager is None:
                return
            try:
                if decision is not None:
                    manager._decide(decision)
                elif job is not None:
                    job()
                else:
                    next_sweep = time.monotonic() + self._period
                    manager._sweep()
            except Exception:
                _log.exception("a shared-state update failed")
            del manager


_live: weakref.WeakSet[AlertManager] = weakref.WeakSet()


def _manager_of(sender: object) -> AlertManager | None:
    for manager in list(_live):
        if manager._dispatcher is sender:
            return manager
    return None


def _owed_action(event: object) -> Owed | None:
    if isinstance(event, ResolveEvent):
        return Owed.RESOLVE
    if isinstance(event, AcknowledgeEvent):
        return Owed.ACKNOWLEDGE
    return None


def _event_lost(sender: object, **extra: Any) -> None:
    """The dispatcher dropped or gave up on an event.

    A trigger: PagerDuty never opened that alert. Left open here, every recurrence would
    be suppressed and PagerDuty would never hear of the problem; closed, the next
    recurrence sends a fresh trigger. A resolve or acknowledge PagerDuty refused for
    good (failed) is no longer owed; one dropped (the queue was full, or closing) stays
    owed in the shared state, so once its lease runs out another process sends it.
    """
    event = extra.get("event")
    manager = _manager_of(sender)
    if manager is None:
        return
    action = _owed_action(event)
    if action is not None:
        assert isinstance(event, ResolveEvent | AcknowledgeEvent)
        owed = manager._background.settled(event.dedup_key, action)
        if owed and "error" in extra:
            manager._background.run(
                functools.partial(manager._state.confirm_owed, action, event.dedup_key)
            )
        return
    if not isinstance(event, TriggerEvent) or event.dedup_key is None:
        return
    manager._background.settled(event.dedup_key)
    # Maybe on the caller's thread (a drop when the queue is full): mark_resolved leaves
    # a remote state's round trip to the background.
    manager.mark_resolved(event.dedup_key)


def _event_sent(sender: object, **extra: Any) -> None:
    """PagerDuty accepted an event: the shared state marks a trigger's alert open (no
    longer pending), and a resolve or acknowledge no longer owed, whichever process
    owed it (with a spool, a dead process's event may be delivered by another)."""
    event = extra.get("event")
    if not isinstance(event, TriggerEvent | ResolveEvent | AcknowledgeEvent):
        return
    key = event.dedup_key
    manager = _manager_of(sender)
    if key is None or manager is None or manager._state.decides_locally:
        return
    action = _owed_action(event)
    manager._background.settled(key, action)
    if action is None:
        manager._background.run(functools.partial(manager._state.confirm_trigger, key))
    else:
        manager._background.run(functools.partial(manager._state.confirm_owed, action, key))


# Connected for good (weak=False: a module-level function); drops and failures are rare.
signals.event_dropped.connect(_event_lost, weak=False)
signals.event_failed.connect(_event_lost, weak=False)
signals.event_sent.connect(_event_sent, weak=False)


def live_managers() -> list[AlertManager]:
    """Every AlertManager not yet closed (the pytest plugin resets them between tests)."""
    return list(_live)
