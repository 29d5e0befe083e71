"""The last log records of the current request, kept for the alert it may raise.

The records live in the request's own dict (the ASGI scope, the WSGI environ, Django's
``request.META``), under the ``"pd_integrations.breadcrumbs"`` key, and only from its
first record on: a request that logs nothing allocates nothing. The handler
(:class:`BreadcrumbHandler`, also importable from :mod:`pd_integrations.logging`,
installed on the root logger by :func:`install`) finds that dict through a context
variable and appends each record to its list, keeping the last :data:`capacity`
records: the record itself, not its text, so a healthy request never formats a
message it logged. Only when an alert fires does :func:`render` format the newest
records within a byte budget, scrubbed.

How the handler finds the request:

- :func:`begin` and :func:`end` are the context variable's own ``set`` and ``reset``
  (C methods: no Python call per request). An adapter calls ``token = begin(request)``
  when a request starts and ``end(token)`` in the same function when it is done, so
  both always run in the same context and the reset cannot fail.
- :func:`follow` reads a framework's own per-request context variable instead (Flask's
  request context): that adapter calls neither.

Records logged outside a request are not kept. A thread or task started by the
request adds to its records only if it copied the request's context (Starlette's
thread pool and ``asyncio`` tasks do; Flask's ``copy_current_request_context`` too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, MutableMapping
from contextlib import suppress
from contextvars import ContextVar, Token
from typing import Any, Final

from pd_integrations.scrub import Scrubber

DEFAULT_BREADCRUMBS: Final = 10
DEFAULT_BREADCRUMB_BYTES: Final = 4096
MAX_MESSAGE: Final = 500

Trail = list[logging.LogRecord]
RequestDict = MutableMapping[str, Any]

_current: ContextVar[RequestDict | None] = ContextVar("pd_integrations_breadcrumbs", default=None)
_followed: tuple[tuple[ContextVar[Any], Callable[[Any], RequestDict]], ...] = ()
_HELD: Final = "pd_integrations.breadcrumbs"
_install_lock = threading.Lock()
_handler: logging.Handler | None = None
capacity = 0
"""The most records any request keeps: the largest ``breadcrumbs`` installed."""

begin: Final[Callable[[RequestDict | None], Token[RequestDict | None]]] = _current.set
"""``begin(request_dict)``: keep the records logged from now on in that dict."""
end: Final[Callable[[Token[RequestDict | None]], None]] = _current.reset
"""``end(token)``: stop (the records go with the request's dict)."""


def follow(var: ContextVar[Any], store: Callable[[Any], RequestDict]) -> None:
    """Also find the request's dict through a framework's own per-request ``var``.

    For a framework that sets a context variable per request already (Flask's request
    context): its adapter calls no :func:`begin`/:func:`end`, so its healthy requests
    pay nothing for breadcrumbs. ``store`` gives the request's dict from the variable's
    value (Flask: the WSGI environ, which copies of the request context share). A
    request begun with :func:`begin` comes first.
    """
    global _followed
    with _install_lock:
        if all(known is not var for known, _ in _followed):
            _followed = (*_followed, (var, store))


def current() -> Trail | None:
    """The current request's records, oldest first; ``None`` outside a request.

    The list is the one later records are appended to, so a caller holding it sees
    the records logged after it asked.
    """
    request = _current.get()
    if request is not None:
        return _held_trail(request)
    for var, store in _followed:
        value = var.get(None)
        if value is not None:
            try:
                request = store(value)
            except Exception:  # a request of a shape the store did not expect
                return None
            return _held_trail(request)
    return None


def keep(record: logging.LogRecord) -> None:
    """Append ``record`` to the current request's records (the handler's whole work)."""
    trail = current()
    if trail is None:
        return
    trail.append(record)
    if len(trail) > capacity:
        # Another thread of the same request may have trimmed it first.
        with suppress(IndexError):
            del trail[0]


def _held_trail(request: RequestDict) -> Trail:
    trail: Trail | None = request.get(_HELD)
    if trail is None:
        # setdefault: two threads of one request make one list between them.
        trail = request.setdefault(_HELD, [])
    return trail


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
