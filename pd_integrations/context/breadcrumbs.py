"""The last log records of the current request, kept for the alert it may raise.

An adapter calls :func:`begin` when a request starts and :func:`end` when it is done:
one context variable set and reset, nothing else. The handler
(:class:`pd_integrations.logging.BreadcrumbHandler`, installed on the root logger by
:func:`install`) appends each record logged meanwhile to that request's list, keeping
the last :data:`capacity` records: the record itself, not its text, so a healthy
request never formats a message it logged. Only when an alert fires does
:func:`render` format the newest records, scrubbed, within a byte budget.

Records logged outside a request (no :func:`begin`) are not kept. A thread or task
started by the request inherits its list only if it copied the request's context.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final

from pd_integrations.scrub import Scrubber

DEFAULT_BREADCRUMBS: Final = 20
DEFAULT_BREADCRUMB_BYTES: Final = 4096
MAX_MESSAGE: Final = 500

Trail = list[logging.LogRecord]

_current: ContextVar[Trail | None] = ContextVar("pd_integrations_breadcrumbs", default=None)
_install_lock = threading.Lock()
_handler: logging.Handler | None = None
capacity = 0
"""The most records any request keeps: the largest ``breadcrumbs`` installed."""


def begin() -> Token[Trail | None]:
    """Start keeping the current request's records; pass the token to :func:`end`."""
    return _current.set([])


def end(token: Token[Trail | None]) -> None:
    """Stop keeping them (the list goes with the request)."""
    try:
        _current.reset(token)
    except ValueError:  # ended in another context (a generator closed elsewhere)
        _current.set(None)


def current() -> Trail | None:
    """The current request's records, oldest first; ``None`` outside a request."""
    return _current.get()


def keep(record: logging.LogRecord) -> None:
    """Append ``record`` to the current request's records (the handler's whole work)."""
    trail = _current.get()
    if trail is not None:
        trail.append(record)
        if len(trail) > capacity:
            # Another thread of the same request may have trimmed it first.
            with suppress(IndexError):
                del trail[0]


def install(records: int) -> None:
    """Keep up to ``records`` records per request; the handler is added to the root once.

    An application that replaces the root logger's handlers later (``dictConfig`` with
    a ``root`` section) adds ``pd_integrations.logging.BreadcrumbHandler`` there itself.
    """
    global _handler, capacity
    if records <= 0:
        return
    with _install_lock:
        capacity = max(capacity, records)
        if _handler is None:
            from pd_integrations.logging import BreadcrumbHandler  # it imports the monitor

            _handler = BreadcrumbHandler()
        root = logging.getLogger()
        if _handler not in root.handlers and not any(
            type(h).__name__ == "BreadcrumbHandler" for h in root.handlers
        ):
            root.addHandler(_handler)


def render(
    trail: Trail | None,
    records: int,
    max_bytes: int,
    scrubber: Scrubber | None,
    exclude: logging.LogRecord | None = None,
) -> list[dict[str, Any]]:
    """The newest ``records`` records as dicts, scrubbed, together at most ``max_bytes``.

    Oldest first, as they were logged. Records that do not fit are dropped, oldest
    first; one message longer than :data:`MAX_MESSAGE` characters is cut.
    """
    if not trail or records <= 0 or max_bytes <= 0:
        return []
    shown: list[dict[str, Any]] = []
    used = 0
    for record in reversed(trail[-records:]):
        if record is exclude:
            continue
        crumb = _crumb(record, scrubber)
        size = sum(len(str(value).encode("utf-8", "replace")) for value in crumb.values())
        if used + size > max_bytes:
            break
        used += size
        shown.append(crumb)
    shown.reverse()
    return shown


def _crumb(record: logging.LogRecord, scrubber: Scrubber | None) -> dict[str, Any]:
    try:
        text = record.getMessage()
    except Exception:  # the application's own arguments did not format
        text = str(record.msg)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    if scrubber is not None:
        text = scrubber.scrub_text(text)
    return {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": text,
    }
