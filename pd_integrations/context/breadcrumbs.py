"""The last log records of the current request, kept for the alert it may raise.

An adapter calls :func:`begin` when a request starts and :func:`end` when it is done.
Each context (a WSGI server's thread, an asyncio task) holds one slot in a context
variable, set by its first request and reopened by the next ones: a healthy request
pays two attribute writes, not a context variable set and reset. A request that
starts inside another request of the same context, or in a context copied from
another thread's, gets a slot of its own for its duration, so two requests never
share a slot at the same time. The handler (:class:`BreadcrumbHandler`, also
importable from :mod:`pd_integrations.logging`, installed on the root logger by
:func:`install`) appends each record logged meanwhile to the open slot's list,
keeping the last :data:`capacity` records: the record itself, not its text, so a
healthy request never formats a message it logged. Only when an alert fires does
:func:`render` format the newest records within a byte budget, scrubbed.

Records logged outside a request (no :func:`begin`) are not kept. A thread or task
started by the request shares its slot only if it copied the request's context; one
that outlives the request and keeps logging while its parent context serves the next
request adds its records to that request's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar, Token
from threading import get_ident
from typing import Any, Final

from pd_integrations.scrub import Scrubber

DEFAULT_BREADCRUMBS: Final = 10
DEFAULT_BREADCRUMB_BYTES: Final = 4096
MAX_MESSAGE: Final = 500

Trail = list[logging.LogRecord]


class _Slot:
    """Where one context's requests keep their records, one request at a time.

    A context (a WSGI server's thread, a task serving requests one after another)
    keeps its slot and reopens it for each request: opening and closing cost two
    attribute writes, not a context variable set and reset. The list itself is made
    on the first record, so a request that logs nothing allocates nothing.
    """

    __slots__ = ("open", "thread", "trail")

    def __init__(self, thread: int) -> None:
        self.open = True
        self.thread = thread
        self.trail: Trail | None = None


Mark = _Slot | Token[_Slot | None]
"""What :func:`begin` returns and :func:`end` takes back."""

_current: ContextVar[_Slot | None] = ContextVar("pd_integrations_breadcrumbs", default=None)
_followed: tuple[tuple[ContextVar[Any], Callable[[Any], dict[str, Any]]], ...] = ()
_HELD: Final = "pd_integrations.breadcrumbs"
_install_lock = threading.Lock()
_handler: logging.Handler | None = None
capacity = 0
"""The most records any request keeps: the largest ``breadcrumbs`` installed."""


def begin() -> Mark:
    """Start keeping the current request's records; pass the result to :func:`end`."""
    thread = get_ident()
    slot = _current.get()
    if slot is None:
        # The first request of this context: its slot stays for the next ones.
        slot = _Slot(thread)
        _current.set(slot)
        return slot
    if slot.open or slot.thread != thread:
        # Inside another request of this context, or a slot copied from another
        # thread's context, which that thread may reopen at any moment: a slot of
        # its own for this request, given back when it ends.
        return _current.set(_Slot(thread))
    slot.open = True
    return slot


def end(mark: Mark) -> None:
    """Stop keeping them (the list goes with the request)."""
    if type(mark) is _Slot:
        mark.open = False
        mark.trail = None
        return
    try:
        _current.reset(mark)  # type: ignore[arg-type]
    except ValueError:  # ended in another context (a generator closed elsewhere)
        _current.set(None)


def follow(var: ContextVar[Any], store: Callable[[Any], dict[str, Any]]) -> None:
    """Also keep records in a dict of each request that a framework's ``var`` leads to.

    For a framework that sets a context variable per request already (Flask's request
    context): its adapter calls no :func:`begin`/:func:`end` at all, and a request that
    logs nothing costs nothing. ``store`` gives the request's own dict from the
    variable's value (Flask: the WSGI environ, which copies of the request context
    share); the records go under its ``"pd_integrations.breadcrumbs"`` key. An open slot
    of :func:`begin` comes first.
    """
    global _followed
    with _install_lock:
        if all(known is not var for known, _ in _followed):
            _followed = (*_followed, (var, store))


def current() -> Trail | None:
    """The current request's records, oldest first; ``None`` outside a request.

    The list is the one later records are appended to, so a caller holding it sees
    the records logged after it asked (until the request ends).
    """
    slot = _current.get()
    if slot is not None and slot.open:
        trail = slot.trail
        if trail is None:
            trail = slot.trail = []
        return trail
    for var, store in _followed:
        request = var.get(None)
        if request is not None:
            return _held_trail(request, store)
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


def _held_trail(request: object, store: Callable[[Any], dict[str, Any]]) -> Trail | None:
    try:
        held = store(request)
        trail: Trail | None = held.get(_HELD)
        if trail is None:
            # setdefault: two threads of one request make one list between them.
            trail = held.setdefault(_HELD, [])
    except Exception:  # a request of a shape the store did not expect: no breadcrumbs
        return None
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
