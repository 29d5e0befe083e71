"""Building a report: options from command-line words, facts from the REST API.

:func:`build_report` is the Python API under ``pd-integrations report``: it reads
through a :class:`~pd_integrations.rest.client.RestClient` (see :mod:`.fetch`) and returns the
report's JSON data (see :mod:`.figures`). :func:`parse_duration` and :func:`parse_sla`
read ``30d``, ``90m``, ``PXYZ123=15m`` and raise ValueError with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pd_integrations.rest.client import RestClient

from .fetch import Progress, TimeZones, read_facts
from .figures import ReportOptions, WorkingHours, compute

__all__ = ["build_report", "parse_duration", "parse_sla", "parse_when"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``4h``, ``30d``, ``2w`` or a combination (``1h30m``)."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"expected a duration such as 30m, 4h or 30d, got {text!r}")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be longer than zero, got {text!r}")
    return timedelta(seconds=seconds)


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO 8601 date or time (UTC when it has no offset), or a duration ago (``30d``)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 date or time (2026-05-01, 2026-05-01T09:00Z) or a "
            f"duration ago (30d), got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_sla(values: Iterable[str]) -> tuple[timedelta | None, dict[str, timedelta]]:
    """``--sla`` values: a default target (``30m``) and per-service ones (``PXYZ=15m``)."""
    default: timedelta | None = None
    by_service: dict[str, timedelta] = {}
    for value in values:
        service, sep, duration = value.rpartition("=")
        if sep and not service.strip():
            raise ValueError(f"expected SERVICE_ID=DURATION, got {value!r}")
        target = parse_duration(duration if sep else value)
        if sep:
            by_service[service.strip()] = target
        else:
            default = target
    return default, by_service


def build_report(
    client: RestClient,
    *,
    since: datetime,
    until: datetime,
    service_ids: Sequence[str] = (),
    team_ids: Sequence[str] = (),
    sla: timedelta | None = None,
    sla_by_service: dict[str, timedelta] | None = None,
    flap_minutes: float = 30,
    working_hours: WorkingHours | None = None,
    default_time_zone: str = "UTC",
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """The insights report of incidents created in ``[since, until)`` (aware datetimes).

    Reads through ``client`` (its retries and errors apply: a
    :class:`~pd_integrations.errors.RestError` means the report could not be made).
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware datetimes")
    if until <= since:
        raise ValueError(f"until ({until.isoformat()}) must come after since ({since.isoformat()})")
    options = ReportOptions(
        since=since,
        until=until,
        sla=sla,
        sla_by_service=dict(sla_by_service or {}),
        flap_minutes=flap_minutes,
        working_hours=working_hours or WorkingHours(),
        default_time_zone=default_time_zone,
        service_ids=tuple(service_ids),
        team_ids=tuple(team_ids),
    )
    facts = read_facts(
        client,
        since=since,
        until=until,
        service_ids=service_ids,
        team_ids=team_ids,
        progress=progress,
    )
    return compute(facts, options=options, time_zones=TimeZones(client), now=now)
