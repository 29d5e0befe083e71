"""What each REST API v2 call sends and how its answer is read, without any I/O.

Every public method of :class:`~pd_integrations.rest.client.RestClient` and
:class:`~pd_integrations.rest.async_client.AsyncRestClient` is one builder here: the arguments are
checked (a bad one raises :class:`RestInvalidRequestError` before anything is sent),
turned into a :class:`Request`, and paired with the function that unwraps PagerDuty's
envelope. Both clients run the same builders, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

from pd_integrations.errors import RestError, RestInvalidRequestError

JSON = dict[str, Any]
Param = tuple[str, str]
ParamValue = str | int | bool | datetime | Sequence[str] | None

INCIDENT_STATUSES: Final = ("triggered", "acknowledged", "resolved")
URGENCIES: Final = ("high", "low")
MAINTENANCE_WINDOW_FILTERS: Final = ("past", "future", "ongoing", "open", "all")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to the REST API, before the base URL and headers are added.

    ``needs_from`` marks the writes PagerDuty refuses without a ``From`` header;
    ``replay_safe`` is false for writes that a second copy would apply twice (a new
    note, a second incident), which are not re-sent after an ambiguous failure.
    """

    method: str
    path: str
    params: tuple[Param, ...] = ()
    body: JSON | None = None
    needs_from: bool = False
    replay_safe: bool = True


@dataclass(frozen=True, slots=True)
class Operation(Generic[_T]):
    """A single request and the function that turns its JSON answer into the result."""

    request: Request
    parse: Callable[[JSON | None], _T]


@dataclass(frozen=True, slots=True)
class Listing:
    """A paginated list: the first request without paging parameters, and where the items are."""

    request: Request
    key: str
    limit: int | None = None


# -- argument checks ------------------------------------------------------------------


def _invalid(text: str) -> RestInvalidRequestError:
    return RestInvalidRequestError(text, message=text)


def _id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise _invalid(f"{what} must be a non-empty PagerDuty id without spaces, got {value!r}")
    return value


def _segment(value: object, what: str) -> str:
    # Quoted with no safe characters so an id can never reach another path or a query.
    return quote(_id(value, what), safe="")


def _ids(values: str | Iterable[str] | None, what: str) -> list[str]:
    if values is None:
        return []
    # One id passed where a list was expected is meant as a list of one, not of letters.
    items = [values] if isinstance(values, str) else list(values)
    return [_id(item, what) for item in items]


def _choices(values: str | Iterable[str] | None, allowed: Sequence[str], what: str) -> list[str]:
    items = [] if values is None else [values] if isinstance(values, str) else list(values)
    return [_choice(item, allowed, what) for item in items]


def _choice(value: object, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise _invalid(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{what} must be a non-empty string, got {value!r}")
    return value


def _time(value: datetime | str, what: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _invalid(
                f"{what} must be a timezone-aware datetime (such as datetime.now(UTC)); "
                "a naive one is ambiguous"
            )
        return value.isoformat()
    return _text(value, what).strip()


def check_limit(limit: object) -> int | None:
    """``limit`` if it is ``None`` or a whole number of items, at least zero."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise _invalid(f"limit must be a whole number of items, at least 0, got {limit!r}")
    return limit


def _array(name: str, values: Sequence[str]) -> list[Param]:
    # PagerDuty reads list filters as repeated "name[]" parameters.
    return [(f"{name}[]", value) for value in values]


def _reference(kind: str, ident: str) -> JSON:
    return {"id": ident, "type": f"{kind}_reference"}


# -- answers --------------------------------------------------------------------------


def _unwrap(key: str) -> Callable[[JSON | None], JSON]:
    def parse(body: JSON | None) -> JSON:
        value = (body or {}).get(key)
        if not isinstance(value, dict):
            raise RestError(f"unexpected answer from PagerDuty: no {key!r} object in it")
        return value

    return parse


def _unwrap_list(key: str) -> Callable[[JSON | None], list[JSON]]:
    def parse(body: JSON | None) -> list[JSON]:
        return items_of(body, key)

    return parse


def items_of(body: JSON | None, key: str) -> list[JSON]:
    """The list of objects under ``key``; :class:`RestError` when it is not one."""
    value = (body or {}).get(key)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RestError(f"unexpected answer from PagerDuty: no {key!r} list of objects in it")
    return value


def _nothing(body: JSON | None) -> None:
    return None


def _get(path: str, key: str) -> Operation[JSON]:
    return Operation(Request("GET", path), _unwrap(key))


def _listing(path: str, key: str, params: list[Param], limit: int | None) -> Listing:
    return Listing(Request("GET", path, tuple(params)), key, check_limit(limit))


# -- incidents ------------------------------------------------------------------------


def list_incidents(
    *,
    statuses: str | Iterable[str] | None = None,
    service_ids: str | Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    urgencies: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> Listing:
    params = _array("statuses", _choices(statuses, INCIDENT_STATUSES, "statuses"))
    params += _array("service_ids", _ids(service_ids, "service_ids"))
    params += _array("urgencies", _choices(urgencies, URGENCIES, "urgencies"))
    if since is not None:
        params.append(("since", _time(since, "since")))
    if until is not None:
        params.append(("until", _time(until, "until")))
    return _listing("/incidents", "incidents", params, limit)


def get_incident(incident_id: str) -> Operation[JSON]:
    return _get(f"/incidents/{_segment(incident_id, 'incident_id')}", "incident")


def create_incident(
    title: str,
    service_id: str,
    *,
    urgency: str | None = None,
    body: str | None = None,
    escalation_policy_id: str | None = None,
    incident_key: str | None = None,
    priority_id: str | None = None,
) -> Operation[JSON]:
    incident: JSON = {
        "type": "incident",
        "title": _text(title, "title"),
        "service": _reference("service", _id(service_id, "service_id")),
    }
    if urgency is not None:
        incident["urgency"] = _choice(urgency, URGENCIES, "urgency")
    if body is not None:
        incident["body"] = {"type": "incident_body", "details": _text(body, "body")}
    if escalation_policy_id is not None:
        policy = _id(escalation_policy_id, "escalation_policy_id")
        incident["escalation_policy"] = _reference("escalation_policy", policy)
    if incident_key is not None:
        incident["incident_key"] = _text(incident_key, "incident_key")
    if priority_id is not None:
        incident["priority"] = _reference("priority", _id(priority_id, "priority_id"))
    request = Request(
        "POST",
        "/incidents",
        body={"incident": incident},
        needs_from=True,
        # PagerDuty refuses a second open incident with the same key, so only a keyed
        # create can be re-sent without risking a duplicate page.
        replay_safe=incident_key is not None,
    )
    return Operation(request, _unwrap("incident"))


def _update_incident(incident_id: str, changes: JSON) -> Operation[JSON]:
    path = f"/incidents/{_segment(incident_id, 'incident_id')}"
    body = {"incident": {"type": "incident_reference", **changes}}
    return Operation(Request("PUT", path, body=body, needs_from=True), _unwrap("incident"))


def acknowledge_incident(incident_id: str) -> Operation[JSON]:
    return _update_incident(incident_id, {"status": "acknowledged"})


def resolve_incident(incident_id: str, *, resolution: str | None = None) -> Operation[JSON]:
    changes: JSON = {"status": "resolved"}
    if resolution is not None:
        changes["resolution"] = _text(resolution, "resolution")
    return _update_incident(incident_id, changes)


def reassign_incident(
    incident_id: str,
    *,
    user_ids: str | Iterable[str] | None = None,
    escalation_policy_id: str | None = None,
) -> Operation[JSON]:
    users = _ids(user_ids, "user_ids")
    if bool(users) == (escalation_policy_id is not None):
        raise _invalid("reassign_incident needs either user_ids or escalation_policy_id (not both)")
    if users:
        assignments = [{"assignee": _reference("user", user)} for user in users]
        return _update_incident(incident_id, {"assignments": assignments})
    policy = _id(escalation_policy_id, "escalation_policy_id")
    return _update_incident(
        incident_id, {"escalation_policy": _reference("escalation_policy", policy)}
    )


def merge_incidents(target_id: str, source_ids: str | Iterable[str]) -> Operation[JSON]:
    target = _segment(target_id, "target_id")
    sources = _ids(source_ids, "source_ids")
    if not sources:
        raise _invalid("merge_incidents needs at least one source incident id")
    if target_id in sources:
        raise _invalid(f"cannot merge incident {target_id} into itself")
    body = {"source_incidents": [_reference("incident", source) for source in sources]}
    # A merge repeated after it succeeded fails on the already-merged sources.
    request = Request(
        "PUT", f"/incidents/{target}/merge", body=body, needs_from=True, replay_safe=False
    )
    return Operation(request, _unwrap("incident"))


def add_note(incident_id: str, content: str) -> Operation[JSON]:
    path = f"/incidents/{_segment(incident_id, 'incident_id')}/notes"
    body = {"note": {"content": _text(content, "content")}}
    request = Request("POST", path, body=body, needs_from=True, replay_safe=False)
    return Operation(request, _unwrap("note"))


def list_notes(incident_id: str) -> Operation[list[JSON]]:
    path = f"/incidents/{_segment(incident_id, 'incident_id')}/notes"
    return Operation(Request("GET", path), _unwrap_list("notes"))


# -- services -------------------------------------------------------------------------


def list_services(
    *,
    team_ids: str | Iterable[str] | None = None,
    query: str | None = None,
    limit: int | None = None,
) -> Listing:
    params = _array("team_ids", _ids(team_ids, "team_ids"))
    if query is not None:
        params.append(("query", _text(query, "query")))
    return _listing("/services", "services", params, limit)


def get_service(service_id: str) -> Operation[JSON]:
    return _get(f"/services/{_segment(service_id, 'service_id')}", "service")


# -- maintenance windows --------------------------------------------------------------


def create_maintenance_window(
    service_ids: str | Iterable[str],
    start: datetime,
    end: datetime,
    *,
    description: str | None = None,
) -> Operation[JSON]:
    services = _ids(service_ids, "service_ids")
    if not services:
        raise _invalid("a maintenance window needs at least one service id")
    for value, what in ((start, "start"), (end, "end")):
        if not isinstance(value, datetime):
            raise _invalid(f"{what} must be a timezone-aware datetime, got {value!r}")
    start_text, end_text = _time(start, "start"), _time(end, "end")
    if end <= start:
        raise _invalid(f"the maintenance window must end after it starts ({start} >= {end})")
    window: JSON = {
        "type": "maintenance_window",
        "start_time": start_text,
        "end_time": end_text,
        "services": [_reference("service", service) for service in services],
    }
    if description is not None:
        window["description"] = _text(description, "description")
    request = Request(
        "POST",
        "/maintenance_windows",
        body={"maintenance_window": window},
        needs_from=True,
        replay_safe=False,
    )
    return Operation(request, _unwrap("maintenance_window"))


def list_maintenance_windows(
    *,
    service_ids: str | Iterable[str] | None = None,
    filter: str | None = None,
    limit: int | None = None,
) -> Listing:
    params = _array("service_ids", _ids(service_ids, "service_ids"))
    if filter is not None:
        params.append(("filter", _choice(filter, MAINTENANCE_WINDOW_FILTERS, "filter")))
    return _listing("/maintenance_windows", "maintenance_windows", params, limit)


def end_maintenance_window(window_id: str) -> Operation[None]:
    path = f"/maintenance_windows/{_segment(window_id, 'window_id')}"
    return Operation(Request("DELETE", path), _nothing)


# -- on-call --------------------------------------------------------------------------


def list_oncalls(
    *,
    schedule_ids: str | Iterable[str] | None = None,
    user_ids: str | Iterable[str] | None = None,
    escalation_policy_ids: str | Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    earliest: bool | None = None,
    limit: int | None = None,
) -> Listing:
    params = _array("schedule_ids", _ids(schedule_ids, "schedule_ids"))
    params += _array("user_ids", _ids(user_ids, "user_ids"))
    params += _array("escalation_policy_ids", _ids(escalation_policy_ids, "escalation_policy_ids"))
    if since is not None:
        params.append(("since", _time(since, "since")))
    if until is not None:
        params.append(("until", _time(until, "until")))
    if earliest is not None:
        params.append(("earliest", "true" if earliest else "false"))
    return _listing("/oncalls", "oncalls", params, limit)


def current_on_call(schedule_id: str) -> Listing:
    # Without since/until PagerDuty answers for "now" by its own clock, not ours.
    return list_oncalls(schedule_ids=[_id(schedule_id, "schedule_id")])


def oncall_users(oncalls: Iterable[JSON]) -> list[JSON]:
    """The distinct users of ``oncalls``, first escalation level first.

    One person on call at several levels (or for several policies using the schedule)
    appears once.
    """

    def level(oncall: JSON) -> int:
        value = oncall.get("escalation_level")
        return value if isinstance(value, int) else 0

    users: list[JSON] = []
    seen: set[str] = set()
    for oncall in sorted(oncalls, key=level):
        user = oncall.get("user")
        if not isinstance(user, dict):
            continue
        ident = user.get("id")
        if isinstance(ident, str):
            if ident in seen:
                continue
            seen.add(ident)
        users.append(user)
    return users


# -- users ----------------------------------------------------------------------------


def list_users(
    *,
    query: str | None = None,
    team_ids: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> Listing:
    params = _array("team_ids", _ids(team_ids, "team_ids"))
    if query is not None:
        params.append(("query", _text(query, "query")))
    return _listing("/users", "users", params, limit)


def get_user(user_id: str) -> Operation[JSON]:
    return _get(f"/users/{_segment(user_id, 'user_id')}", "user")


# -- any other list endpoint ----------------------------------------------------------


def iter_all(
    path: str,
    *,
    params: Mapping[str, ParamValue] | None = None,
    key: str | None = None,
    limit: int | None = None,
) -> Listing:
    """A listing of any endpoint: ``params`` values that are lists become ``name[]``."""
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        raise _invalid(f"path must start with '/' and carry no query (pass params=), got {path!r}")
    segments = [segment for segment in path.split("/") if segment]
    key = key if key is not None else (segments[-1] if segments else "")
    if not key:
        raise _invalid(f"cannot tell the list's key from {path!r}; pass key=")
    pairs: list[Param] = []
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, datetime):
            pairs.append((name, _time(value, name)))
        elif isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            array = name if name.endswith("[]") else f"{name}[]"
            pairs += [(array, str(item)) for item in value]
    return _listing(path, key, pairs, limit)
