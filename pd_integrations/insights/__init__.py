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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fetch import REQUESTS_PER_MINUTE, PacedTransport, read_facts
    from .figures import SCHEMA, ReportOptions, WorkingHours, compute
    from .html import render_html
    from .postmortem import render_timeline, timeline
    from .records import IncidentFacts, fold_incident
    from .render import render_json, render_text
    from .report import build_report, parse_duration, parse_sla, parse_when

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

# The command line imports this package for its parser; the modules that read, compute
# and render load on first use, so ``pd-integrations --help`` stays fast.
_HOMES = {
    "REQUESTS_PER_MINUTE": "fetch",
    "PacedTransport": "fetch",
    "read_facts": "fetch",
    "SCHEMA": "figures",
    "ReportOptions": "figures",
    "WorkingHours": "figures",
    "compute": "figures",
    "render_html": "html",
    "IncidentFacts": "records",
    "fold_incident": "records",
    "render_json": "render",
    "render_text": "render",
    "build_report": "report",
    "parse_duration": "report",
    "parse_sla": "report",
    "parse_when": "report",
    "render_timeline": "postmortem",
    "timeline": "postmortem",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
