"""Typed PagerDuty webhook events, parsed from the v3 envelope (and the retired v2 one).

A v3 delivery carries one event: ``{"event": {"id", "event_type", "resource_type",
"occurred_at", "agent", "client", "data"}}``. Only the envelope is required; the
modelled parts of ``data`` (the incident, an ``incident.annotated`` note) are read
leniently, because PagerDuty adds fields and event types over time and a delivery we
cannot fully model must still be accepted. Everything stays reachable through ``raw``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from pd_integrations.errors import PagerDutyError

__all__ = [
    "LEGACY_EVENT_TYPES",
    "Incident",
    "IncidentNote",
    "Reference",
    "WebhookError",
    "WebhookEvent",
    "parse_webhook",
]

# What each v2 ``messages[].event`` is called in v3.
LEGACY_EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "incident.trigger": "incident.triggered",
        "incident.acknowledge": "incident.acknowledged",
        "incident.unacknowledge": "incident.unacknowledged",
        "incident.resolve": "incident.resolved",
        "incident.assign": "incident.reassigned",
        "incident.escalate": "incident.escalated",
        "incident.delegate": "incident.delegated",
        "incident.annotate": "incident.annotated",
        "incident.reopen": "incident.reopened",
    }
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


class WebhookError(PagerDutyError, ValueError):
    """A webhook delivery that cannot be used: not JSON, or not a PagerDuty envelope."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A PagerDuty object named by reference (``{"id", "type", "summary", ...}``)."""

    id: str
    type: str | None = None
    summary: str | None = None
    html_url: str | None = None
    self_url: str | None = None
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Incident:
    """The incident in ``data`` of an ``incident.*`` event (``incident.annotated`` excepted)."""

    id: str
    number: int | None = None
    title: str | None = None
    status: str | None = None
    """``triggered``, ``acknowledged`` or ``resolved``."""
    urgency: str | None = None
    html_url: str | None = None
    incident_key: str | None = None
    """The dedup key of the alert that opened it (``None`` in v3 payloads without it)."""
    service: Reference | None = None
    assignees: tuple[Reference, ...] = ()
    escalation_policy: Reference | None = None
    teams: tuple[Reference, ...] = ()
    priority: Reference | None = None
    """``priority.summary`` is the name, such as ``P1``; ``None`` when it has none."""
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class IncidentNote:
    """The note of an ``incident.annotated`` event."""

    id: str | None
    content: str
    incident: Reference | None
    """The annotated incident (``data.incident``), by reference."""
    trimmed: bool = False
    """PagerDuty cut ``content`` short; the REST API has the whole note."""
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event of a delivery; ``raw`` is the whole ``event`` object as received."""

    id: str
    event_type: str
    """``incident.triggered``, ``pagey.ping``... unknown types are kept as they come."""
    resource_type: str
    occurred_at: datetime
    agent: Reference | None = None
    """Who caused it (a user, a service...); ``None`` when PagerDuty itself did."""
    client: Mapping[str, Any] | None = field(default=None, compare=False)
    """The API client that caused it, when there was one."""
    data: Mapping[str, Any] = field(default_factory=_empty, repr=False, compare=False)
    incident: Incident | None = None
    note: IncidentNote | None = None
    version: Literal["v3", "v2"] = "v3"
    """``v2`` for an event mapped from the retired ``{"messages": [...]}`` envelope."""
    raw: Mapping[str, Any] = field(default_factory=_empty, repr=False, compare=False)

    @property
    def incident_id(self) -> str | None:
        """The incident this event is about, whatever its type (``None`` if none)."""
        if self.incident is not None:
            return self.incident.id
        if self.note is not None and self.note.incident is not None:
            return self.note.incident.id
        nested = self.data.get("incident")
        if isinstance(nested, Mapping) and isinstance(nested.get("id"), str):
            return str(nested["id"])
        return None


# -- lenient readers for the parts that are not required --------------------------------


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any] | None:
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _reference(value: object) -> Reference | None:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    return Reference(
        id=value["id"],
        type=_str(value.get("type")),
        summary=_str(value.get("summary")) or _str(value.get("name")),
        html_url=_str(value.get("html_url")),
        self_url=_str(value.get("self")),
        raw=MappingProxyType(value),
    )


def _references(value: object) -> tuple[Reference, ...]:
    if not isinstance(value, list):
        return ()
    found = (_reference(item) for item in value)
    return tuple(ref for ref in found if ref is not None)


def _incident(data: Mapping[str, Any]) -> Incident | None:
    if not isinstance(data.get("id"), str):
        return None
    return Incident(
        id=data["id"],
        number=_int(data.get("number")),
        title=_str(data.get("title")),
        status=_str(data.get("status")),
        urgency=_str(data.get("urgency")),
        html_url=_str(data.get("html_url")),
        incident_key=_str(data.get("incident_key")),
        service=_reference(data.get("service")),
        assignees=_references(data.get("assignees")),
        escalation_policy=_reference(data.get("escalation_policy")),
        teams=_references(data.get("teams")),
        priority=_reference(data.get("priority")),
        created_at=_time(data.get("created_at")),
        raw=data,
    )


def _note(data: Mapping[str, Any]) -> IncidentNote | None:
    content = data.get("content")
    if not isinstance(content, str):
        return None
    return IncidentNote(
        id=_str(data.get("id")),
        content=content,
        incident=_reference(data.get("incident")),
        trimmed=data.get("trimmed") is True,
        raw=data,
    )


# -- the envelopes ----------------------------------------------------------------------


def _required_str(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"{where}.{name} must be a non-empty string, got {value!r:.80}")
    return value


def _event(obj: object, version: Literal["v3", "v2"] = "v3") -> WebhookEvent:
    if not isinstance(obj, Mapping):
        raise WebhookError(f"event must be a JSON object, got {type(obj).__name__}")
    event_type = _required_str(obj, "event_type", "event")
    stamp = _required_str(obj, "occurred_at", "event")
    occurred_at = _time(stamp)
    if occurred_at is None:
        raise WebhookError(f"event.occurred_at is not an ISO 8601 timestamp: {stamp!r:.80}")
    raw_data = obj.get("data")
    if raw_data is not None and not isinstance(raw_data, Mapping):
        raise WebhookError(f"event.data must be an object or null, got {type(raw_data).__name__}")
    data = _mapping(raw_data) or _EMPTY
    resource_type = _str(obj.get("resource_type")) or event_type.partition(".")[0]
    data_type = data.get("type")
    incident = note = None
    if data_type == "incident_note" or event_type == "incident.annotated":
        note = _note(data)
    elif resource_type == "incident" and data_type in ("incident", None):
        incident = _incident(data)
    return WebhookEvent(
        id=_required_str(obj, "id", "event"),
        event_type=event_type,
        resource_type=resource_type,
        occurred_at=occurred_at,
        agent=_reference(obj.get("agent")),
        client=_mapping(obj.get("client")),
        data=data,
        incident=incident,
        note=note,
        version=version,
        raw=_mapping(obj) or _EMPTY,
    )


def _legacy_event(message: object, index: int) -> WebhookEvent:
    """A v2 message rewritten as the v3 event it stands for."""
    if not isinstance(message, dict):
        raise WebhookError(f"messages[{index}] must be a JSON object")
    where = f"messages[{index}]"
    kind = _required_str(message, "event", where)
    incident = message.get("incident")
    if not isinstance(incident, dict):
        raise WebhookError(f"{where}.incident must be a JSON object")
    entries = message.get("log_entries")
    entry = entries[0] if isinstance(entries, list) and entries else {}
    entry = entry if isinstance(entry, dict) else {}
    incident_data = {
        **incident,
        "type": "incident",
        "number": incident.get("incident_number"),
        "assignees": [
            a["assignee"]
            for a in incident.get("assignments") or ()
            if isinstance(a, dict) and "assignee" in a
        ],
    }
    event_type = LEGACY_EVENT_TYPES.get(kind, kind)
    data: dict[str, Any] = incident_data
    if event_type == "incident.annotated":
        channel = entry.get("channel")
        content = channel.get("summary") if isinstance(channel, dict) else None
        data = {
            "type": "incident_note",
            "id": entry.get("id"),
            "content": content if isinstance(content, str) else entry.get("summary", ""),
            "incident": {key: incident.get(key) for key in ("id", "html_url", "self")}
            | {"type": "incident_reference", "summary": incident.get("title")},
        }
    return _event(
        {
            "id": message.get("id") or f"{incident.get('id')}:{kind}:{index}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": message.get("created_on"),
            "agent": entry.get("agent"),
            "client": None,
            "data": data,
        },
        "v2",
    )


def parse_webhook(body: bytes | str | Mapping[str, Any]) -> tuple[WebhookEvent, ...]:
    """The events of one delivery: one for v3, one per message for the v2 envelope.

    :param body: the raw request body, or JSON already decoded (after the signature
        was checked on the raw bytes).
    :raises WebhookError: not UTF-8 JSON, or not a v3 or v2 envelope.
    """
    if isinstance(body, bytes | str):
        try:
            # PagerDuty sends UTF-8; json.loads would also guess UTF-16 and UTF-32.
            document = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        except (UnicodeDecodeError, RecursionError) as error:
            raise WebhookError(f"the body is not UTF-8 JSON: {error}") from None
        except json.JSONDecodeError as error:
            raise WebhookError(f"the body is not JSON: {error}") from None
    else:
        document = body
    if not isinstance(document, Mapping):
        raise WebhookError(f"the body must be a JSON object, got {type(document).__name__}")
    if "event" in document:
        return (_event(document["event"]),)
    messages = document.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str) and messages:
        return tuple(_legacy_event(message, i) for i, message in enumerate(messages))
    raise WebhookError(
        'not a PagerDuty webhook: expected {"event": {...}} (v3) or {"messages": [...]} (v2)'
    )
