"""The trace of the failing request: an active OpenTelemetry span, else ``traceparent``.

OpenTelemetry is looked up in ``sys.modules`` only: when the application never imported
it, no span can be active, so nothing is imported here (and a missing package costs
nothing). Read only when an alert fires.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, NamedTuple

_log = logging.getLogger("pd_integrations.context.trace")

# W3C Trace Context, version 00 (later versions keep these first four fields).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceContext(NamedTuple):
    trace_id: str
    span_id: str

    def url(self, template: str | None) -> str | None:
        """``template`` with ``{trace_id}`` and ``{span_id}`` filled in, or ``None``."""
        if not template:
            return None
        try:
            return template.format(trace_id=self.trace_id, span_id=self.span_id)
        except (KeyError, IndexError, ValueError):
            _log.warning("trace_url_template %r has an unknown placeholder", template)
            return None


def parse_traceparent(value: str | None) -> TraceContext | None:
    """The ids of a W3C ``traceparent`` header; ``None`` when it is absent or invalid."""
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id)


def active_span() -> TraceContext | None:
    """The current OpenTelemetry span's ids, if OpenTelemetry is loaded and a span is on."""
    otel: Any = sys.modules.get("opentelemetry.trace")
    if otel is None:
        return None
    try:
        context = otel.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return TraceContext(f"{context.trace_id:032x}", f"{context.span_id:016x}")
    except Exception:
        _log.debug("could not read the current OpenTelemetry span", exc_info=True)
        return None


def current_trace(traceparent: str | None = None) -> TraceContext | None:
    """The active span's ids, else those of ``traceparent``, else ``None``."""
    return active_span() or parse_traceparent(traceparent)
