"""Walking a REST API v2 list page by page, shared by the sync and async clients.

PagerDuty pages lists in one of two ways, and the answer to the first page tells which:
classic pagination (``limit``/``offset`` in, ``more`` out; ``offset + limit`` may not
pass 10,000) and cursor pagination (``limit``/``cursor`` in, ``next_cursor`` out).
:class:`Pager` only decides what to ask next; the client does the asking.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final

from .operations import JSON, Listing, Param, Request, items_of

__all__ = ["CLASSIC_WINDOW", "PAGE_SIZE", "Pager"]

PAGE_SIZE: Final = 100
"""PagerDuty's largest page."""
CLASSIC_WINDOW: Final = 10_000
"""Classic pagination serves nothing past ``offset + limit`` = 10,000."""

_log = logging.getLogger("pd_integrations.rest")


class Pager:
    """The state of one walk through a list: where it is, and when it is over."""

    def __init__(self, listing: Listing) -> None:
        self._listing = listing
        self._remaining = listing.limit
        # The page size stays the same on every page, so each offset is a multiple of
        # it, whatever PagerDuty does with offsets that are not.
        self._page_size = PAGE_SIZE if listing.limit is None else min(PAGE_SIZE, listing.limit)
        self._offset = 0
        self._cursor: str | None = None
        self._done = listing.limit == 0
        self.truncated = False
        """True when the walk stopped at the classic 10,000-item window."""

    def next_request(self) -> Request | None:
        """The request for the next page, or ``None`` when the walk is over."""
        if self._done:
            return None
        size = self._page_size
        paging: list[Param] = []
        if self._cursor is not None:
            paging.append(("cursor", self._cursor))
        elif self._offset:
            size = min(size, CLASSIC_WINDOW - self._offset)
            if size <= 0:
                self._stop_at_window()
                return None
            paging.append(("offset", str(self._offset)))
        base = self._listing.request
        return replace(base, params=(*base.params, ("limit", str(size)), *paging))

    def feed(self, body: JSON | None) -> list[JSON]:
        """Read one page's answer; returns its items (cut to the overall limit)."""
        page = items_of(body, self._listing.key)
        items = page if self._remaining is None else page[: self._remaining]
        if self._remaining is not None:
            self._remaining -= len(items)
        answer = body or {}
        if "next_cursor" in answer:
            cursor = answer["next_cursor"]
            self._cursor = cursor if isinstance(cursor, str) and cursor else None
            more = self._cursor is not None
        else:
            self._offset += len(page)
            # An empty page that claims "more" would otherwise be asked for forever.
            more = answer.get("more") is True and bool(page)
        if not more or self._remaining == 0:
            self._done = True
        return items

    def _stop_at_window(self) -> None:
        self._done = True
        self.truncated = True
        _log.warning(
            "stopped listing %s after %d results: PagerDuty serves no more than %d through "
            "classic pagination; narrow the query (filters, since/until) to see the rest",
            self._listing.request.path,
            self._offset,
            CLASSIC_WINDOW,
        )
