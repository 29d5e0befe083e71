"""Events API v2 clients: one event, one HTTP call, retried per PagerDuty's policy.

:class:`EventsClient` blocks and :class:`AsyncEventsClient` awaits; both share every
decision (configuration, event building, how an answer is classified, when and how
long to back off) in :class:`_ClientBase`, so only the I/O loop differs between them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar
from urllib.parse import urlsplit

import httpx

from pd_integrations import environment
from pd_integrations.delivery import lifecycle
from pd_integrations.state.base import safe_url

from .errors import (
    ConfigurationError,
    DeliveryError,
    InvalidEventError,
    PagerDutyError,
    RateLimitedError,
)
from .events import (
    MAX_BODY_BYTES,
    AcknowledgeEvent,
    ChangeEvent,
    Event,
    ImageLike,
    LinkLike,
    ResolveEvent,
    Severity,
    TriggerEvent,
    check_routing_key,
    encode_event,
    mask_key,
    new_dedup_key,
)
from .scrub import DEFAULT_SCRUBBER, Scrubber

__all__ = [
    "DEFAULT_BASE_URL",
    "EU_BASE_URL",
    "AsyncEventsClient",
    "EventResponse",
    "EventsClient",
    "PreparedEvent",
    "RetryPolicy",
    "resolve_base_url",
    "route_events",
]

DEFAULT_BASE_URL: Final = "https://events.pagerduty.com"
EU_BASE_URL: Final = "https://events.eu.pagerduty.com"

_log = logging.getLogger("pd_integrations.client")

# 2**62 seconds is already far past any max_delay; a larger exponent would only risk
# an OverflowError in the float arithmetic.
_MAX_EXPONENT = 62


def _user_agent() -> str:
    try:
        version = metadata.version("pd-integrations")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"pd-integrations/{version}"


_HEADERS: Final = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": _user_agent(),
}


@dataclass(frozen=True, slots=True)
class EventResponse:
    """PagerDuty's answer to an accepted event (``dedup_key`` is ``None`` for change events)."""

    status: str
    message: str
    dedup_key: str | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one event is retried.

    A send gives up after ``max_attempts`` attempts or once ``deadline`` seconds have
    passed since it started, whichever comes first; a wait never runs past the deadline.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 60.0
    rate_limited_base_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.rate_limited_base_delay) < 0:
            raise ConfigurationError("RetryPolicy delays must not be negative")
        if self.deadline <= 0:
            raise ConfigurationError("RetryPolicy.deadline must be positive")

    def cap(self, attempt: int, *, rate_limited: bool) -> float:
        """The longest wait after ``attempt`` failed attempts (1 after the first failure).

        It doubles per failure from the base delay (``rate_limited_base_delay`` after a
        429) up to ``max_delay``, but never drops below the base delay itself.
        """
        base = self.rate_limited_base_delay if rate_limited else self.base_delay
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        return min(max(self.max_delay, base), base * 2.0**exponent)

    def backoff(self, attempt: int, *, rate_limited: bool, rng: random.Random) -> float:
        """A wait drawn uniformly from ``[0, cap]`` ("full jitter").

        Full jitter spreads out clients that failed together, so they do not all come
        back at the same moment and fail together again.
        """
        return rng.uniform(0.0, self.cap(attempt, rate_limited=rate_limited))


@dataclass(frozen=True, slots=True)
class _Request:
    """One event, encoded once: every attempt sends exactly these bytes."""

    event: Event
    url: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event validated, scrubbed and encoded once, at the call site.

    ``body`` is the JSON object PagerDuty gets, without the routing key (the client puts
    it in when it sends, so a spool can store the body without the secret). Encoding
    here freezes the payload: a ``custom_details`` dict the caller changes afterwards,
    or an object whose ``__repr__`` is slow, can no longer affect what is sent or stall
    the sender.
    """

    event: Event
    body: bytes

    @property
    def action(self) -> str:
        return self.event.action

    @property
    def dedup_key(self) -> str | None:
        return self.event.dedup_key

    @property
    def priority(self) -> int:
        return self.event.priority


def _key_prefix(routing_key: str) -> bytes:
    """How every encoded body starts: ``{"routing_key":"...",`` (see ``events._body``)."""
    return b'{"routing_key":' + json.dumps(routing_key).encode() + b","


def with_occurrences_body(body: bytes, occurrences: int, limit: int) -> bytes:
    """A prepared trigger's body with ``custom_details.occurrences`` set.

    Works on the plain JSON the call site produced (no user object is touched here);
    if the count would take the body past ``limit`` bytes, the body is sent without it.
    """
    data = json.loads(body)
    payload = data.get("payload")
    if not isinstance(payload, dict):
        return body
    details = payload.get("custom_details")
    details = dict(details) if isinstance(details, dict) else {}
    details[OCCURRENCES_KEY] = occurrences
    payload["custom_details"] = details
    patched = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return patched if len(patched) <= limit else body


OCCURRENCES_KEY: Final = "occurrences"


def resolve_base_url(explicit: str | None = None) -> str:
    """The Events API base URL: ``explicit``, else the environment, else PagerDuty's.

    Raises :class:`ConfigurationError` unless it is an http(s) URL with a host (and a
    valid port), and no query or fragment.
    """
    url = (environment.events_base_url(explicit) or DEFAULT_BASE_URL).strip().rstrip("/")
    try:
        parts = urlsplit(url)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not parts.query
            and not parts.fragment
        )
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise ConfigurationError(
            f"the PagerDuty events base URL must be an http:// or https:// URL with a host "
            f"(such as {DEFAULT_BASE_URL}), got {safe_url(url)!r}"
        )
    _warn_if_plain_http(url)
    return url


_plain_http_warned: set[str] = set()
_plain_http_lock = threading.Lock()


def _warn_if_plain_http(url: str) -> None:
    """Warn once per URL about http:// to a host other than this machine.

    Events and REST calls carry the routing key or API key, readable on the way. An
    emulator on a loopback address is the normal case for http:// and says nothing.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme != "http" or host == "localhost" or host.endswith(".localhost"):
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    shown = safe_url(url)
    with _plain_http_lock:
        if shown in _plain_http_warned:
            return
        _plain_http_warned.add(shown)
    _log.warning(
        "the PagerDuty base URL %s is plain http:// to another machine: keys and events "
        "travel unencrypted; use https:// (http:// is meant for a local emulator)",
        shown,
    )


def _json_object(content: bytes) -> dict[str, Any]:
    """The answer's JSON object, or ``{}``: PagerDuty or a proxy may answer anything."""
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class _Route:
    """The HTTP clients every events client uses while :func:`route_events` is active."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        transport = httpx.MockTransport(handler)
        self.sync = httpx.Client(headers=_HEADERS, transport=transport)
        self.async_ = httpx.AsyncClient(headers=_HEADERS, transport=transport)


_routes: list[_Route] = []


@contextmanager
def route_events(handler: Callable[[httpx.Request], httpx.Response]) -> Iterator[None]:
    """Answer every Events API request of this process with ``handler`` during the block.

    Every :class:`EventsClient` and :class:`AsyncEventsClient`, whatever transport it was
    built with, sends through it instead of the network, and treats what ``handler``
    returns exactly like an answer from PagerDuty: the same retries, classification and
    logging, and a dispatcher spends its rate budget as for any send. Blocks may nest
    (the innermost handler answers). :mod:`pd_integrations.testing` captures with it.
    """
    route = _Route(handler)
    _routes.append(route)
    try:
        yield
    finally:
        _routes.remove(route)
        # MockTransport holds no connections: nothing to close on the async side.
        route.sync.close()


_R = TypeVar("_R")


class _ClientBase(ABC, Generic[_R]):
    """Configuration and every decision shared by the sync and async clients.

    ``_R`` is what ``send`` returns: an :class:`EventResponse`, or a coroutine of one.
    """

    def __init__(
        self,
        routing_key: str | None,
        *,
        source: str | None,
        base_url: str | None,
        timeout: float,
        retry: RetryPolicy | None,
        scrubber: Scrubber | None,
        verify: ssl.SSLContext | str | bool,
        clock: Callable[[], float],
        rng: random.Random | None,
    ) -> None:
        self._routing_key = check_routing_key(environment.routing_key(routing_key))
        self.base_url = resolve_base_url(base_url)
        self.source = environment.source(source)
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout}")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.scrubber = scrubber
        self._verify = verify
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._closed = False
        self._prefix = _key_prefix(self._routing_key)

    @property
    def routing_key(self) -> str:
        return self._routing_key

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} routing_key={mask_key(self._routing_key)} "
            f"base_url={safe_url(self.base_url)!r}{' closed' if self._closed else ''}>"
        )

    # -- the public calls, identical for both clients --------------------------------

    @abstractmethod
    def send(self, event: Event) -> _R:
        """Deliver ``event``, retrying per the policy."""

    def trigger(
        self,
        summary: str,
        severity: Severity | str,
        *,
        dedup_key: str | None = None,
        source: str | None = None,
        component: str | None = None,
        group: str | None = None,
        class_: str | None = None,
        custom_details: Any = None,
        images: Iterable[ImageLike] | None = None,
        links: Iterable[LinkLike] | None = None,
        timestamp: datetime | str | None = None,
    ) -> _R:
        """Open an alert (or update the open one with ``dedup_key``)."""
        event = TriggerEvent(
            summary,
            Severity.parse(severity),
            source or self.source,
            dedup_key=dedup_key,
            component=component,
            group=group,
            class_=class_,
            custom_details=custom_details,
            images=images,
            links=links,
            timestamp=timestamp,
        )
        return self.send(event)

    def acknowledge(self, dedup_key: str) -> _R:
        return self.send(AcknowledgeEvent(dedup_key))

    def resolve(self, dedup_key: str) -> _R:
        return self.send(ResolveEvent(dedup_key))

    def change(
        self,
        summary: str,
        *,
        source: str | None = None,
        custom_details: Any = None,
        links: Iterable[LinkLike] | None = None,
        timestamp: datetime | str | None = None,
    ) -> _R:
        """Record a change (a deploy, a config change) on the service; pages nobody."""
        event = ChangeEvent(
            summary,
            source=source or self.source,
            timestamp=timestamp,
            custom_details=custom_details,
            links=links,
        )
        return self.send(event)

    # -- pure helpers for the I/O loops ----------------------------------------------

    def prepare(self, event: Event) -> PreparedEvent:
        """Validate, scrub and encode ``event`` now, for :meth:`send_prepared` later.

        A trigger without a dedup key gets one first. Raises what encoding raises
        (:class:`InvalidEventError` for an event PagerDuty would refuse).
        """
        if isinstance(event, TriggerEvent) and event.dedup_key is None:
            # Fixed before the first attempt: a retry after a lost 202 must update the
            # same alert, not open a second incident.
            event = event.with_dedup_key(new_dedup_key())
        data = encode_event(event, self._routing_key, scrubber=self.scrubber)
        if not data.startswith(self._prefix):
            raise PagerDutyError("an encoded event does not start with its routing key")
        return PreparedEvent(event, b"{" + data[len(self._prefix) :])

    def _prepare(self, event: Event) -> _Request:
        return self._request(self.prepare(event))

    def _request(self, prepared: PreparedEvent, occurrences: int = 1) -> _Request:
        if self._closed:
            raise PagerDutyError(f"{type(self).__name__} is closed")
        body = self._prefix + prepared.body[1:]
        if occurrences > 1 and isinstance(prepared.event, TriggerEvent):
            body = with_occurrences_body(body, occurrences, MAX_BODY_BYTES)
        return _Request(prepared.event, self.base_url + prepared.event.path, body)

    def _redact(self, text: str) -> str:
        return text.replace(self._routing_key, mask_key(self._routing_key))

    def _log_attempt(self, request: _Request, attempt: int) -> None:
        _log.debug(
            "POST %s: %s event, dedup key %s, routing key %s (attempt %d of at most %d)",
            safe_url(request.url),
            request.event.action,
            request.event.dedup_key,
            mask_key(self._routing_key),
            attempt,
            self.retry.max_attempts,
        )

    def _interpret(self, request: _Request, status: int, content: bytes) -> EventResponse:
        """The response for a 2xx; otherwise raise what the status means.

        Retryable failures raise :class:`DeliveryError` (:class:`RateLimitedError` for
        429); anything the same bytes can never fix raises something else.
        """
        body = _json_object(content)
        event = request.event
        if 200 <= status < 300:
            fallback = "Change event processed" if isinstance(event, ChangeEvent) else None
            return EventResponse(
                status=_text(body.get("status")) or "success",
                message=_text(body.get("message")) or fallback or "Event processed",
                dedup_key=_text(body.get("dedup_key")) or event.dedup_key,
            )
        reason = httpx.codes.get_reason_phrase(status) or "unknown status"
        message = self._redact(_text(body.get("message")) or reason)
        if status == httpx.codes.TOO_MANY_REQUESTS:
            raise RateLimitedError(
                f"PagerDuty rate-limited the {event.action} event (HTTP 429): {message}",
                status_code=status,
            )
        if status >= 500:
            raise DeliveryError(f"PagerDuty answered HTTP {status}: {message}", status_code=status)
        if status >= 400:
            raw_errors = body.get("errors")
            errors = raw_errors if isinstance(raw_errors, list) else []
            raise InvalidEventError(
                f"PagerDuty rejected the {event.action} event (HTTP {status}): {message}",
                [self._redact(str(error)) for error in errors],
                status_code=status,
            )
        # A redirect or informational answer: a misconfigured base URL, not a flaky one.
        raise PagerDutyError(
            f"unexpected answer from PagerDuty (HTTP {status} {reason}); "
            f"check the base URL {safe_url(self.base_url)}"
        )

    def _request_failed(self, exc: Exception) -> PagerDutyError:
        """Translate an exception from the HTTP call; re-raise what is not ours."""
        if isinstance(exc, httpx.HTTPError):
            shown = safe_url(self.base_url)
            detail = self._redact(str(exc)).replace(self.base_url, shown) or "no details"
            return DeliveryError(
                f"could not reach PagerDuty at {shown}: {type(exc).__name__}: {detail}"
            )
        if self._closed:
            # close() from another thread while this request was in flight.
            return PagerDutyError(f"{type(self).__name__} was closed during the request")
        raise exc

    def _retrier(self, request: _Request) -> _Retrier:
        return _Retrier(self, request)

    def _give_up(self, request: _Request, error: DeliveryError, attempts: int) -> DeliveryError:
        kind = RateLimitedError if isinstance(error, RateLimitedError) else DeliveryError
        _log.warning(
            "giving up on a PagerDuty %s event (dedup key %s, routing key %s) after %d "
            "attempt(s): %s",
            request.event.action,
            request.event.dedup_key,
            mask_key(self._routing_key),
            attempts,
            error,
        )
        return kind(
            f"gave up on the {request.event.action} event after {attempts} attempt(s): {error}",
            status_code=error.status_code,
            attempts=attempts,
        )


class _Retrier:
    """The retry policy applied to one send: after each failure, how long to wait."""

    def __init__(self, client: _ClientBase[Any], request: _Request) -> None:
        self._client = client
        self._request = request
        self._deadline = client._clock() + client.retry.deadline
        self.failures = 0

    def delay_after(self, error: DeliveryError) -> float:
        """Seconds to wait before the next attempt; raises the give-up error if there is none."""
        self.failures += 1
        policy = self._client.retry
        remaining = self._deadline - self._client._clock()
        if self.failures >= policy.max_attempts or remaining <= 0:
            raise self._client._give_up(self._request, error, self.failures) from error
        delay = policy.backoff(
            self.failures,
            rate_limited=isinstance(error, RateLimitedError),
            rng=self._client._rng,
        )
        delay = min(delay, remaining)
        _log.debug("attempt %d failed (%s); retrying in %.3f s", self.failures, error, delay)
        return delay


class EventsClient(_ClientBase[EventResponse]):
    """Sends events to PagerDuty and blocks until it answers or the retry policy gives up.

    Thread-safe: one background worker and direct calls may share a client. After a
    fork, the child opens its own connections instead of reusing the parent's.
    """

    def __init__(
        self,
        routing_key: str | None = None,
        *,
        source: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        scrubber: Scrubber | None = DEFAULT_SCRUBBER,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            routing_key,
            source=source,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            scrubber=scrubber,
            verify=verify,
            clock=clock,
            rng=rng,
        )
        self._transport = transport
        self._sleep = sleep
        self._lock = threading.Lock()
        self._http_client: httpx.Client | None = None
        lifecycle.replace_locks_after_fork(self)

    def send(self, event: Event) -> EventResponse:
        """Deliver ``event``; a trigger without a dedup key gets one first."""
        request = self._prepare(event)
        retrier = self._retrier(request)
        while True:
            try:
                return self._attempt(request, retrier.failures + 1)
            except DeliveryError as error:
                self._sleep(retrier.delay_after(error))

    def send_once(self, event: Event) -> EventResponse:
        """One attempt, no retry: for callers that schedule retries themselves."""
        return self.send_prepared(self.prepare(event))

    def send_prepared(
        self, prepared: PreparedEvent, *, occurrences: int = 1, attempt: int = 1
    ) -> EventResponse:
        r"""One attempt at a :meth:`prepare`\ d event (the dispatcher's sender calls this).

        ``occurrences`` above 1 is reported in the trigger's ``custom_details``.
        """
        request = self._request(prepared, occurrences)
        return self._attempt(request, attempt)

    def _attempt(self, request: _Request, attempt: int) -> EventResponse:
        self._log_attempt(request, attempt)
        http = self._http()
        try:
            response = http.post(request.url, content=request.body)
        except Exception as exc:
            raise self._request_failed(exc) from exc
        return self._interpret(request, response.status_code, response.content)

    def _http(self) -> httpx.Client:
        if _routes:
            return _routes[-1].sync
        http = self._http_client
        if http is None:
            with self._lock:
                if self._closed:
                    raise PagerDutyError(f"{type(self).__name__} is closed")
                if self._http_client is None:
                    self._http_client = httpx.Client(
                        headers=_HEADERS,
                        timeout=self.timeout,
                        transport=self._transport,
                        verify=self._verify,
                    )
                http = self._http_client
        return http

    def _after_fork(self) -> None:
        # The parent's pooled sockets are shared with this child: using or closing them
        # here would interleave bytes on the parent's connections. Drop them unclosed,
        # and replace the lock, which may have been copied while held.
        self._lock = threading.Lock()
        self._http_client = None

    def close(self) -> None:
        """Close the connections; further sends raise :class:`PagerDutyError`. Idempotent."""
        with self._lock:
            self._closed = True
            http, self._http_client = self._http_client, None
        if http is not None:
            http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventsClient(_ClientBase[Coroutine[Any, Any, EventResponse]]):
    """The :class:`EventsClient` API for asyncio: every call is awaited.

    Use one client per event loop: its connections belong to the loop that opened them.
    """

    def __init__(
        self,
        routing_key: str | None = None,
        *,
        source: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        scrubber: Scrubber | None = DEFAULT_SCRUBBER,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            routing_key,
            source=source,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            scrubber=scrubber,
            verify=verify,
            clock=clock,
            rng=rng,
        )
        self._transport = transport
        self._sleep = sleep
        self._http_client: httpx.AsyncClient | None = None

    async def send(self, event: Event) -> EventResponse:
        """Deliver ``event``; a trigger without a dedup key gets one first."""
        request = self._prepare(event)
        retrier = self._retrier(request)
        while True:
            try:
                return await self._attempt(request, retrier.failures + 1)
            except DeliveryError as error:
                await self._sleep(retrier.delay_after(error))

    async def send_once(self, event: Event) -> EventResponse:
        """One attempt, no retry: for callers that schedule retries themselves."""
        request = self._prepare(event)
        return await self._attempt(request, 1)

    async def _attempt(self, request: _Request, attempt: int) -> EventResponse:
        self._log_attempt(request, attempt)
        http = self._http()
        try:
            response = await http.post(request.url, content=request.body)
        except Exception as exc:
            raise self._request_failed(exc) from exc
        return self._interpret(request, response.status_code, response.content)

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise PagerDutyError(f"{type(self).__name__} is closed")
        if _routes:
            return _routes[-1].async_
        if self._http_client is None:
            self._http_client = httpx.AsyncClient(
                headers=_HEADERS,
                timeout=self.timeout,
                transport=self._transport,
                verify=self._verify,
            )
        return self._http_client

    async def close(self) -> None:
        """Close the connections; further sends raise :class:`PagerDutyError`. Idempotent."""
        self._closed = True
        http, self._http_client = self._http_client, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
