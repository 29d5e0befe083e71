"""What the emulator remembers: alerts, accepted events and every Events API request.

Alerts follow PagerDuty's dedup rules. An alert is keyed by ``(routing_key, dedup_key)``
while it is open (triggered or acknowledged): a repeated trigger updates it, an
acknowledge or resolve changes its status. Once resolved, the key is free again: the
next trigger opens a new alert with a new id, and an acknowledge or resolve for a
resolved or unknown key is accepted (202) but dropped.

Everything is guarded by one lock; readers get deep copies, so callers can never
change the emulator's state by mutating what they were given. Every responder action —
from the Events API, the console, the control API or the REST API — goes through
:meth:`Store.respond` (notes through :meth:`Store.add_note`), and every change of an
incident's status is reported to the store's listener as a :class:`Change`.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

AlertStatus = Literal["triggered", "acknowledged", "resolved"]
Responder = Literal["acknowledge", "resolve"]
Via = Literal["events_api", "console", "rest_api"]
ChangeKind = Literal["triggered", "acknowledged", "resolved", "annotated"]
ALERT_STATUSES: tuple[AlertStatus, ...] = ("triggered", "acknowledged", "resolved")
DEFAULT_MAX_RECORDS = 100_000
RAW_PREVIEW_CHARS = 2048


def utc_now() -> str:
    """The current time as RFC 3339 with millisecond precision and a ``Z`` offset."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UnknownAlert(KeyError):
    """No alert has that id."""


class AlertClosed(ValueError):
    """A responder action on an alert that is already resolved."""


@dataclass(frozen=True)
class Change:
    """What happened to an incident, for the listener (the webhook sender).

    ``alert`` is a snapshot taken right after the change; ``agent`` is the id of the
    user who acted (None when a monitoring tool acted through the Events API); ``note``
    is set for ``annotated``.
    """

    kind: ChangeKind
    alert: dict[str, Any]
    at: str
    via: Via
    agent: str | None = None
    note: dict[str, Any] | None = None


Listener = Callable[[Change], None]


@dataclass
class Alert:
    id: str
    number: int
    routing_key: str
    dedup_key: str
    first_seen: str
    status: AlertStatus = "triggered"
    trigger_count: int = 0
    last_seen: str = ""
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    links: list[Any] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    client: str | None = None
    client_url: str | None = None
    resolution: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    def take_trigger(self, body: Mapping[str, Any], at: str) -> None:
        """The latest trigger's details replace the previous ones."""
        self.payload = dict(body["payload"])
        self.links = list(body.get("links") or [])
        self.images = list(body.get("images") or [])
        self.client = body.get("client")
        self.client_url = body.get("client_url")
        self.trigger_count += 1
        self.last_seen = at

    def note(
        self, action: str, at: str, via: str, seq: int | None, agent: str | None = None
    ) -> None:
        self.log.append(
            {
                "action": action,
                "at": at,
                "via": via,
                "agent": agent,
                "summary": self.payload.get("summary"),
                "severity": self.payload.get("severity"),
                "event_seq": seq,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        payload = self.payload
        return copy.deepcopy(
            {
                "id": self.id,
                "incident_number": self.number,
                "routing_key": self.routing_key,
                "dedup_key": self.dedup_key,
                "status": self.status,
                "severity": payload.get("severity"),
                "summary": payload.get("summary"),
                "source": payload.get("source"),
                "component": payload.get("component"),
                "group": payload.get("group"),
                "class": payload.get("class"),
                "custom_details": payload.get("custom_details"),
                "timestamp": payload.get("timestamp"),
                "links": self.links,
                "images": self.images,
                "client": self.client,
                "client_url": self.client_url,
                "trigger_count": self.trigger_count,
                "first_seen": self.first_seen,
                "last_seen": self.last_seen,
                "acknowledged_at": self.acknowledged_at,
                "resolved_at": self.resolved_at,
                "resolution": self.resolution,
                "log": self.log,
                "notes": self.notes,
            }
        )


@dataclass(frozen=True)
class EventResult:
    """What an accepted event did: ``outcome`` is one of created, deduplicated,
    acknowledged, resolved, dropped (no open alert for the key) or change."""

    outcome: str
    dedup_key: str | None = None
    alert_id: str | None = None


class Store:
    """Thread-safe alerts and logs. Sequence numbers and alert ids keep growing across
    :meth:`reset`, so ``since=`` cursors and console links never point at new data."""

    def __init__(
        self,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        now: Callable[[], str] = utc_now,
        listener: Listener | None = None,
    ) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._now = now
        self._listener = listener
        self._routing_keys: dict[str, str] = {}
        self._next_note = 1
        self._alerts: dict[str, Alert] = {}
        self._open: dict[tuple[str, str], Alert] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._requests: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._by_status: Counter[str] = Counter()
        self._accepted = 0
        self._next_alert = 1
        self._next_event = 1
        self._next_request = 1

    # -- Events API -------------------------------------------------------------------

    def process_event(self, body: Mapping[str, Any]) -> EventResult:
        """Apply a valid ``/v2/enqueue`` body and log it as accepted."""
        with self._changed:
            at = self._now()
            seq = self._next_event
            action = body["event_action"]
            routing_key = body["routing_key"]
            dedup_key = body.get("dedup_key") or uuid.uuid4().hex
            self._routing_keys.setdefault(routing_key, at)
            alert = self._open.get((routing_key, dedup_key))
            if action == "trigger":
                if alert is None:
                    alert = self._new_alert(routing_key, dedup_key, at)
                    outcome = "created"
                else:
                    outcome = "deduplicated"
                alert.take_trigger(body, at)
                alert.note("trigger", at, "events_api", seq)
                if outcome == "created":
                    self._tell(Change("triggered", alert.to_dict(), at, "events_api"))
            elif alert is None:
                outcome = "dropped"
            else:
                outcome = self._respond(alert, action, at, "events_api", seq)
            result = EventResult(outcome, dedup_key, alert.id if alert else None)
            self._log_event(seq, at, "/v2/enqueue", action, body, result)
            return result

    def process_change(self, body: Mapping[str, Any]) -> EventResult:
        """Log a valid change event; change events open no alert."""
        with self._changed:
            result = EventResult("change")
            at = self._now()
            self._routing_keys.setdefault(body["routing_key"], at)
            self._log_event(self._next_event, at, "/v2/change/enqueue", "change", body, result)
            return result

    def record_request(
        self,
        method: str,
        path: str,
        status: int | None,
        *,
        size: int,
        body: object = None,
        raw: bytes | None = None,
        errors: list[str] | None = None,
        fault: str | None = None,
    ) -> None:
        """Log one ``/v2`` request and its answer (``status`` None: dropped)."""
        with self._changed:
            preview = None
            if raw is not None:
                preview = raw[: RAW_PREVIEW_CHARS * 4].decode("utf-8", "replace")[
                    :RAW_PREVIEW_CHARS
                ]
            self._requests.append(
                {
                    "seq": self._next_request,
                    "received_at": self._now(),
                    "method": method,
                    "path": path,
                    "status": status,
                    "fault": fault,
                    "errors": list(errors or []),
                    "size": size,
                    "body": body,
                    "raw": preview,
                }
            )
            self._next_request += 1
            self._by_status["dropped" if status is None else str(status)] += 1
            self._changed.notify_all()

    # -- responders (the console) ---------------------------------------------------

    def respond(
        self,
        alert_id: str,
        action: Responder,
        *,
        via: Via = "console",
        agent: str | None = None,
        resolution: str | None = None,
    ) -> dict[str, Any]:
        """Acknowledge or resolve an alert as a person in PagerDuty would.

        ``agent`` is the id of the user acting, ``resolution`` an optional text kept
        with a resolve. Repeating an action is harmless; acknowledging a resolved alert
        raises :class:`AlertClosed`, an unknown id :class:`UnknownAlert`.
        """
        with self._changed:
            alert = self._alerts.get(alert_id)
            if alert is None:
                raise UnknownAlert(alert_id)
            if not alert.open:
                if action == "resolve":
                    return alert.to_dict()
                raise AlertClosed(f"alert {alert_id} is resolved")
            if action == "resolve" and resolution:
                alert.resolution = resolution
            self._respond(alert, action, self._now(), via, None, agent)
            self._changed.notify_all()
            return alert.to_dict()

    def add_note(
        self, alert_id: str, content: str, *, agent: str | None, via: Via
    ) -> dict[str, Any]:
        """Add a note to an alert (resolved ones too, as PagerDuty allows); the note."""
        with self._changed:
            alert = self._alerts.get(alert_id)
            if alert is None:
                raise UnknownAlert(alert_id)
            at = self._now()
            note = {
                "id": f"N{self._next_note:05d}",
                "content": content,
                "created_at": at,
                "agent": agent,
                "via": via,
            }
            self._next_note += 1
            alert.notes.append(note)
            self._tell(Change("annotated", alert.to_dict(), at, via, agent, dict(note)))
            self._changed.notify_all()
            return dict(note)

    def notes(self, alert_id: str) -> list[dict[str, Any]]:
        with self._changed:
            alert = self._alerts.get(alert_id)
            if alert is None:
                raise UnknownAlert(alert_id)
            return copy.deepcopy(alert.notes)

    def routing_keys(self) -> dict[str, str]:
        """Every routing key that sent an accepted event, with when it first did."""
        with self._changed:
            return dict(self._routing_keys)

    # -- reading ---------------------------------------------------------------------

    def alerts(
        self,
        *,
        status: str | None = None,
        routing_key: str | None = None,
        dedup_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts in the order they were opened, optionally filtered."""
        with self._changed:
            return [
                alert.to_dict()
                for alert in self._alerts.values()
                if (status is None or alert.status == status)
                and (routing_key is None or alert.routing_key == routing_key)
                and (dedup_key is None or alert.dedup_key == dedup_key)
            ]

    def count_alerts(self, status: str | None = None) -> int:
        with self._changed:
            return sum(1 for a in self._alerts.values() if status is None or a.status == status)

    def count_events(self) -> int:
        """Accepted events still in the log."""
        with self._changed:
            return len(self._events)

    def count_requests(self) -> int:
        """Events API requests still in the log."""
        with self._changed:
            return len(self._requests)

    def alert(self, alert_id: str) -> dict[str, Any]:
        with self._changed:
            alert = self._alerts.get(alert_id)
            if alert is None:
                raise UnknownAlert(alert_id)
            return alert.to_dict()

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Accepted events (alert and change events) with ``seq`` above ``since``."""
        with self._changed:
            return copy.deepcopy([e for e in self._events if e["seq"] > since])

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Every ``/v2`` request with ``seq`` above ``since``, whatever its answer."""
        with self._changed:
            return copy.deepcopy([r for r in self._requests if r["seq"] > since])

    def stats(self) -> dict[str, Any]:
        with self._changed:
            by_alert_status = Counter(alert.status for alert in self._alerts.values())
            return {
                "requests": sum(self._by_status.values()),
                "by_status": dict(sorted(self._by_status.items())),
                "events_accepted": self._accepted,
                "alerts": {status: by_alert_status[status] for status in ALERT_STATUSES},
            }

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` (called with the lock released) is true."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                # Short waits bound the cost of a notify that raced the predicate check.
                self._changed.wait(min(remaining, 0.05))
        return True

    def reset(self) -> None:
        with self._changed:
            self._alerts.clear()
            self._open.clear()
            self._events.clear()
            self._requests.clear()
            self._by_status.clear()
            self._routing_keys.clear()
            self._accepted = 0
            # Incidents and notes are numbered afresh, as in a new PagerDuty account, so
            # a script or a docs example can name A00001 after a reset; the event and
            # request sequence numbers keep growing: they are the console's cursors.
            self._next_alert = 1
            self._next_note = 1
            self._changed.notify_all()

    # -- internals --------------------------------------------------------------------

    def _new_alert(self, routing_key: str, dedup_key: str, at: str) -> Alert:
        alert = Alert(
            id=f"A{self._next_alert:05d}",
            number=self._next_alert,
            routing_key=routing_key,
            dedup_key=dedup_key,
            first_seen=at,
        )
        self._next_alert += 1
        self._alerts[alert.id] = alert
        self._open[(routing_key, dedup_key)] = alert
        return alert

    def _respond(
        self,
        alert: Alert,
        action: str,
        at: str,
        via: Via,
        seq: int | None,
        agent: str | None = None,
    ) -> str:
        """The one state transition for every responder, whoever acts."""
        before = alert.status
        if action == "acknowledge":
            alert.status = "acknowledged"
            alert.acknowledged_at = alert.acknowledged_at or at
            outcome = "acknowledged"
        else:
            alert.status = "resolved"
            alert.resolved_at = at
            del self._open[(alert.routing_key, alert.dedup_key)]
            outcome = "resolved"
        alert.note(action, at, via, seq, agent)
        if alert.status != before:
            self._tell(Change(alert.status, alert.to_dict(), at, via, agent))
        return outcome

    def _tell(self, change: Change) -> None:
        # Called under the lock, so the listener sees changes in the order they
        # happened; it must only hand the change off (the webhook sender queues it).
        if self._listener is None:
            return
        # A listener bug must never break an Events API answer.
        with contextlib.suppress(Exception):
            self._listener(change)

    def _log_event(
        self,
        seq: int,
        at: str,
        path: str,
        action: str,
        body: Mapping[str, Any],
        result: EventResult,
    ) -> None:
        self._events.append(
            {
                "seq": seq,
                "received_at": at,
                "path": path,
                "type": action,
                "status": 202,
                "outcome": result.outcome,
                "dedup_key": result.dedup_key,
                "alert_id": result.alert_id,
                # Bodies are freshly parsed per request and never mutated afterwards;
                # readers get deep copies.
                "body": dict(body),
            }
        )
        self._next_event += 1
        self._accepted += 1
        self._changed.notify_all()
