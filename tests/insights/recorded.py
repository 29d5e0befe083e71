"""REST API v2 answers shaped like the examples in PagerDuty's API reference.

Three incidents on one service over two days: #1234 acknowledged by a user and then
resolved by them (its log spans two pages), #1235 resolved by the integration with no
acknowledgement, #1236 still open (triggered, escalated, snoozed, unacknowledged). The
objects carry PagerDuty's fields (references with ``self``/``html_url``, ``summary``,
``first_trigger_log_entry``, ``alert_counts``...), written from the documentation's
field lists; :class:`RecordedPagerDuty` wraps them in PagerDuty's list envelope
(``limit``, ``offset``, ``more``, ``total``) two items a page.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

API = "https://api.pagerduty.com"
APP = "https://subdomain.pagerduty.com"
PAGE = 2


def _ref(kind: str, ident: str, summary: str, path: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"{API}/{path}/{ident}",
        "html_url": f"{APP}/{path}/{ident}",
    }


SERVICE = _ref("service", "PIJ90N7", "My Mail Service", "services")
POLICY = _ref(
    "escalation_policy", "PT20YPA", "Engineering Escalation Policy", "escalation_policies"
)
TEAM = _ref("team", "PQ9K7I8", "Engineering", "teams")
EARLINE = _ref("user", "PXPGF42", "Earline Greenholt", "users")
INTEGRATION = _ref(
    "generic_events_api_inbound_integration",
    "PE1U9CH",
    "Events API v2",
    "services/PIJ90N7/integrations",
)

USERS = {
    "PXPGF42": {
        **EARLINE,
        "type": "user",
        "name": "Earline Greenholt",
        "email": "125.greenholt.earline@graham.name",
        "time_zone": "America/Lima",
        "color": "green",
        "role": "admin",
        "description": "I'm the boss",
        "invitation_sent": False,
        "job_title": "Director of Engineering",
        "teams": [TEAM],
        "contact_methods": [],
        "notification_rules": [],
    }
}


def _incident(
    number: int, ident: str, title: str, status: str, created: str, changed: str, key: str | None
) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "incident",
        "summary": f"[#{number}] {title}",
        "self": f"{API}/incidents/{ident}",
        "html_url": f"{APP}/incidents/{ident}",
        "incident_number": number,
        "title": title,
        "created_at": created,
        "updated_at": changed,
        "status": status,
        "incident_key": key,
        "service": SERVICE,
        "assignments": [] if status == "resolved" else [{"at": created, "assignee": EARLINE}],
        "assigned_via": "escalation_policy",
        "last_status_change_at": changed,
        "resolved_at": changed if status == "resolved" else None,
        "first_trigger_log_entry": _ref(
            "trigger_log_entry", f"R{ident}1", "Triggered through the API", "log_entries"
        ),
        "alert_counts": {
            "all": 1,
            "triggered": int(status != "resolved"),
            "resolved": int(status == "resolved"),
        },
        "is_mergeable": True,
        "escalation_policy": POLICY,
        "teams": [TEAM],
        "pending_actions": [],
        "acknowledgements": [],
        "basic_alert_grouping": None,
        "alert_grouping": None,
        "last_status_change_by": SERVICE,
        "priority": None,
        "resolve_reason": None,
        "incidents_responders": [],
        "responder_requests": [],
        "subscriber_requests": [],
        "urgency": "high",
    }


INCIDENTS = [
    _incident(
        1234,
        "PT4KHLK",
        "The server is on fire.",
        "resolved",
        "2015-10-06T21:30:42Z",
        "2015-10-06T22:30:42Z",
        "baf7cf21b1da41b4b0db2524e6e4a7e6",
    ),
    _incident(
        1235,
        "PT4KHLL",
        "Checkout latency above 2s",
        "resolved",
        "2015-10-07T03:00:00Z",
        "2015-10-07T03:04:00Z",
        "prod:web:slow_request:GET /checkout",
    ),
    _incident(
        1236,
        "PT4KHLM",
        "Disk 93% full on db4",
        "triggered",
        "2015-10-07T13:00:00Z",
        "2015-10-07T13:00:00Z",
        None,
    ),
]


def _entry(
    kind: str,
    ident: str,
    incident: dict[str, Any],
    at: str,
    summary: str,
    agent: dict[str, Any],
    channel: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": ident,
        "type": kind,
        "summary": summary,
        "self": f"{API}/log_entries/{ident}?incident_id={incident['id']}",
        "html_url": f"{APP}/incidents/{incident['id']}/log_entries/{ident}",
        "created_at": at,
        "agent": agent,
        "channel": channel,
        "service": SERVICE,
        "incident": _ref("incident", incident["id"], incident["summary"], "incidents"),
        "teams": [TEAM],
        "contexts": [],
        **extra,
    }


def _api_channel(incident: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "api",
        "service_key": "a71b5a5e2b5b4c2cbb3bc8a8b6e1c6b1",
        "description": incident["title"],
        "incident_key": incident["incident_key"],
        "details": details,
        "cef_details": {"message": incident["title"], "severity": "critical"},
        "summary": incident["title"],
    }


def _notify(ident: str, incident: dict[str, Any], at: str) -> dict[str, Any]:
    return _entry(
        "notify_log_entry",
        ident,
        incident,
        at,
        "Notification sent to Earline Greenholt",
        EARLINE,
        {
            "type": "notification",
            "notification": {
                "type": "sms_notification",
                "status": "success",
                "address": "+15555550100",
            },
        },
        user=EARLINE,
    )


FIRE, SLOW, DISK = INCIDENTS
# Newest first, as PagerDuty lists them.
LOG_ENTRIES: dict[str, list[dict[str, Any]]] = {
    FIRE["id"]: [
        _entry(
            "resolve_log_entry",
            "R1F5",
            FIRE,
            "2015-10-06T22:30:42Z",
            "Resolved by Earline Greenholt",
            EARLINE,
            {"type": "web_ui"},
        ),
        _entry(
            "annotate_log_entry",
            "R1F4",
            FIRE,
            "2015-10-06T22:10:00Z",
            "Note added",
            EARLINE,
            {"type": "note", "summary": "Rolled back the deploy"},
        ),
        _entry(
            "acknowledge_log_entry",
            "R1F3",
            FIRE,
            "2015-10-06T21:38:42Z",
            "Acknowledged by Earline Greenholt",
            EARLINE,
            {"type": "sms"},
            acknowledgement_timeout=1800,
        ),
        _notify("R1F2", FIRE, "2015-10-06T21:30:43Z"),
        _entry(
            "trigger_log_entry",
            "RPT4KHLK1",
            FIRE,
            "2015-10-06T21:30:42Z",
            "Triggered through the API",
            INTEGRATION,
            _api_channel(FIRE, {"host": "web1"}),
            event_details={"description": FIRE["title"]},
        ),
    ],
    SLOW["id"]: [
        _entry(
            "resolve_log_entry",
            "R2S3",
            SLOW,
            "2015-10-07T03:04:00Z",
            "Resolved through the API",
            INTEGRATION,
            {"type": "api"},
        ),
        _notify("R2S2", SLOW, "2015-10-07T03:00:01Z"),
        _entry(
            "trigger_log_entry",
            "RPT4KHLL1",
            SLOW,
            "2015-10-07T03:00:00Z",
            "Triggered through the API",
            INTEGRATION,
            _api_channel(
                SLOW,
                {
                    "alert_type": "slow_request",
                    "route": "/checkout",
                    "method": "GET",
                    "duration_ms": 2400,
                    "release": "web@1.4.2",
                },
            ),
            event_details={"description": SLOW["title"]},
        ),
    ],
    DISK["id"]: [
        _entry(
            "unacknowledge_log_entry",
            "R3D5",
            DISK,
            "2015-10-07T13:40:00Z",
            "Unacknowledged due to snooze timeout",
            POLICY,
            {"type": "timeout"},
        ),
        _entry(
            "snooze_log_entry",
            "R3D4",
            DISK,
            "2015-10-07T13:20:00Z",
            "Snoozed by Earline Greenholt",
            EARLINE,
            {"type": "web_ui"},
            changed_actions=[],
        ),
        _entry(
            "escalate_log_entry",
            "R3D3",
            DISK,
            "2015-10-07T13:15:00Z",
            "Escalated to level 2",
            POLICY,
            {"type": "timeout"},
            assignees=[EARLINE],
            escalation_level=2,
        ),
        _notify("R3D2", DISK, "2015-10-07T13:00:01Z"),
        _entry(
            "trigger_log_entry",
            "RPT4KHLM1",
            DISK,
            "2015-10-07T13:00:00Z",
            "Triggered through the API",
            INTEGRATION,
            _api_channel(DISK, {}),
            event_details={"description": DISK["title"]},
        ),
    ],
}


def _time(text: str) -> str:
    return text.replace("+00:00", "Z")


class RecordedPagerDuty:
    """An httpx transport answering from the records; ``requests`` lists what was asked."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def _page(
        self, request: httpx.Request, key: str, items: list[dict[str, Any]]
    ) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        page = items[offset : offset + PAGE]
        body = {
            key: page,
            "limit": PAGE,
            "offset": offset,
            "total": None,
            "more": offset + len(page) < len(items),
        }
        return httpx.Response(
            200, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/incidents":
            since = request.url.params["since"]
            until = request.url.params["until"]
            from pd_integrations.insights.records import parse_time

            low, high = parse_time(since), parse_time(until)
            assert low is not None
            assert high is not None
            found = [i for i in INCIDENTS if low <= (parse_time(i["created_at"]) or low) < high]
            return self._page(request, "incidents", found)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "incidents" and parts[2] == "log_entries":
            return self._page(request, "log_entries", LOG_ENTRIES[parts[1]])
        if len(parts) == 2 and parts[0] == "incidents":
            (incident,) = [i for i in INCIDENTS if i["id"] == parts[1]]
            return httpx.Response(200, json={"incident": incident})
        if len(parts) == 2 and parts[0] == "users" and parts[1] in USERS:
            return httpx.Response(200, json={"user": USERS[parts[1]]})
        return httpx.Response(404, json={"error": {"message": "Not Found", "code": 2100}})
