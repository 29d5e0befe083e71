"""The emulator's alerts as PagerDuty REST resources and webhook v3 events.

An emulator alert is an incident: its id, ``incident_number``, ``title`` (the summary),
status, urgency (``high`` for critical and error, else ``low``), ``incident_key`` (the
dedup key) and notes. Each routing key that sent an event is a service. Users,
schedules and the escalation policy come from the :class:`~.roster.Roster`.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .roster import Roster, Schedule, User
from .state import Change

HIGH_URGENCY_SEVERITIES = frozenset({"critical", "error"})
_EVENTS_API_CHANNEL = "Events API v2"
_WEB_CHANNEL = "The PagerDuty website or APIs"


def service_id(routing_key: str) -> str:
    """A stable PagerDuty-shaped id (``P`` and six characters) for a routing key."""
    digest = hashlib.sha256(routing_key.encode()).digest()
    return "P" + base64.b32encode(digest).decode()[:6]


def _masked(routing_key: str) -> str:
    # Like the library's own masking, but the emulator stays independent of it.
    return "****" + routing_key[-4:]


@dataclass(frozen=True)
class Resources:
    """Builds resource dicts; ``base_url`` gives the emulator's URL when asked."""

    roster: Roster
    base_url: Callable[[], str]

    @property
    def rest_url(self) -> str:
        return f"{self.base_url()}/rest"

    @property
    def console_url(self) -> str:
        return f"{self.base_url()}/"

    # -- references ------------------------------------------------------------------

    def _reference(self, kind: str, id_: str, summary: str, path: str) -> dict[str, Any]:
        return {
            "id": id_,
            "type": f"{kind}_reference",
            "summary": summary,
            "self": f"{self.rest_url}/{path}/{id_}",
            "html_url": self.console_url,
        }

    def user_reference(self, user: User) -> dict[str, Any]:
        return self._reference("user", user.id, user.name, "users")

    def agent_reference(self, agent: str | None, routing_key: str) -> dict[str, Any]:
        """Who acted: a user of the roster, else the service (an Events API event)."""
        user = self.roster.user(agent) if agent else None
        if user is not None:
            return self.user_reference(user)
        return self.service_reference(routing_key)

    def schedule_reference(self, schedule: Schedule) -> dict[str, Any]:
        return self._reference("schedule", schedule.id, schedule.name, "schedules")

    def escalation_policy_reference(self) -> dict[str, Any]:
        policy = self.roster.escalation_policy
        return self._reference("escalation_policy", policy.id, policy.name, "escalation_policies")

    def service_reference(self, routing_key: str) -> dict[str, Any]:
        return self._reference(
            "service", service_id(routing_key), self.service_name(routing_key), "services"
        )

    def incident_reference(self, alert: dict[str, Any]) -> dict[str, Any]:
        reference = self._reference("incident", alert["id"], self._summary(alert), "incidents")
        reference["html_url"] = self._incident_html_url(alert)
        return reference

    # -- resources -------------------------------------------------------------------

    @staticmethod
    def service_name(routing_key: str) -> str:
        return f"Emulated service {_masked(routing_key)}"

    def user(self, user: User) -> dict[str, Any]:
        return {
            **self.user_reference(user),
            "type": "user",
            "name": user.name,
            "email": user.email,
            "time_zone": user.time_zone,
            "role": user.role,
            "job_title": user.job_title,
            "description": "",
            "invitation_sent": False,
            "teams": [],
            "contact_methods": [],
            "notification_rules": [],
        }

    def service(
        self, routing_key: str, first_seen: str, alerts: list[dict[str, Any]]
    ) -> dict[str, Any]:
        statuses = {a["status"] for a in alerts if a["routing_key"] == routing_key}
        status = (
            "critical"
            if "triggered" in statuses
            else "warning"
            if "acknowledged" in statuses
            else "active"
        )
        return {
            **self.service_reference(routing_key),
            "type": "service",
            "name": self.service_name(routing_key),
            "description": "A service the emulator made up for a routing key",
            "status": status,
            "created_at": first_seen,
            "escalation_policy": self.escalation_policy_reference(),
            "teams": [],
            "alert_creation": "create_alerts_and_incidents",
            "incident_urgency_rule": {"type": "severity_based"},
        }

    def oncall(
        self, level: int, schedule: Schedule, user: User, start: str, end: str
    ) -> dict[str, Any]:
        return {
            "escalation_policy": self.escalation_policy_reference(),
            "escalation_level": level,
            "schedule": self.schedule_reference(schedule),
            "user": self.user_reference(user),
            "start": start,
            "end": end,
        }

    def incident(self, alert: dict[str, Any]) -> dict[str, Any]:
        """The REST API v2 incident for an alert (``GET /incidents/{id}``)."""
        status = alert["status"]
        changed_at, changed_by = self._last_status_change(alert)
        open_ = status != "resolved"
        assignments = [
            {"at": alert["first_seen"], "assignee": self.user_reference(user)}
            for user in self.roster.first_responders()
        ]
        acknowledgements = [
            {
                "at": entry["at"],
                "acknowledger": self.agent_reference(entry["agent"], alert["routing_key"]),
            }
            for entry in alert["log"]
            if entry["action"] == "acknowledge"
        ]
        return {
            **self.incident_reference(alert),
            "type": "incident",
            "incident_number": alert["incident_number"],
            "title": alert["summary"],
            "description": alert["summary"],
            "status": status,
            "urgency": self._urgency(alert),
            "incident_key": alert["dedup_key"],
            "created_at": alert["first_seen"],
            "updated_at": alert["log"][-1]["at"] if alert["log"] else alert["first_seen"],
            "last_status_change_at": changed_at,
            "last_status_change_by": changed_by,
            "service": self.service_reference(alert["routing_key"]),
            "escalation_policy": self.escalation_policy_reference(),
            "assignments": assignments if open_ else [],
            "acknowledgements": acknowledgements if status == "acknowledged" else [],
            "resolve_reason": None,
            "priority": None,
            "teams": [],
            "alert_counts": {
                "all": 1,
                "triggered": int(open_),
                "resolved": int(not open_),
            },
            "pending_actions": [],
            "is_mergeable": open_,
            "conference_bridge": None,
        }

    def log_entries(self, alert: dict[str, Any]) -> list[dict[str, Any]]:
        """The incident's log entries as ``GET /incidents/{id}/log_entries`` lists them:
        newest first, like PagerDuty.

        Each trigger is a ``trigger_log_entry`` whose ``channel`` (type ``api``) carries
        the event's ``custom_details`` as ``details``; the first is followed by an
        ``assign_log_entry`` and a ``notify_log_entry`` per first responder.
        Acknowledges and resolves are ``acknowledge_log_entry`` and
        ``resolve_log_entry`` by the user or the integration that sent them; notes are
        ``annotate_log_entry``.
        """
        routing_key = alert["routing_key"]
        entries: list[tuple[str, int, dict[str, Any]]] = []

        def add(kind: str, at: str, summary: str, **fields: Any) -> None:
            index = len(entries) + 1
            ident = f"Q{alert['id']}{index:04d}"
            entries.append(
                (
                    at,
                    index,
                    {
                        "id": ident,
                        "type": kind,
                        "summary": summary,
                        "self": f"{self.rest_url}/log_entries/{ident}",
                        "html_url": self._incident_html_url(alert),
                        "created_at": at,
                        "service": self.service_reference(routing_key),
                        "incident": self.incident_reference(alert),
                        "teams": [],
                        "contexts": [],
                        **fields,
                    },
                )
            )

        triggered = False
        for entry in alert["log"]:
            at, agent = entry["at"], entry.get("agent")
            via_api = entry["via"] != "console"
            channel = {"type": "api"} if via_api else {"type": "web_ui"}
            actor = self.agent_reference(agent, routing_key)
            if entry["action"] == "trigger":
                add(
                    "trigger_log_entry",
                    at,
                    "Triggered through the API",
                    agent=self.service_reference(routing_key),
                    channel={
                        "type": "api",
                        "summary": entry.get("summary"),
                        "description": entry.get("summary"),
                        "incident_key": alert["dedup_key"],
                        "service_key": _masked(routing_key),
                        "details": alert.get("custom_details") or {},
                    },
                    event_details={"description": entry.get("summary")},
                )
                if not triggered:
                    triggered = True
                    responders = self.roster.first_responders()
                    add(
                        "assign_log_entry",
                        at,
                        "Assigned to " + ", ".join(user.name for user in responders),
                        agent=self.escalation_policy_reference(),
                        channel={"type": "auto"},
                        assignees=[self.user_reference(user) for user in responders],
                    )
                    for user in responders:
                        add(
                            "notify_log_entry",
                            at,
                            f"Notified {user.name} by email",
                            agent=self.user_reference(user),
                            channel={
                                "type": "notification",
                                "notification": {
                                    "type": "email_notification",
                                    "status": "success",
                                    "address": user.email,
                                },
                            },
                            user=self.user_reference(user),
                        )
            elif entry["action"] == "acknowledge":
                add(
                    "acknowledge_log_entry",
                    at,
                    f"Acknowledged by {actor['summary']}",
                    agent=actor,
                    channel=channel,
                    acknowledgement_timeout=None,
                )
            elif entry["action"] == "resolve":
                add(
                    "resolve_log_entry",
                    at,
                    f"Resolved by {actor['summary']}",
                    agent=actor,
                    channel=channel,
                )
        for note in alert["notes"]:
            add(
                "annotate_log_entry",
                note["created_at"],
                "Note added",
                agent=self.agent_reference(note["agent"], routing_key),
                channel={"type": "note", "summary": note["content"]},
            )
        # Newest first, as PagerDuty lists them; entries of the same instant keep
        # their causal order reversed with them.
        entries.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [entry for _, _, entry in entries]

    def note(self, alert: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
        """A note as ``GET /incidents/{id}/notes`` lists it."""
        user = self.roster.user(note["agent"]) if note["agent"] else None
        return {
            "id": note["id"],
            "user": self.user_reference(user) if user else None,
            "channel": {"summary": _WEB_CHANNEL},
            "content": note["content"],
            "created_at": note["created_at"],
        }

    # -- webhooks --------------------------------------------------------------------

    def webhook_event(self, change: Change) -> dict[str, Any]:
        """The v3 webhook body for a change: ``{"event": {...}}``."""
        alert = change.alert
        if change.kind == "annotated":
            assert change.note is not None
            data: dict[str, Any] = {
                "incident": self.incident_reference(alert),
                "id": change.note["id"],
                "content": change.note["content"],
                "trigger": None,
                "type": "incident_note",
            }
        else:
            data = self.webhook_incident(alert)
        return {
            "event": {
                "id": str(uuid.uuid4()),
                "event_type": f"incident.{change.kind}",
                "resource_type": "incident",
                "occurred_at": change.at,
                "agent": self.agent_reference(change.agent, alert["routing_key"]),
                "client": {"name": _EVENTS_API_CHANNEL} if change.via == "events_api" else None,
                "data": data,
            }
        }

    def webhook_incident(self, alert: dict[str, Any]) -> dict[str, Any]:
        """An incident as webhook v3 events carry it in ``data``."""
        incident = self.incident(alert)
        return {
            "id": incident["id"],
            "type": "incident",
            "self": incident["self"],
            "html_url": incident["html_url"],
            "number": incident["incident_number"],
            "status": incident["status"],
            "incident_key": incident["incident_key"],
            "created_at": incident["created_at"],
            "title": incident["title"],
            "service": incident["service"],
            "assignees": [a["assignee"] for a in incident["assignments"]],
            "escalation_policy": incident["escalation_policy"],
            "teams": [],
            "priority": None,
            "urgency": incident["urgency"],
            "conference_bridge": None,
            "resolve_reason": None,
        }

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _summary(alert: dict[str, Any]) -> str:
        return f"[#{alert['incident_number']}] {alert['summary']}"

    def _incident_html_url(self, alert: dict[str, Any]) -> str:
        return f"{self.console_url}#alert={alert['id']}"

    @staticmethod
    def _urgency(alert: dict[str, Any]) -> str:
        return "high" if alert["severity"] in HIGH_URGENCY_SEVERITIES else "low"

    def _last_status_change(self, alert: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        routing_key = alert["routing_key"]
        wanted = {"triggered": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
        action = wanted[alert["status"]]
        # The first entry of the current status's action after the last other change.
        entry = alert["log"][0] if alert["log"] else None
        for candidate in alert["log"]:
            if candidate["action"] == action and (entry is None or entry["action"] != action):
                entry = candidate
        if entry is None:
            return alert["first_seen"], self.service_reference(routing_key)
        return entry["at"], self.agent_reference(entry.get("agent"), routing_key)
