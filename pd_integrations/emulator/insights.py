"""``GET /api/insights``: the insights report of the emulator's own incidents.

The console's Insights view shows it. The figures are the library's
(:mod:`pd_integrations.insights`), computed from the same incidents and log entries the
REST API serves, so the view and ``pd-integrations report`` against the emulator agree.
Query: ``since`` and ``until`` (ISO 8601 or a duration ago such as ``7d``; default the
last 30 days), ``sla`` (``30m``; repeat as ``SERVICE_ID=15m`` for a service),
``flap_minutes``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .api import Request, Response, json_response
from .resources import Resources
from .state import Store

DEFAULT_DAYS = 30


def _error(message: str) -> Response:
    return json_response(400, {"error": message})


class InsightsView:
    """Computes the report on demand; ``now`` is the wall clock (tests pass a fake)."""

    def __init__(
        self, store: Store, resources: Resources, now: Callable[[], datetime] | None = None
    ) -> None:
        self.store, self.resources = store, resources
        self.now = now or (lambda: datetime.now(UTC))

    def handle(self, request: Request) -> Response:
        # Imported here: the emulator runs without the report's modules until asked.
        from pd_integrations.insights import ReportOptions, compute, fold_incident
        from pd_integrations.insights.report import parse_sla, parse_when

        now = self.now()
        query = request.query
        try:
            until = parse_when(query["until"][-1], now) if "until" in query else now
            since = (
                parse_when(query["since"][-1], now)
                if "since" in query
                else until - timedelta(days=DEFAULT_DAYS)
            )
            sla, by_service = parse_sla(query.get("sla", []))
            flap = float(query["flap_minutes"][-1]) if "flap_minutes" in query else 30.0
        except ValueError as error:
            return _error(str(error))
        if until <= since:
            return _error("until must come after since")
        zones = {user.id: user.time_zone for user in self.resources.roster.users}
        facts = (
            fold_incident(self.resources.incident(alert), self.resources.log_entries(alert))
            for alert in self.store.alerts()
        )
        options = ReportOptions(
            since=since, until=until, sla=sla, sla_by_service=by_service, flap_minutes=flap
        )
        report: dict[str, Any] = compute(facts, options=options, time_zones=zones, now=lambda: now)
        return json_response(200, report)
