"""The last log records of the current request, kept for the alert it may raise.

An adapter calls :func:`begin` when a request starts and :func:`end` when it is done:
one context variable set and reset, nothing else. The handler
(:class:`BreadcrumbHandler`, also importable from :mod:`pd_integrations.logging`,
installed on the root logger by :func:`install`) appends each record logged meanwhile
to that request's list, keeping the last :data:`capacity` records: the record itself,
not its text, so a healthy request never formats a message it logged. Only when an
alert fires does :func:`render` format the newest records within a byte budget, scrubbed.

Records logged outside a request (no :func:`begin`) are not kept. A thread or task
started by the request inherits its list only if it copied the request's context.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from contextvars import ContextVar, Token
from typing import Final

from pd_integrations.scrub import Scrubber

DEFAULT_BREADCRUMBS: Final = 10
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


class BreadcrumbHandler(logging.Handler):
    """Keeps every record it sees in the current request's breadcrumbs; sends nothing.

    The adapters add one to the root logger (``breadcrumbs`` setting, on by default);
    add it yourself to a ``dictConfig`` that replaces the root's handlers. It keeps the
    record object, unformatted: a request that raises no alert formats nothing. Records
    the loggers' levels filter out never reach it.
    """

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock and no filters: appending to the request's own list is all there is.
        if record.levelno >= self.level:
            keep(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        keep(record)


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
            _handler = BreadcrumbHandler()
        root = logging.getLogger()
        if _handler not in root.handlers and not any(
            type(h).__name__ == "BreadcrumbHandler" for h in root.handlers
        ):
            root.addHandler(_handler)


def render(
    trail: Trail | None, records: int, max_bytes: int, scrubber: Scrubber | None = None
) -> list[str]:
    """The newest ``records`` records, one line each, together at most ``max_bytes``.

    Oldest first, as they were logged: ``"17:02:11.518 WARNING shop.payments: text"``
    (UTC). Records that do not fit are dropped, oldest first; one message longer than
    :data:`MAX_MESSAGE` characters is cut. One string per record, not a mapping: the
    alert's details are scrubbed and encoded string by string on their way out, so the
    breadcrumbs cost a quarter of what four fields each would. ``scrubber`` masks the
    credentials in each line first, so the alert's own scrubbing (which hides a whole
    string that still mentions a secret) keeps the rest of the line.
    """
    if not trail or records <= 0 or max_bytes <= 0:
        return []
    shown: list[str] = []
    used = 0
    for record in reversed(trail[-records:]):
        line = _line(record)
        if scrubber is not None:
            line = scrubber.scrub_text(line)
        size = len(line.encode("utf-8", "replace"))
        if used + size > max_bytes:
            break
        used += size
        shown.append(line)
    shown.reverse()
    return shown


def _line(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # the application's own arguments did not format
        text = str(record.msg)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    # The UTC time of day by arithmetic: strftime would double the cost of a line.
    day = int(record.created) % 86400
    return (
        f"{day // 3600:02d}:{day // 60 % 60:02d}:{day % 60:02d}.{int(record.msecs):03d} "
        f"{record.levelname} {record.name}: {text}"
    )
