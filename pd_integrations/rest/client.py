"""The blocking REST client: :class:`RestClient`, the I/O around the shared request builders."""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import httpx

from . import operations as ops
from .core import Ids, RestBase, When
from .operations import JSON, Listing, Operation, ParamValue, Request
from .pagination import Pager
from .retry import Done

__all__ = ["RestClient"]

_T = TypeVar("_T")


class RestClient(RestBase):
    """A blocking client for PagerDuty's REST API v2.

    :param api_key: a REST API key; defaults to ``PAGERDUTY_API_KEY``.
    :param from_email: the PagerDuty user that writes act as (the ``From`` header);
        defaults to ``PAGERDUTY_DEFAULT_FROM_EMAIL``. Only writes need it.
    :param base_url: defaults to ``PAGERDUTY_REST_BASE_URL``, then
        ``https://api.pagerduty.com``; it may carry a path prefix.
    :param timeout: seconds per HTTP attempt.
    :param max_attempts: attempts per request, the first included.
    :param max_wait: the most seconds one request may spend waiting between attempts.
    :param verify: TLS verification: ``True``, ``False`` or an ``ssl.SSLContext``.
    :param transport: an httpx transport (tests, proxies).
    :param sleep: how to wait between attempts (tests pass a fake).
    :param clock: the monotonic clock that ``max_wait`` is measured with.
    :param rng: the random source of the jitter (tests pass a seeded one).
    :raises ConfigurationError: no API key, or a malformed setting.

    Methods return PagerDuty's objects without their envelope (``{"incident": {...}}``
    gives the inner dict). ``list_*`` methods return lazy iterators that fetch pages
    as they are consumed; ``limit`` caps the number of items overall. Thread-safe.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        from_email: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        max_wait: float = 60.0,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            api_key,
            from_email=from_email,
            base_url=base_url,
            timeout=timeout,
            max_attempts=max_attempts,
            max_wait=max_wait,
            clock=clock,
            rng=rng,
        )
        self._sleep = sleep
        self._http = httpx.Client(
            headers=self._headers(), timeout=self.timeout, verify=verify, transport=transport
        )

    # -- I/O ------------------------------------------------------------------------

    def _send(self, request: Request) -> JSON | None:
        url, headers, call = self._start(request)
        while True:
            call.started()
            try:
                response = self._http.request(
                    request.method, url, params=request.params, json=request.body, headers=headers
                )
            except httpx.HTTPError as exc:
                step: Done | float = call.on_error(exc)
            else:
                step = call.on_answer(response.status_code, response.headers, response.content)
            if isinstance(step, Done):
                return step.value
            self._sleep(step)

    def _run(self, operation: Operation[_T]) -> _T:
        return operation.parse(self._send(operation.request))

    def _iterate(self, listing: Listing) -> Iterator[JSON]:
        pager = Pager(listing)
        while (request := pager.next_request()) is not None:
            yield from pager.feed(self._send(request))

    def close(self) -> None:
        """Close the connections; further calls raise :class:`PagerDutyError`. Idempotent."""
        self._closed = True
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- incidents ------------------------------------------------------------------

    def list_incidents(
        self,
        *,
        statuses: Ids = None,
        service_ids: Ids = None,
        since: When = None,
        until: When = None,
        urgencies: Ids = None,
        limit: int | None = None,
    ) -> Iterator[JSON]:
        """Incidents matching the filters (all statuses when ``statuses`` is not given).

        ``since``/``until`` are timezone-aware datetimes or ISO 8601 strings; without
        them PagerDuty looks at a recent window of its choosing.
        """
        return self._iterate(
            ops.list_incidents(
                statuses=statuses,
                service_ids=service_ids,
                since=since,
                until=until,
                urgencies=urgencies,
                limit=limit,
            )
        )

    def get_incident(self, incident_id: str) -> JSON:
        return self._run(ops.get_incident(incident_id))

    def create_incident(
        self,
        title: str,
        service_id: str,
        *,
        urgency: str | None = None,
        body: str | None = None,
        escalation_policy_id: str | None = None,
        incident_key: str | None = None,
        priority_id: str | None = None,
    ) -> JSON:
        """Open an incident on a service (needs ``from_email``).

        Only a create with ``incident_key`` is retried after a 5xx or a lost answer:
        PagerDuty refuses a second open incident with the same key, so the retry
        cannot page anyone twice.
        """
        return self._run(
            ops.create_incident(
                title,
                service_id,
                urgency=urgency,
                body=body,
                escalation_policy_id=escalation_policy_id,
                incident_key=incident_key,
                priority_id=priority_id,
            )
        )

    def acknowledge_incident(self, incident_id: str) -> JSON:
        return self._run(ops.acknowledge_incident(incident_id))

    def resolve_incident(self, incident_id: str, *, resolution: str | None = None) -> JSON:
        return self._run(ops.resolve_incident(incident_id, resolution=resolution))

    def add_note(self, incident_id: str, content: str) -> JSON:
        return self._run(ops.add_note(incident_id, content))

    def list_notes(self, incident_id: str) -> list[JSON]:
        return self._run(ops.list_notes(incident_id))

    def reassign_incident(
        self, incident_id: str, *, user_ids: Ids = None, escalation_policy_id: str | None = None
    ) -> JSON:
        """Assign the incident to users, or to an escalation policy (exactly one of them)."""
        return self._run(
            ops.reassign_incident(
                incident_id, user_ids=user_ids, escalation_policy_id=escalation_policy_id
            )
        )

    def merge_incidents(self, target_id: str, source_ids: str | Iterable[str]) -> JSON:
        """Merge the source incidents into the target; returns the target."""
        return self._run(ops.merge_incidents(target_id, source_ids))

    # -- services -------------------------------------------------------------------

    def list_services(
        self, *, team_ids: Ids = None, query: str | None = None, limit: int | None = None
    ) -> Iterator[JSON]:
        return self._iterate(ops.list_services(team_ids=team_ids, query=query, limit=limit))

    def get_service(self, service_id: str) -> JSON:
        return self._run(ops.get_service(service_id))

    # -- maintenance windows --------------------------------------------------------

    def create_maintenance_window(
        self,
        service_ids: str | Iterable[str],
        start: datetime,
        end: datetime,
        *,
        description: str | None = None,
    ) -> JSON:
        """Silence the services from ``start`` to ``end`` (timezone-aware datetimes)."""
        return self._run(
            ops.create_maintenance_window(service_ids, start, end, description=description)
        )

    def list_maintenance_windows(
        self, *, service_ids: Ids = None, filter: str | None = None, limit: int | None = None
    ) -> Iterator[JSON]:
        """Windows of the services; ``filter`` is past, future, ongoing, open or all."""
        return self._iterate(
            ops.list_maintenance_windows(service_ids=service_ids, filter=filter, limit=limit)
        )

    def end_maintenance_window(self, window_id: str) -> None:
        """End an ongoing window now, or delete a future one."""
        self._run(ops.end_maintenance_window(window_id))

    # -- on-call --------------------------------------------------------------------

    def list_oncalls(
        self,
        *,
        schedule_ids: Ids = None,
        user_ids: Ids = None,
        escalation_policy_ids: Ids = None,
        since: When = None,
        until: When = None,
        earliest: bool | None = None,
        limit: int | None = None,
    ) -> Iterator[JSON]:
        """On-call entries (user, schedule, escalation policy and level, start, end)."""
        return self._iterate(
            ops.list_oncalls(
                schedule_ids=schedule_ids,
                user_ids=user_ids,
                escalation_policy_ids=escalation_policy_ids,
                since=since,
                until=until,
                earliest=earliest,
                limit=limit,
            )
        )

    def current_on_call(self, schedule_id: str) -> list[JSON]:
        """The users on call now for the schedule, lowest escalation level first."""
        return ops.oncall_users(self._iterate(ops.current_on_call(schedule_id)))

    get_current_oncall = current_on_call

    # -- users ----------------------------------------------------------------------

    def list_users(
        self, *, query: str | None = None, team_ids: Ids = None, limit: int | None = None
    ) -> Iterator[JSON]:
        return self._iterate(ops.list_users(query=query, team_ids=team_ids, limit=limit))

    def get_user(self, user_id: str) -> JSON:
        return self._run(ops.get_user(user_id))

    # -- anything else --------------------------------------------------------------

    def iter_all(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JSON]:
        """Every item of any list endpoint, such as ``/audit/records`` or ``/teams``.

        Classic and cursor pagination are both followed (PagerDuty's first answer tells
        which). A list value in ``params`` is sent as ``name[]`` repeated; ``key`` is
        where the items are, by default the last segment of ``path``.
        """
        return self._iterate(ops.iter_all(path, params=params, key=key, limit=limit))
