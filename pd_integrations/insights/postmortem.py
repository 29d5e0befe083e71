"""A post-incident timeline in Markdown, ready to paste into a post-mortem.

:func:`render_timeline` is pure: an incident and its log entries in, Markdown out.
:func:`timeline` reads them through a :class:`~pd_integrations.rest.client.RestClient`. When
the incident's first trigger came from this library, its ``custom_details`` (alert
type, route or task, exception, fingerprint, occurrences, release) are listed too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from pd_integrations.rest.client import RestClient

from .fetch import log_entries
from .records import LIBRARY_ALERT_TYPES, parse_time
from .render import duration

__all__ = ["render_timeline", "timeline"]

_DETAIL_FIELDS: Final = (
    "alert_type",
    "route",
    "method",
    "task",
    "check",
    "exception_type",
    "exception_message",
    "fingerprint",
    "occurrences",
    "release",
    "environment",
)
_VERBS: Final = {
    "trigger_log_entry": "Triggered",
    "notify_log_entry": "Notified",
    "acknowledge_log_entry": "Acknowledged",
    "unacknowledge_log_entry": "Unacknowledged",
    "escalate_log_entry": "Escalated",
    "assign_log_entry": "Assigned",
    "annotate_log_entry": "Note",
    "snooze_log_entry": "Snoozed",
    "resolve_log_entry": "Resolved",
    "reach_trigger_limit_log_entry": "Trigger limit reached",
    "urgency_change_log_entry": "Urgency changed",
    "priority_change_log_entry": "Priority changed",
}


_ORDER: Final = {
    "trigger_log_entry": 0,
    "assign_log_entry": 1,
    "notify_log_entry": 2,
    "acknowledge_log_entry": 3,
    "resolve_log_entry": 9,
}


def _cell(text: object) -> str:
    # A pipe or a newline would break the Markdown table.
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _who(value: object) -> str:
    if isinstance(value, Mapping):
        return str(value.get("summary") or value.get("id") or "")
    return ""


def _what(entry: Mapping[str, Any]) -> str:
    kind = str(entry.get("type", ""))
    verb = _VERBS.get(kind, kind.removesuffix("_log_entry").replace("_", " ").capitalize())
    channel = entry.get("channel") if isinstance(entry.get("channel"), Mapping) else {}
    if kind == "notify_log_entry":
        notification = channel.get("notification") if isinstance(channel, Mapping) else None
        how = notification.get("type", "") if isinstance(notification, Mapping) else ""
        how = str(how).replace("_notification", "")
        return f"{verb} {_who(entry.get('user'))}" + (f" by {how}" if how else "")
    if kind == "assign_log_entry":
        names = ", ".join(_who(a) for a in entry.get("assignees") or [])
        return f"{verb} to {names}" if names else verb
    if kind == "annotate_log_entry":
        content = channel.get("summary") if isinstance(channel, Mapping) else None
        return f"{verb}: {content}" if content else verb
    agent = _who(entry.get("agent"))
    return f"{verb} by {agent}" if agent else verb


def _library_details(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    for entry in entries:
        if entry.get("type") != "trigger_log_entry":
            continue
        channel = entry.get("channel")
        if not isinstance(channel, Mapping):
            continue
        for name in ("custom_details", "details"):
            details = channel.get(name)
            if isinstance(details, Mapping) and details.get("alert_type") in LIBRARY_ALERT_TYPES:
                return {k: details[k] for k in _DETAIL_FIELDS if details.get(k) not in (None, "")}
    return None


def render_timeline(incident: Mapping[str, Any], entries: Iterable[Mapping[str, Any]]) -> str:
    """The Markdown timeline of ``incident`` from its log entries (any order)."""
    timed = [(parse_time(e.get("created_at")), e) for e in entries]
    # PagerDuty lists newest first; entries of one instant go in the order they happen.
    ordered = [
        entry
        for at, entry in sorted(
            ((at, e) for at, e in timed if at is not None),
            key=lambda pair: (pair[0], _ORDER.get(str(pair[1].get("type")), 5)),
        )
    ]
    created = parse_time(incident.get("created_at"))
    number = incident.get("incident_number")
    title = incident.get("title") or incident.get("summary") or incident.get("id")
    heading = f"#{number} " if number is not None else ""
    lines = [f"# Incident {heading}{_cell(title)}", ""]
    service = incident.get("service")
    lines += [
        f"- **Incident:** {incident.get('id')}"
        + (f" ({incident['html_url']})" if incident.get("html_url") else ""),
        f"- **Service:** {_who(service) or '-'}",
        f"- **Status:** {incident.get('status', '-')}; urgency {incident.get('urgency', '-')}",
        f"- **Created:** {incident.get('created_at', '-')}",
    ]
    if incident.get("incident_key"):
        lines.append(f"- **Dedup key:** `{_cell(incident['incident_key'])}`")
    firsts: dict[str, str] = {}
    for entry in ordered:
        kind = str(entry.get("type"))
        at = parse_time(entry.get("created_at"))
        if created and at and kind in ("acknowledge_log_entry", "resolve_log_entry"):
            firsts.setdefault(kind, duration((at - created).total_seconds()))
    if "acknowledge_log_entry" in firsts:
        lines.append(f"- **Time to acknowledge:** {firsts['acknowledge_log_entry']}")
    if "resolve_log_entry" in firsts and incident.get("status") == "resolved":
        lines.append(f"- **Time to resolve:** {firsts['resolve_log_entry']}")
    details = _library_details(ordered)
    if details:
        lines += ["", "## Alert details (pd_integrations)", ""]
        lines += [f"- **{name}:** {_cell(value)}" for name, value in details.items()]
    lines += ["", "## Timeline", "", "| Time (UTC) | +offset | Event |", "|---|---|---|"]
    for entry in ordered:
        at = parse_time(entry.get("created_at"))
        assert at is not None
        offset = duration((at - created).total_seconds()) if created else "-"
        stamp = at.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"| {stamp} | +{offset} | {_cell(_what(entry))} |")
    if not ordered:
        lines.append("| - | - | no log entries |")
    return "\n".join(lines) + "\n"


def timeline(client: RestClient, incident_id: str) -> str:
    """Read an incident and its log entries through ``client``; its Markdown timeline."""
    incident = client.get_incident(incident_id)
    return render_timeline(incident, log_entries(client, incident_id))
