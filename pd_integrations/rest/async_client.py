"""The asyncio REST API v2 client: :class:`RestClient`'s methods, awaited.

Import it from :mod:`pd_integrations.rest.client`.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import httpx

from . import operations as ops
from .core import Ids, RestBase, When
from .operations import JSON, Listing, Operation, ParamValue, Request
from .pagination import Pager
from .retry import Done

__all__ = ["AsyncRestClient"]

_T = TypeVar("_T")


class AsyncRestClient(RestBase):
    """:class:`~pd_integrations.rest.client.RestClient` for asyncio: the same methods, as
    coroutines; ``list_*`` and ``iter_all`` return async iterators (``async for``).

    Use one client per event loop: its connections belong to the loop that opened them.
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
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
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
        self._http = httpx.AsyncClient(
            headers=self._headers(), timeout=self.timeout, verify=verify, transport=transport
        )

    # -- I/O ------------------------------------------------------------------------

    async def _send(self, request: Request) -> JSON | None:
        url, headers, call = self._start(request)
        while True:
            call.started()
            try:
                response = await self._http.request(
                    request.method, url, params=request.params, json=request.body, headers=headers
                )
            except httpx.HTTPError as exc:
                step: Done | float = call.on_error(exc)
            else:
                step = call.on_answer(response.status_code, response.headers, response.content)
            if isinstance(step, Done):
                return step.value
            await self._sleep(step)

    async def _run(self, operation: Operation[_T]) -> _T:
        return operation.parse(await self._send(operation.request))

    async def _iterate(self, listing: Listing) -> AsyncIterator[JSON]:
        pager = Pager(listing)
        while (request := pager.next_request()) is not None:
            for item in pager.feed(await self._send(request)):
                yield item

    async def close(self) -> None:
        """Close the connections; further calls raise :class:`PagerDutyError`. Idempotent."""
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

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
    ) -> AsyncIterator[JSON]:
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

    async def get_incident(self, incident_id: str) -> JSON:
        return await self._run(ops.get_incident(incident_id))

    async def create_incident(
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
        return await self._run(
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

    async def acknowledge_incident(self, incident_id: str) -> JSON:
        return await self._run(ops.acknowledge_incident(incident_id))

    async def resolve_incident(self, incident_id: str, *, resolution: str | None = None) -> JSON:
        return await self._run(ops.resolve_incident(incident_id, resolution=resolution))

    async def add_note(self, incident_id: str, content: str) -> JSON:
        return await self._run(ops.add_note(incident_id, content))

    async def list_notes(self, incident_id: str) -> list[JSON]:
        return await self._run(ops.list_notes(incident_id))

    async def reassign_incident(
        self, incident_id: str, *, user_ids: Ids = None, escalation_policy_id: str | None = None
    ) -> JSON:
        return await self._run(
            ops.reassign_incident(
                incident_id, user_ids=user_ids, escalation_policy_id=escalation_policy_id
            )
        )

    async def merge_incidents(self, target_id: str, source_ids: str | Iterable[str]) -> JSON:
        return await self._run(ops.merge_incidents(target_id, source_ids))

    # -- services -------------------------------------------------------------------

    def list_services(
        self, *, team_ids: Ids = None, query: str | None = None, limit: int | None = None
    ) -> AsyncIterator[JSON]:
        return self._iterate(ops.list_services(team_ids=team_ids, query=query, limit=limit))

    async def get_service(self, service_id: str) -> JSON:
        return await self._run(ops.get_service(service_id))

    # -- maintenance windows --------------------------------------------------------

    async def create_maintenance_window(
        self,
        service_ids: str | Iterable[str],
        start: datetime,
        end: datetime,
        *,
        description: str | None = None,
    ) -> JSON:
        return await self._run(
            ops.create_maintenance_window(service_ids, start, end, description=description)
        )

    def list_maintenance_windows(
        self, *, service_ids: Ids = None, filter: str | None = None, limit: int | None = None
    ) -> AsyncIterator[JSON]:
        return self._iterate(
            ops.list_maintenance_windows(service_ids=service_ids, filter=filter, limit=limit)
        )

    async def end_maintenance_window(self, window_id: str) -> None:
        await self._run(ops.end_maintenance_window(window_id))

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
    ) -> AsyncIterator[JSON]:
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

    async def current_on_call(self, schedule_id: str) -> list[JSON]:
        listing = ops.current_on_call(schedule_id)
        return ops.oncall_users([oncall async for oncall in self._iterate(listing)])

    get_current_oncall = current_on_call

    # -- users ----------------------------------------------------------------------

    def list_users(
        self, *, query: str | None = None, team_ids: Ids = None, limit: int | None = None
    ) -> AsyncIterator[JSON]:
        return self._iterate(ops.list_users(query=query, team_ids=team_ids, limit=limit))

    async def get_user(self, user_id: str) -> JSON:
        return await self._run(ops.get_user(user_id))

    # -- anything else --------------------------------------------------------------

    def iter_all(
        self,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[JSON]:
        return self._iterate(ops.iter_all(path, params=params, key=key, limit=limit))
