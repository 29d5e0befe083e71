"""What an alert carries besides the error itself, to help the responder.

- :mod:`.release`: the running release (setting, else detected from CI/PaaS variables)
  and the once-per-release change event announcing it;
- :mod:`.trace`: the trace and span ids of the failing request (an active
  OpenTelemetry span, else the request's W3C ``traceparent`` header);
- :mod:`.breadcrumbs`: the last log records of the failing request;
- :mod:`.user`: the authenticated user's id.

Everything here runs only when an alert fires, except :func:`.breadcrumbs.begin` and
:func:`.breadcrumbs.end` (a context variable set and reset per request; none for
Flask) and the breadcrumb handler's append of a record the application logged anyway.
"""

from __future__ import annotations

from .release import RELEASE_ENV_VARS, announce_release, detect_release
from .trace import TraceContext, current_trace, parse_traceparent

__all__ = [
    "RELEASE_ENV_VARS",
    "TraceContext",
    "announce_release",
    "current_trace",
    "detect_release",
    "parse_traceparent",
]
