"""A subset of PagerDuty's REST API v2 under ``/rest``, backed by the emulator's alerts.

Incidents (list, show, acknowledge or resolve with ``PUT``, notes, log entries),
on-calls, users and services. Requests need ``Authorization: Token token=...`` (or
``Bearer ...``); the ``Accept`` header, when it names PagerDuty's media type, must ask
for version 2; writes need a ``From`` header naming a user of the roster. Errors have
PagerDuty's shape, ``{"error": {"message", "code", "errors"}}``. Lists use classic
pagination (``limit`` up to 100, ``offset``, ``more``, ``total`` with ``total=true``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import rules
from .api import Request, Response, json_response
from .resources import Resources, service_id
from .roster import User
from .state import ALERT_STATUSES, AlertClosed, Store, UnknownAlert

PREFIX = "/rest"
MEDIA_TYPE = "application/vnd.pagerduty+json"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_OFFSET_PLUS_LIMIT = 10_000

INVALID_INPUT = 2001
AUTHENTICATION_FAILED = 2006
NOT_FOUND = 2100
FROM_MISSING = 2016
REQUESTER_NOT_FOUND = 1008

_ACCEPTED_TYPES = ("*/*", "application/*", "application/json", MEDIA_TYPE)
_VERSION = re.compile(r"version\s*=\s*\"?([^\";,\s]+)")

Handler = Callable[[Request, re.Match[str]], Response]


class RestError(Exception):
    """An answer in PagerDuty's error shape."""

    def __init__(self, status: int, message: str, code: int, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.errors = status, message, code, list(errors)

    def response(self) -> Response:
        error: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            error["errors"] = self.errors
        return json_response(self.status, {"error": error})


def _invalid(*errors: str) -> RestError:
    return RestError(400, "Invalid Input Provided", INVALID_INPUT, errors)


def _not_found(what: str) -> RestError:
    return RestError(404, "Not Found", NOT_FOUND, [what])


class RestApi:
    """The ``/rest`` routes; ``token``, when set, is the only API key accepted."""

    def __init__(self, store: Store, resources: Resources, *, token: str | None = None) -> None:
        self.store = store
        self.resources = resources
        self.token = token
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/incidents"), self._list_incidents),
            ("GET", re.compile(r"/incidents/([^/]+)"), self._get_incident),
            ("PUT", re.compile(r"/incidents/([^/]+)"), self._update_incident),
            ("GET", re.compile(r"/incidents/([^/]+)/notes"), self._list_notes),
            ("GET", re.compile(r"/incidents/([^/]+)/log_entries"), self._list_log_entries),
            ("POST", re.compile(r"/incidents/([^/]+)/notes"), self._add_note),
            ("GET", re.compile(r"/oncalls"), self._list_oncalls),
            ("GET", re.compile(r"/users"), self._list_users),
            ("GET", re.compile(r"/users/([^/]+)"), self._get_user),
            ("GET", re.compile(r"/services"), self._list_services),
            ("GET", re.compile(r"/services/([^/]+)"), self._get_service),
        ]

    def handle(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            self._check_accept(request)
            path = request.path[len(PREFIX) :].rstrip("/") or "/"
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if match is not None and method == request.method:
                    return handler(request, match)
            raise _not_found(f"the emulator does not implement {request.method} {request.path}")
        except RestError as error:
            return error.response()

    # -- checks ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "").strip()
        scheme, _, credentials = header.partition(" ")
        token = ""
        if scheme.lower() == "token":
            name, sep, value = credentials.strip().partition("=")
            token = value.strip() if sep and name.strip().lower() == "token" else ""
        elif scheme.lower() == "bearer":
            token = credentials.strip()
        if not token:
            raise RestError(
                401,
                "Unauthorized",
                AUTHENTICATION_FAILED,
                ["send 'Authorization: Token token=<API key>'"],
            )
        if self.token is not None and token != self.token:
            raise RestError(401, "Unauthorized", AUTHENTICATION_FAILED, ["unknown API key"])

    @staticmethod
    def _check_accept(request: Request) -> None:
        accept = request.headers.get("accept")
        if accept is None or not accept.strip():
            return
        for item in accept.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type not in _ACCEPTED_TYPES:
                continue
            version = _VERSION.search(item)
            if media_type != MEDIA_TYPE or version is None or version.group(1) == "2":
                return
        raise RestError(
            406,
            "Not Acceptable",
            INVALID_INPUT,
            [f"Accept must allow {MEDIA_TYPE};version=2, got {accept!r}"],
        )

    def _requester(self, request: Request) -> User:
        email = request.headers.get("from", "").strip()
        if not email:
            raise RestError(
                400,
                'You must specify a user\'s email address in the "From" header '
                "to perform this action",
                FROM_MISSING,
            )
        user = self.resources.roster.user_by_email(email)
        if user is None:
            raise RestError(400, "Requester User Not Found", REQUESTER_NOT_FOUND, [email])
        return user

    # -- incidents -------------------------------------------------------------------

    def _list_incidents(self, request: Request, match: re.Match[str]) -> Response:
        statuses = _values(request, "statuses")
        if any(status not in ALERT_STATUSES for status in statuses):
            raise _invalid("Status must be a list of triggered, acknowledged, or resolved.")
        urgencies = _values(request, "urgencies")
        if any(urgency not in ("high", "low") for urgency in urgencies):
            raise _invalid("Urgencies must be a list of high or low.")
        service_ids = set(_values(request, "service_ids"))
        # Emulated services belong to no team, so a team filter matches nothing.
        team_ids = set(_values(request, "team_ids"))
        incident_key = _value(request, "incident_key")
        since, until = _time(request, "since"), _time(request, "until")
        incidents = []
        for alert in self.store.alerts():
            created = _parse_time(alert["first_seen"])
            # The time window first: building an incident costs more than comparing.
            if (since is not None and created < since) or (until is not None and created >= until):
                continue
            incident = self.resources.incident(alert)
            if (
                (not statuses or incident["status"] in statuses)
                and (not urgencies or incident["urgency"] in urgencies)
                and (not service_ids or incident["service"]["id"] in service_ids)
                and not team_ids
                and (incident_key is None or incident["incident_key"] == incident_key)
                and (since is None or created >= since)
                and (until is None or created < until)
            ):
                incidents.append(incident)
        return _page(request, "incidents", incidents)

    def _alert(self, alert_id: str) -> dict[str, Any]:
        try:
            return self.store.alert(alert_id)
        except UnknownAlert:
            raise _not_found(f"no incident with id {alert_id}") from None

    def _get_incident(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, {"incident": self.resources.incident(self._alert(match[1]))})

    def _update_incident(self, request: Request, match: re.Match[str]) -> Response:
        user = self._requester(request)
        incident = _body(request).get("incident")
        if not isinstance(incident, dict):
            raise _invalid('the body must be {"incident": {"type": ..., "status": ...}}')
        unsupported = sorted(set(incident) - {"type", "status", "resolution"})
        if unsupported:
            raise _invalid(f"the emulator can only change status, not {', '.join(unsupported)}")
        if incident.get("type") not in ("incident", "incident_reference"):
            raise _invalid("Type must be incident or incident_reference.")
        status = incident.get("status")
        resolution = incident.get("resolution")
        if resolution is not None and not isinstance(resolution, str):
            raise _invalid("Resolution must be a string.")
        self._alert(match[1])
        try:
            if status == "acknowledged":
                alert = self.store.respond(match[1], "acknowledge", via="rest_api", agent=user.id)
            elif status == "resolved":
                alert = self.store.respond(
                    match[1], "resolve", via="rest_api", agent=user.id, resolution=resolution
                )
            else:
                raise _invalid("Status must be acknowledged or resolved.")
        except UnknownAlert:
            raise _not_found(f"no incident with id {match[1]}") from None
        except AlertClosed:
            raise _invalid("Incident Already Resolved") from None
        return json_response(200, {"incident": self.resources.incident(alert)})

    def _list_notes(self, request: Request, match: re.Match[str]) -> Response:
        alert = self._alert(match[1])
        notes = [self.resources.note(alert, note) for note in alert["notes"]]
        return json_response(200, {"notes": notes})

    def _list_log_entries(self, request: Request, match: re.Match[str]) -> Response:
        alert = self._alert(match[1])
        since, until = _time(request, "since"), _time(request, "until")
        overview = (_value(request, "is_overview") or "").lower() == "true"
        entries = [
            entry
            for entry in self.resources.log_entries(alert)
            if (since is None or _parse_time(entry["created_at"]) >= since)
            and (until is None or _parse_time(entry["created_at"]) < until)
            # The overview keeps the changes of state, not each notification.
            and not (overview and entry["type"] in ("notify_log_entry", "assign_log_entry"))
        ]
        return _page(request, "log_entries", entries)

    def _add_note(self, request: Request, match: re.Match[str]) -> Response:
        user = self._requester(request)
        note = _body(request).get("note")
        content = note.get("content") if isinstance(note, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise _invalid("Content cannot be empty.")
        alert = self._alert(match[1])
        try:
            added = self.store.add_note(match[1], content, agent=user.id, via="rest_api")
        except UnknownAlert:
            raise _not_found(f"no incident with id {match[1]}") from None
        return json_response(201, {"note": self.resources.note(alert, added)})

    # -- the rest ----------------------------------------------------------------------

    def _list_oncalls(self, request: Request, match: re.Match[str]) -> Response:
        schedule_ids = set(_values(request, "schedule_ids"))
        user_ids = set(_values(request, "user_ids"))
        policy_ids = set(_values(request, "escalation_policy_ids"))
        roster = self.resources.roster
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start_text, end_text = _format_time(start), _format_time(start + timedelta(days=7))
        oncalls = [
            self.resources.oncall(level, schedule, user, start_text, end_text)
            for level, schedule, user in roster.on_call()
            if (not schedule_ids or schedule.id in schedule_ids)
            and (not user_ids or user.id in user_ids)
            and (not policy_ids or roster.escalation_policy.id in policy_ids)
        ]
        return _page(request, "oncalls", oncalls)

    def _list_users(self, request: Request, match: re.Match[str]) -> Response:
        query = (_value(request, "query") or "").lower()
        users = [
            self.resources.user(user)
            for user in self.resources.roster.users
            if query in user.name.lower() or query in user.email.lower()
        ]
        return _page(request, "users", users)

    def _get_user(self, request: Request, match: re.Match[str]) -> Response:
        user = self.resources.roster.user(match[1])
        if user is None:
            raise _not_found(f"no user with id {match[1]}")
        return json_response(200, {"user": self.resources.user(user)})

    def _services(self) -> list[dict[str, Any]]:
        alerts = self.store.alerts()
        return [
            self.resources.service(key, first_seen, alerts)
            for key, first_seen in self.store.routing_keys().items()
        ]

    def _list_services(self, request: Request, match: re.Match[str]) -> Response:
        query = (_value(request, "query") or "").lower()
        services = [s for s in self._services() if query in s["name"].lower()]
        return _page(request, "services", services)

    def _get_service(self, request: Request, match: re.Match[str]) -> Response:
        for key in self.store.routing_keys():
            if service_id(key) == match[1]:
                (service,) = [s for s in self._services() if s["id"] == match[1]]
                return json_response(200, {"service": service})
        raise _not_found(f"no service with id {match[1]}")


# -- query parameters ---------------------------------------------------------------------


def _values(request: Request, name: str) -> list[str]:
    """An array parameter, sent as ``name[]=a&name[]=b`` (or without the brackets)."""
    values = [*request.query.get(f"{name}[]", []), *request.query.get(name, [])]
    return [item for value in values for item in value.split(",") if item]


def _value(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def _integer(request: Request, name: str, default: int) -> int:
    text = _value(request, name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()):
        raise _invalid(f"{name.capitalize()} must be a non-negative integer.")
    return int(text)


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _format_time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _time(request: Request, name: str) -> datetime | None:
    text = _value(request, name)
    if text is None:
        return None
    try:
        return _parse_time(text)
    except ValueError:
        raise _invalid(f"{name} must be an ISO 8601 date-time, got {text!r}") from None


def _page(request: Request, key: str, items: list[dict[str, Any]]) -> Response:
    limit = min(_integer(request, "limit", DEFAULT_LIMIT), MAX_LIMIT) or DEFAULT_LIMIT
    offset = _integer(request, "offset", 0)
    if offset + limit > MAX_OFFSET_PLUS_LIMIT:
        raise _invalid(f"Offset plus limit must not exceed {MAX_OFFSET_PLUS_LIMIT}.")
    page = items[offset : offset + limit]
    total = (_value(request, "total") or "").lower() == "true"
    return json_response(
        200,
        {
            key: page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(items),
            "total": len(items) if total else None,
        },
    )


def _body(request: Request) -> dict[str, Any]:
    if request.body_error is not None:
        raise _invalid(request.body_error)
    document, error = rules.parse_json(request.body)
    if error is not None or not isinstance(document, dict):
        raise _invalid("the body must be a JSON object")
    return document
