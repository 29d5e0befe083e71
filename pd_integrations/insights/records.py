"""PagerDuty incidents and log entries reduced to the few facts the figures need.

Pure and sans-IO: :func:`fold_incident` reads one REST API v2 incident and its log
entries (any iterable, consumed once, so a caller may stream them page by page) and
returns an :class:`IncidentFacts` of constant size, however long the incident's log.

The facts: when it was created, first acknowledged and resolved (from
``acknowledge_log_entry`` and ``resolve_log_entry``), how many triggers it saw
(``trigger_log_entry``), who the responder was (the first user to acknowledge, else
the first user notified or assigned), and, when the first trigger came from this
library, what kind of alert it was (``custom_details.alert_type``, route, exception
type, health check). An alert is named by its dedup key (``incident_key``), else by its
title with the numbers taken out, so "Disk 91% full on db3" and "Disk 97% full on db7"
count as the same alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["LIBRARY_ALERT_TYPES", "AlertSource", "IncidentFacts", "alert_key", "fold_incident"]

LIBRARY_ALERT_TYPES: Final = frozenset({"slow_request", "exception", "health_check", "http_error"})
"""``custom_details.alert_type`` values this library's integrations send."""

_NUMBERS = re.compile(r"\d+(?:[.,:]\d+)*")
_HEX = re.compile(r"\b[0-9a-f]{8,}\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_INCIDENT_NUMBER = re.compile(r"^\[#\d+\]\s*")
_DETAILS_KEYS: Final = ("custom_details", "details")


@dataclass(frozen=True, slots=True)
class AlertSource:
    """What this library said about the alert in its trigger's ``custom_details``."""

    alert_type: str
    route: str | None = None
    method: str | None = None
    exception_type: str | None = None
    check: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """One incident, as much of it as the figures need (all times in UTC)."""

    id: str
    number: int | None
    title: str
    alert: str
    service_id: str
    service_name: str
    status: str
    urgency: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    triggers: int
    acknowledged: bool
    resolved_by: str | None
    """``user``, ``service`` (the integration or an auto-resolve) or ``None`` if open."""
    responder_id: str | None
    source: AlertSource | None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time from PagerDuty as an aware UTC datetime, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def normalise_title(title: str) -> str:
    """A title with incident numbers, hex ids and numbers replaced, spaces squeezed."""
    text = _INCIDENT_NUMBER.sub("", title)
    text = _HEX.sub("<id>", text)
    text = _NUMBERS.sub("<n>", text)
    return _SPACES.sub(" ", text).strip().lower()


def alert_key(incident: Mapping[str, Any]) -> str:
    """The alert an incident belongs to: its dedup key, else its normalised title."""
    key = incident.get("incident_key")
    if isinstance(key, str) and key.strip():
        return key
    title = incident.get("title") or incident.get("summary") or ""
    return "title:" + normalise_title(str(title))


def _reference_id(value: object) -> str | None:
    if isinstance(value, Mapping):
        ident = value.get("id")
        return ident if isinstance(ident, str) else None
    return None


def _is_user(value: object) -> bool:
    return isinstance(value, Mapping) and str(value.get("type", "")).startswith("user")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def source_of(channel: object) -> AlertSource | None:
    """The library's alert kind from a trigger entry's ``channel``, if it sent one."""
    if not isinstance(channel, Mapping):
        return None
    for name in _DETAILS_KEYS:
        details = channel.get(name)
        if isinstance(details, Mapping) and details.get("alert_type") in LIBRARY_ALERT_TYPES:
            return AlertSource(
                alert_type=str(details["alert_type"]),
                route=_text(details.get("route")),
                method=_text(details.get("method")),
                exception_type=_text(details.get("exception_type")),
                check=_text(details.get("check")),
            )
    return None


def fold_incident(
    incident: Mapping[str, Any], log_entries: Iterable[Mapping[str, Any]]
) -> IncidentFacts:
    """Reduce an incident and its log entries (in any order) to its facts.

    Raises ValueError when the incident has no id or no valid ``created_at``: without
    them it cannot be placed in any figure.
    """
    ident = incident.get("id")
    created = parse_time(incident.get("created_at"))
    if not isinstance(ident, str) or created is None:
        raise ValueError(f"an incident needs an id and a created_at time, got {ident!r}")
    raw_service = incident.get("service")
    service: Mapping[str, Any] = raw_service if isinstance(raw_service, Mapping) else {}
    acknowledged_at: datetime | None = None
    acknowledger: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    first_notified: tuple[datetime, str] | None = None
    first_trigger: tuple[datetime, AlertSource | None] | None = None
    triggers = 0
    for entry in log_entries:
        kind = entry.get("type")
        at = parse_time(entry.get("created_at"))
        if at is None:
            continue
        if kind == "trigger_log_entry":
            triggers += 1
            if first_trigger is None or at < first_trigger[0]:
                first_trigger = (at, source_of(entry.get("channel")))
        elif kind == "acknowledge_log_entry":
            if acknowledged_at is None or at < acknowledged_at:
                acknowledged_at = at
                agent = entry.get("agent")
                acknowledger = _reference_id(agent) if _is_user(agent) else acknowledger
        elif kind == "resolve_log_entry":
            # The last resolve counts: an incident can be reopened (unacknowledged) in
            # between, and it is the final one that ended it.
            if resolved_at is None or at > resolved_at:
                resolved_at = at
                resolved_by = "user" if _is_user(entry.get("agent")) else "service"
        elif kind in ("notify_log_entry", "assign_log_entry"):
            users = (
                [entry.get("user")]
                if kind == "notify_log_entry"
                else list(entry.get("assignees") or [])
            )
            for user in users:
                user_id = _reference_id(user)
                if user_id and (first_notified is None or at < first_notified[0]):
                    first_notified = (at, user_id)
    status = str(incident.get("status") or ("resolved" if resolved_at else "triggered"))
    if status != "resolved":
        resolved_at, resolved_by = None, None
    elif resolved_at is None:
        # A resolved incident whose resolve entry aged out: its last status change is it.
        resolved_at = parse_time(incident.get("last_status_change_at"))
    number = incident.get("incident_number")
    return IncidentFacts(
        id=ident,
        number=number if isinstance(number, int) and not isinstance(number, bool) else None,
        title=str(incident.get("title") or incident.get("summary") or ""),
        alert=alert_key(incident),
        service_id=_reference_id(service) or "unknown",
        service_name=str(service.get("summary") or _reference_id(service) or "unknown"),
        status=status,
        urgency=_text(incident.get("urgency")),
        created_at=created,
        acknowledged_at=acknowledged_at,
        resolved_at=resolved_at,
        triggers=max(triggers, 1),
        acknowledged=acknowledged_at is not None,
        resolved_by=resolved_by,
        responder_id=acknowledger or (first_notified[1] if first_notified else None),
        source=first_trigger[1] if first_trigger else None,
    )
