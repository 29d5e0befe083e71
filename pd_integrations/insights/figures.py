"""The figures of an insights report, computed from :class:`~.records.IncidentFacts`.

Pure and sans-IO: :func:`compute` takes the facts, the responders' time zones and the
options, and the time "now" (an injected clock), and returns the report as plain JSON
data whose shape is :data:`SCHEMA` (documented in ``docs/insights.md``).

Definitions, so that two runs over the same records give the same numbers:

* MTTA: first ``acknowledge_log_entry`` minus ``created_at``, over acknowledged
  incidents; MTTR: final resolve minus ``created_at``, over resolved incidents.
* median: the middle value (the mean of the two middle ones for an even count);
  p90: the nearest-rank 90th percentile (the ceil(0.9 n)-th smallest value).
* noise: *unacknowledged* (resolved and never acknowledged), *flapping* (triggered
  within ``flap_minutes`` of the previous incident of the same alert being resolved),
  *out of hours* (created outside working hours in the responder's time zone).
* SLA: an incident breaches when it was resolved after its service's target, or is
  still open past it; the share within SLA is over the incidents resolved or breached.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .records import AlertSource, IncidentFacts

__all__ = ["SCHEMA", "ReportOptions", "WorkingHours", "compute", "percentile", "suggestion"]

SCHEMA: Final = "pd-integrations/insights/v1"
DEFAULT_FLAP_MINUTES: Final = 30
NOISIEST: Final = 10


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """When a page is welcome: ``start`` to ``end`` local time on ``days`` (0 = Monday)."""

    start: time = time(9)
    end: time = time(18)
    days: frozenset[int] = frozenset(range(5))

    def contains(self, moment: datetime) -> bool:
        return moment.weekday() in self.days and self.start <= moment.time() < self.end


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What the report covers and how it judges; times are aware datetimes."""

    since: datetime
    until: datetime
    sla: timedelta | None = None
    sla_by_service: Mapping[str, timedelta] = field(default_factory=dict)
    flap_minutes: float = DEFAULT_FLAP_MINUTES
    working_hours: WorkingHours = WorkingHours()
    default_time_zone: str = "UTC"
    service_ids: Sequence[str] = ()
    team_ids: Sequence[str] = ()

    def sla_for(self, service_id: str) -> timedelta | None:
        return self.sla_by_service.get(service_id, self.sla)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in (0, 1]) of ``values``, ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def _spread(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_seconds": None, "p90_seconds": None}
    return {
        "count": len(values),
        "median_seconds": round(float(statistics.median(values)), 3),
        "p90_seconds": round(float(percentile(values, 0.9) or 0.0), 3),
    }


def _zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def suggestion(source: AlertSource | None, noise: Mapping[str, int], incidents: int) -> str:
    """One concrete next step for a noisy alert, in this library's settings when it sent it."""
    unacknowledged, flapping = noise["unacknowledged"], noise["flapping"]
    mostly_ignored = unacknowledged * 2 >= incidents
    if source is None:
        if flapping:
            return (
                "not sent by pd_integrations: it flaps, so hold the resolve at its source "
                "or group it in an event orchestration"
            )
        return "not sent by pd_integrations: review its threshold or urgency at its source"
    route = f" for route {source.route}" if source.route else ""
    if source.alert_type == "slow_request":
        return f"raise slow_request_ms{route} (or an alerting rule for it): it rarely needs anyone"
    if source.alert_type == "health_check":
        check = f" of health check {source.check!r}" if source.check else ""
        return f"raise the failure_threshold{check}: it recovers on its own"
    if source.alert_type == "exception" and source.exception_type and mostly_ignored:
        return f"add {source.exception_type} to ignore_exceptions: nobody acts on it"
    if source.alert_type == "http_error":
        return f"route HTTP errors{route} with a lower severity (an alerting rule)"
    what = source.exception_type or source.alert_type
    return f"route {what}{route} with a lower severity (an alerting rule)"


class _Group:
    """Running totals for one service, one alert, or the whole report."""

    def __init__(self) -> None:
        self.incidents = 0
        self.triggers = 0
        self.open = 0
        self.mtta: list[float] = []
        self.mttr: list[float] = []
        self.noise = {"unacknowledged": 0, "flapping": 0, "out_of_hours": 0}
        self.sla_evaluated = 0
        self.sla_within = 0
        self.breaches: list[str] = []

    def add(self, facts: IncidentFacts, flags: Mapping[str, bool], breach: bool | None) -> None:
        self.incidents += 1
        self.triggers += facts.triggers
        self.open += facts.status != "resolved"
        if facts.acknowledged_at is not None:
            self.mtta.append((facts.acknowledged_at - facts.created_at).total_seconds())
        if facts.resolved_at is not None:
            self.mttr.append((facts.resolved_at - facts.created_at).total_seconds())
        for name, flagged in flags.items():
            self.noise[name] += flagged
        if breach is not None:
            self.sla_evaluated += 1
            self.sla_within += not breach
            if breach:
                self.breaches.append(facts.id)

    def figures(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "triggers": self.triggers,
            "open": self.open,
            "mtta": _spread(self.mtta),
            "mttr": _spread(self.mttr),
            "noise": dict(self.noise),
        }

    def sla(self, target: timedelta | None, *, judged: bool = False) -> dict[str, Any] | None:
        """SLA figures, or ``None`` when no target applies (``judged``: some target did)."""
        if target is None and not judged:
            return None
        share = self.sla_within / self.sla_evaluated if self.sla_evaluated else None
        return {
            "target_seconds": None if target is None else target.total_seconds(),
            "evaluated": self.sla_evaluated,
            "within": self.sla_within,
            "breached": len(self.breaches),
            "share_within": None if share is None else round(share, 4),
            "breaches": list(self.breaches),
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def compute(
    facts: Iterable[IncidentFacts],
    *,
    options: ReportOptions,
    time_zones: Mapping[str, str] | Callable[[str], str | None] = {},  # noqa: B006
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """The report for ``facts`` (incidents outside the options' window are left out).

    ``time_zones`` maps a responder's user id to an IANA zone name (or is a function
    doing so); an unknown responder is judged in ``options.default_time_zone``.
    """
    zone_of = time_zones if callable(time_zones) else time_zones.get
    at = now()
    ordered = sorted(
        (f for f in facts if options.since <= f.created_at < options.until),
        key=lambda f: (f.created_at, f.id),
    )
    total = _Group()
    services: defaultdict[str, _Group] = defaultdict(_Group)
    alerts: defaultdict[tuple[str, str], _Group] = defaultdict(_Group)
    service_names: dict[str, str] = {}
    alert_meta: dict[tuple[str, str], IncidentFacts] = {}
    last_resolve: dict[tuple[str, str], datetime] = {}
    days: dict[str, _Group] = defaultdict(_Group)
    flap = timedelta(minutes=options.flap_minutes)
    zones: dict[str | None, ZoneInfo] = {}
    for item in ordered:
        alert_id = (item.service_id, item.alert)
        previous = last_resolve.get(alert_id)
        if item.responder_id not in zones:
            name = zone_of(item.responder_id) if item.responder_id else None
            zones[item.responder_id] = _zone(name, options.default_time_zone)
        local = item.created_at.astimezone(zones[item.responder_id])
        flags = {
            "unacknowledged": item.status == "resolved" and not item.acknowledged,
            "flapping": previous is not None and timedelta(0) <= item.created_at - previous <= flap,
            "out_of_hours": not options.working_hours.contains(local),
        }
        if item.resolved_at is not None:
            last_resolve[alert_id] = item.resolved_at
        target = options.sla_for(item.service_id)
        breach: bool | None = None
        if target is not None:
            if item.resolved_at is not None:
                breach = item.resolved_at - item.created_at > target
            elif at - item.created_at > target:
                breach = True
        for group in (total, services[item.service_id], alerts[alert_id]):
            group.add(item, flags, breach)
        days[item.created_at.date().isoformat()].add(item, flags, None)
        service_names.setdefault(item.service_id, item.service_name)
        alert_meta.setdefault(alert_id, item)
    service_rows = [
        {
            "id": ident,
            "name": service_names[ident],
            **group.figures(),
            "sla": group.sla(options.sla_for(ident)),
        }
        for ident, group in sorted(services.items(), key=lambda kv: (-kv[1].incidents, kv[0]))
    ]
    alert_rows = []
    for (service, key), group in alerts.items():
        first = alert_meta[(service, key)]
        noise = sum(group.noise.values())
        source = first.source
        alert_rows.append(
            {
                "key": key,
                "title": first.title,
                "service_id": service,
                "source": None
                if source is None
                else {
                    "alert_type": source.alert_type,
                    "route": source.route,
                    "method": source.method,
                    "exception_type": source.exception_type,
                    "check": source.check,
                },
                **group.figures(),
                "noise_score": noise,
                "suggestion": suggestion(source, group.noise, group.incidents) if noise else None,
            }
        )
    alert_rows.sort(key=lambda row: (-row["noise_score"], -row["incidents"], row["key"]))
    day_rows = []
    day = options.since.astimezone(UTC).date()
    while day <= (options.until - timedelta(microseconds=1)).astimezone(UTC).date():
        group = days.get(day.isoformat(), _Group())
        figures = group.figures()
        day_rows.append(
            {
                "date": day.isoformat(),
                "incidents": group.incidents,
                "mtta_median_seconds": figures["mtta"]["median_seconds"],
                "mttr_median_seconds": figures["mttr"]["median_seconds"],
            }
        )
        day += timedelta(days=1)
    hours = options.working_hours
    return {
        "schema": SCHEMA,
        "generated_at": _iso(at),
        "window": {"since": _iso(options.since), "until": _iso(options.until)},
        "filters": {"service_ids": list(options.service_ids), "team_ids": list(options.team_ids)},
        "settings": {
            "sla_seconds": None if options.sla is None else options.sla.total_seconds(),
            "sla_by_service_seconds": {
                k: v.total_seconds() for k, v in sorted(options.sla_by_service.items())
            },
            "flap_minutes": options.flap_minutes,
            "working_hours": {
                "start": hours.start.isoformat("minutes"),
                "end": hours.end.isoformat("minutes"),
                "days": sorted(hours.days),
            },
            "default_time_zone": options.default_time_zone,
        },
        "totals": {**total.figures(), "sla": total.sla(options.sla, judged=_any_sla(options))},
        "services": service_rows,
        "alerts": alert_rows,
        "noisiest": [row["key"] for row in alert_rows if row["noise_score"]][:NOISIEST],
        "days": day_rows,
    }


def _any_sla(options: ReportOptions) -> bool:
    return options.sla is not None or bool(options.sla_by_service)
