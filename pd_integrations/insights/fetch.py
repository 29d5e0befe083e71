"""Reading an account's incidents and log entries through the REST client, politely.

:func:`read_facts` walks ``GET /incidents`` one UTC day at a time (so no single listing
reaches classic pagination's 10,000-item window) and, for each incident, streams
``GET /incidents/{id}/log_entries`` page by page into
:func:`~.records.fold_incident`: memory holds one page of log entries at a time and
one small record per incident. Responders' time zones come from ``GET /users/{id}``,
once per user.

:class:`PacedTransport` keeps every attempt within PagerDuty's REST limit
(:data:`REQUESTS_PER_MINUTE`) and says so, through ``notice``, whenever it waits or
PagerDuty answers 429; retries, backoff and errors stay the client's
(:mod:`~pd_integrations.rest.retry`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx

from pd_integrations.errors import RestError
from pd_integrations.rest.client import RestClient
from pd_integrations.rest.retry import rate_limit_wait

from .records import IncidentFacts, fold_incident

__all__ = ["REQUESTS_PER_MINUTE", "PacedTransport", "TimeZones", "read_facts"]

REQUESTS_PER_MINUTE: Final = 960
"""PagerDuty's REST API limit per API key."""
_WINDOW = 60.0

Notice = Callable[[str], None]
Progress = Callable[[int], None]


class PacedTransport(httpx.BaseTransport):
    """An httpx transport that lets at most ``per_minute`` requests out per 60 s.

    A sliding window of the last ``per_minute`` send times: a request that would pass
    the limit waits until the oldest leaves the window. ``notice`` gets one line each
    time it waits for long enough to notice, and each time PagerDuty answers 429.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        *,
        per_minute: int = REQUESTS_PER_MINUTE,
        notice: Notice | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        verify: Any = True,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self._inner = inner if inner is not None else httpx.HTTPTransport(verify=verify)
        self._per_minute = per_minute
        self._notice = notice
        self._clock, self._sleep = clock, sleep
        self._sent: deque[float] = deque(maxlen=per_minute)
        self._lock = threading.Lock()
        self.requests = 0
        self.waited = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            now = self._clock()
            if len(self._sent) == self._per_minute:
                wait = self._sent[0] + _WINDOW - now
                if wait > 0:
                    if wait >= 1 and self._notice is not None:
                        self._notice(
                            f"pausing {wait:.0f}s to stay within PagerDuty's REST limit of "
                            f"{self._per_minute} requests/min"
                        )
                    self._sleep(wait)
                    self.waited += wait
                    now = self._clock()
            self._sent.append(now)
            self.requests += 1
        response = self._inner.handle_request(request)
        if response.status_code == 429 and self._notice is not None:
            seconds = rate_limit_wait(response.headers)
            after = f"; retrying in {seconds:.0f}s as it asks" if seconds is not None else ""
            self._notice(f"PagerDuty is throttling this API key (HTTP 429){after}")
        return response

    def close(self) -> None:
        self._inner.close()


class TimeZones:
    """Users' time zones, each asked of PagerDuty once; unknown users get ``None``."""

    def __init__(self, client: RestClient) -> None:
        self._client = client
        self._zones: dict[str, str | None] = {}

    def __call__(self, user_id: str) -> str | None:
        if user_id not in self._zones:
            try:
                zone = self._client.get_user(user_id).get("time_zone")
            except RestError:
                zone = None  # a deleted user: judged in the default zone
            self._zones[user_id] = zone if isinstance(zone, str) else None
        return self._zones[user_id]


def _days(since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    start = since
    while start < until:
        end = min(
            until,
            datetime.combine(start.astimezone(UTC).date(), datetime.min.time(), UTC)
            + timedelta(days=1),
        )
        yield start, end
        start = end


def log_entries(client: RestClient, incident_id: str) -> Iterator[dict[str, Any]]:
    """Every log entry of an incident, oldest first, fetched a page at a time."""
    return client.iter_all(
        f"/incidents/{incident_id}/log_entries",
        params={"is_overview": False, "include[]": ["channels"], "time_zone": "UTC"},
        key="log_entries",
    )


def read_facts(
    client: RestClient,
    *,
    since: datetime,
    until: datetime,
    service_ids: Sequence[str] = (),
    team_ids: Sequence[str] = (),
    progress: Progress | None = None,
) -> Iterator[IncidentFacts]:
    """The facts of every incident created in ``[since, until)``, streamed.

    An incident PagerDuty answers in a shape the report cannot read (no id or
    ``created_at``) is skipped rather than failing the whole report.
    """
    seen: set[str] = set()
    count = 0
    for start, end in _days(since, until):
        params: dict[str, Any] = {
            "since": start,
            "until": end,
            "service_ids[]": list(service_ids) or None,
            "team_ids[]": list(team_ids) or None,
            "time_zone": "UTC",
        }
        for incident in client.iter_all("/incidents", params=params, key="incidents"):
            ident = incident.get("id")
            # Day windows meet at midnight; an incident exactly there is listed once.
            if not isinstance(ident, str) or ident in seen:
                continue
            seen.add(ident)
            try:
                facts = fold_incident(incident, log_entries(client, ident))
            except ValueError:
                continue
            count += 1
            if progress is not None:
                progress(count)
            yield facts
