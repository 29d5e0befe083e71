"""Insights from PagerDuty's own records: alert fatigue, MTTA/MTTR and SLA figures.

::

    from pd_integrations.insights import build_report, render_text
    with RestClient() as client:
        report = build_report(client, since=now - timedelta(days=30), until=now,
                              sla=timedelta(minutes=30))
    print(render_text(report))

:func:`build_report` reads incidents and their log entries (see :mod:`.fetch`) and
computes the figures (see :mod:`.figures`, pure, with an injected clock); the report is
plain JSON data with the stable schema :data:`SCHEMA`, rendered by :func:`render_text`,
:func:`render_json` or :func:`render_html`. :func:`timeline` gives an incident's
post-mortem timeline in Markdown.
"""

from __future__ import annotations

from .fetch import REQUESTS_PER_MINUTE, PacedTransport, read_facts
from .figures import SCHEMA, ReportOptions, WorkingHours, compute
from .html import render_html
from .records import IncidentFacts, fold_incident
from .render import render_json, render_text
from .report import build_report, parse_duration, parse_sla, parse_when
from .timeline import render_timeline, timeline

__all__ = [
    "REQUESTS_PER_MINUTE",
    "SCHEMA",
    "IncidentFacts",
    "PacedTransport",
    "ReportOptions",
    "WorkingHours",
    "build_report",
    "compute",
    "fold_incident",
    "parse_duration",
    "parse_sla",
    "parse_when",
    "read_facts",
    "render_html",
    "render_json",
    "render_text",
    "render_timeline",
    "timeline",
]
