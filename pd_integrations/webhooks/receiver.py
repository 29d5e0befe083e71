"""Receiving PagerDuty v3 webhooks, whatever the framework.

::

    webhooks = WebhookReceiver()  # secrets from PAGERDUTY_WEBHOOK_SECRET

    @webhooks.on("incident.triggered", "incident.escalated")
    def page_chat(event: WebhookEvent) -> None: ...

    @webhooks.on("incident.*", background=True)
    async def sync_status_page(event: WebhookEvent) -> None: ...

The framework endpoints (``starlette_webhooks``, ``flask_webhooks``,
``django.webhooks``) only read the raw body and hand it to :meth:`WebhookReceiver.handle`
(or :meth:`~WebhookReceiver.ahandle`), which decides the answer. The answers keep the
subscription alive: PagerDuty drops a delivery answered with a 4xx and disables the
subscription after three in a row, so only a bad signature or a malformed request gets
one; 5xx (retried by PagerDuty for up to 48 hours) only when a handler fails.

Before the handlers run, ``incident.resolved`` and ``incident.acknowledged`` are applied
to the open alerts of this process's AlertManagers (``alerts=``, see
:class:`~pd_integrations.webhooks.handlers.AlertSync`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, overload

from pd_integrations import environment
from pd_integrations.errors import ConfigurationError
from pd_integrations.signals import emit, webhook_received

from .events import (
    Incident,
    IncidentNote,
    Reference,
    WebhookError,
    WebhookEvent,
    parse_webhook,
)
from .handlers import (
    AlertSync,
    BackgroundWork,
    DefaultHandlers,
    Handler,
    call_async,
    call_sync,
)
from .signature import SIGNATURE_HEADER, parse_secrets, sign_body, verify_signature

if TYPE_CHECKING:
    from pd_integrations.alerts import AlertManager

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PATH",
    "DEFAULT_REDELIVERY_MEMORY",
    "SIGNATURE_HEADER",
    "WEBHOOK_ID_HEADER",
    "BackgroundWork",
    "Handler",
    "HeaderSource",
    "Incident",
    "IncidentNote",
    "Reference",
    "WebhookError",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookResult",
    "parse_secrets",
    "parse_webhook",
    "sign_body",
    "verify_signature",
    "webhook_received",
]

_log = logging.getLogger("pd_integrations.webhooks")

WEBHOOK_ID_HEADER = "X-Webhook-Id"
DEFAULT_PATH = "/pagerduty/webhooks"
# PagerDuty drops payloads over 256 KB itself; anything larger is not from PagerDuty.
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_REDELIVERY_MEMORY = 10_000
# PagerDuty gives up after 5 s; warn while there is still some margin.
SLOW_HANDLING_SECONDS = 4.0


# -- results ----------------------------------------------------------------------------


class HeaderSource(Protocol):
    """Anything with a (preferably case-insensitive) ``get``: every framework's headers."""

    def get(self, key: str, /) -> str | None: ...


H = TypeVar("H", bound=Handler)
SecretSource = str | Iterable[str] | Callable[[], str | Iterable[str] | None]


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What to answer PagerDuty, and what to run once the answer is sent."""

    status: int
    body: Mapping[str, Any]
    events: tuple[WebhookEvent, ...] = ()
    background: BackgroundWork | None = field(default=None, repr=False)
    duplicate: bool = False

    media_type: ClassVar[str] = "application/json"

    @property
    def content(self) -> bytes:
        return json.dumps(self.body).encode("utf-8")


def _error(status: int, message: str) -> WebhookResult:
    return WebhookResult(status, {"error": message})


# -- redelivery memory ------------------------------------------------------------------

_DONE, _IN_FLIGHT = True, False
_KEYS_PER_DELIVERY = 2
Claim = Literal["new", "in-flight", "done"]


class _Deliveries:
    """The keys of the last ``size`` deliveries seen, least recently used dropped first.

    A delivery is known by several keys (its ``X-Webhook-Id`` and the id of each event
    in its signed body) and is a redelivery when any of them was seen.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, keys: Sequence[str]) -> Claim:
        with self._lock:
            states = [self._ids.get(key) for key in keys]
            for key, state in zip(keys, states, strict=True):
                if state is not None:
                    self._ids.move_to_end(key)
            if _DONE in states:
                return "done"
            if _IN_FLIGHT in states:
                return "in-flight"
            for key in keys:
                self._ids[key] = _IN_FLIGHT
            # Bounded by keys, with room for a webhook id and an event id per delivery.
            while len(self._ids) > self.size * _KEYS_PER_DELIVERY:
                self._ids.popitem(last=False)
            return "new"

    def finish(self, keys: Sequence[str], *, handled: bool) -> None:
        with self._lock:
            for key in keys:
                if not handled:
                    self._ids.pop(key, None)  # so that PagerDuty's retry is handled
                elif key in self._ids:
                    self._ids[key] = _DONE

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()


# -- the receiver -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Registration:
    pattern: str
    handler: Handler
    background: bool


@dataclass(frozen=True, slots=True)
class _Delivery:
    key: str | None
    claims: tuple[str, ...]
    events: tuple[WebhookEvent, ...]
    foreground: list[tuple[Handler, WebhookEvent]]
    background: list[tuple[Handler, WebhookEvent]]


class WebhookReceiver(DefaultHandlers):
    """Checks, parses and dispatches PagerDuty webhook deliveries.

    :param secrets: the subscription's signing secret, or several (rotation), or a
        callable returning them per request (framework settings); by default
        ``PAGERDUTY_WEBHOOK_SECRET`` (several separated by commas or whitespace).
    :param max_body_bytes: larger bodies are answered 413 without being read whole.
    :param redelivery_memory: how many deliveries to remember so that a redelivery is
        not handled twice; 0 turns this off. A delivery is remembered by its
        ``X-Webhook-Id`` and by the ids of the events in its signed body, so a captured
        body replayed under a fresh ``X-Webhook-Id`` is a redelivery too.
    :param default_handlers: log a line for the six common incident events when no
        handler of yours matches them (see :meth:`on_incident_triggered`).
    :param alerts: the AlertManager(s) whose open alerts ``incident.resolved`` closes and
        ``incident.acknowledged`` marks acknowledged (matched by the incident's
        ``incident_key``, the alert's dedup key); by default every manager of this
        process; ``()`` turns this off.
    :raises ConfigurationError: no secret given or found in the environment.
    """

    def __init__(
        self,
        secrets: SecretSource | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        redelivery_memory: int = DEFAULT_REDELIVERY_MEMORY,
        default_handlers: bool = True,
        environ: Mapping[str, str] | None = None,
        alerts: AlertManager | Iterable[AlertManager] | None = None,
    ) -> None:
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise ConfigurationError(f"max_body_bytes must be an int, got {max_body_bytes!r}")
        if max_body_bytes < 1:
            raise ConfigurationError(f"max_body_bytes must be positive, got {max_body_bytes}")
        if isinstance(redelivery_memory, bool) or not isinstance(redelivery_memory, int):
            raise ConfigurationError(f"redelivery_memory must be an int, got {redelivery_memory!r}")
        if redelivery_memory < 0:
            raise ConfigurationError(f"redelivery_memory must be >= 0, got {redelivery_memory}")
        self._secret_source: Callable[[], str | Iterable[str] | None] | None = None
        self._secrets: tuple[str, ...] = ()
        if callable(secrets):
            self._secret_source = secrets
        else:
            if secrets is None:
                secrets = environment.env_value(environment.WEBHOOK_SECRET_VAR, environ)
            self._secrets = parse_secrets(secrets)
            if not self._secrets:
                raise ConfigurationError(
                    "no PagerDuty webhook secret: pass secrets= or set "
                    f"{environment.WEBHOOK_SECRET_VAR} (the subscription's signing secret)"
                )
        self.max_body_bytes = max_body_bytes
        self.default_handlers = default_handlers
        self.alert_sync = AlertSync(alerts)
        self._deliveries = _Deliveries(redelivery_memory) if redelivery_memory else None
        self._registrations: tuple[_Registration, ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} handlers={len(self._registrations)} "
            f"max_body_bytes={self.max_body_bytes}>"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets in effect now (a callable source is asked every time)."""
        if self._secret_source is None:
            return self._secrets
        return parse_secrets(self._secret_source())

    # -- registering handlers --

    def on(self, *patterns: str, background: bool = False) -> Callable[[H], H]:
        """Decorator: run the handler for events whose type matches one of ``patterns``.

        Patterns are event types (``incident.triggered``) or shell-style wildcards
        (``incident.*``, ``*``). With ``background=True`` the handler runs after the
        response is sent: its failure is logged, not retried by PagerDuty.
        """
        if not patterns:
            raise TypeError("on() needs at least one event type, e.g. on('incident.triggered')")
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                hint = " (use @receiver.on_any for every event)" if callable(pattern) else ""
                raise TypeError(f"event type patterns must be non-empty strings{hint}")

        def register(handler: H) -> H:
            for pattern in patterns:
                self.add_handler(pattern, handler, background=background)
            return handler

        return register

    @overload
    def on_any(self, handler: H, /) -> H: ...
    @overload
    def on_any(self, handler: None = None, /, *, background: bool = False) -> Callable[[H], H]: ...
    def on_any(self, handler: Handler | None = None, /, *, background: bool = False) -> Any:
        """Decorator (with or without arguments): run the handler for every event."""
        if handler is not None:
            self.add_handler("*", handler)
            return handler
        return self.on("*", background=background)

    def add_handler(self, pattern: str, handler: Handler, *, background: bool = False) -> None:
        if not callable(handler):
            raise TypeError(f"a webhook handler must be callable, got {handler!r}")
        with self._lock:
            self._registrations = (
                *self._registrations,
                _Registration(pattern.strip(), handler, background),
            )

    def remove_handler(self, handler: Handler) -> None:
        """Unregister ``handler`` from every pattern."""
        with self._lock:
            self._registrations = tuple(r for r in self._registrations if r.handler != handler)

    def clear(self) -> None:
        """Unregister every handler and forget every delivery id (handy in tests)."""
        with self._lock:
            self._registrations = ()
        self.forget_deliveries()

    def forget_deliveries(self) -> None:
        """Forget the deliveries seen: the next delivery of any of them is handled."""
        if self._deliveries is not None:
            self._deliveries.clear()

    # -- reading the request --

    def too_large(self, content_length: str | int | None) -> bool:
        """Does a ``Content-Length`` header announce more than ``max_body_bytes``?"""
        if content_length is None:
            return False
        try:
            return int(content_length) > self.max_body_bytes
        except ValueError:
            return False  # the capped read decides

    def read_body(self, chunks: Iterable[bytes]) -> bytes | None:
        """The body from ``chunks``, or ``None`` as soon as it exceeds the cap."""
        parts: list[bytes] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
        return b"".join(parts)

    async def aread_body(self, chunks: AsyncIterable[bytes]) -> bytes | None:
        """:meth:`read_body` for an async stream (ASGI)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
        return b"".join(parts)

    def payload_too_large(self) -> WebhookResult:
        return _error(413, f"the body is larger than {self.max_body_bytes} bytes")

    # -- handling a delivery --

    def handle(self, raw_body: bytes, headers: HeaderSource) -> WebhookResult:
        """Check and dispatch one delivery; foreground handlers run here.

        Async handlers run in an event loop of their own. Run ``result.background``
        once the response is sent.
        """
        delivery = self._prepare(raw_body, headers)
        if isinstance(delivery, WebhookResult):
            return delivery
        started = time.monotonic()
        self.alert_sync.apply(self.alert_sync.wanted(delivery.events))
        try:
            for handler, event in delivery.foreground:
                call_sync(handler, event)
        except Exception:
            return self._failed(delivery)
        return self._succeeded(delivery, started)

    async def ahandle(self, raw_body: bytes, headers: HeaderSource) -> WebhookResult:
        """:meth:`handle` for async frameworks: sync handlers run in a worker thread."""
        delivery = self._prepare(raw_body, headers)
        if isinstance(delivery, WebhookResult):
            return delivery
        started = time.monotonic()
        actions = self.alert_sync.wanted(delivery.events)
        if actions:  # a shared state answers over the network: not on the event loop
            await asyncio.to_thread(self.alert_sync.apply, actions)
        try:
            for handler, event in delivery.foreground:
                await call_async(handler, event)
        except Exception:
            return self._failed(delivery)
        return self._succeeded(delivery, started)

    def _prepare(self, raw_body: bytes, headers: HeaderSource) -> WebhookResult | _Delivery:
        if len(raw_body) > self.max_body_bytes:
            return self.payload_too_large()
        signature = _header(headers, SIGNATURE_HEADER)
        if not signature:
            return _error(400, f"missing {SIGNATURE_HEADER} header")
        if not raw_body:
            return _error(400, "empty body")
        try:
            secrets = self.secrets
        except Exception:
            _log.exception("cannot read the PagerDuty webhook secrets")
            secrets = ()
        if not secrets:
            # A server without its secret: 5xx so that PagerDuty retries once it is fixed.
            _log.error("no PagerDuty webhook secret configured: deliveries are refused")
            return _error(500, "webhook secret not configured")
        if not verify_signature(raw_body, signature, secrets):
            _log.warning("PagerDuty webhook refused: invalid %s", SIGNATURE_HEADER)
            return _error(401, "invalid signature")
        try:
            events = parse_webhook(raw_body)
        except WebhookError as error:
            _log.warning("PagerDuty webhook refused: %s", error)
            return _error(400, f"malformed webhook: {error}")
        webhook_id = _header(headers, WEBHOOK_ID_HEADER)
        key = webhook_id or ",".join(e.id for e in events)
        # The header is not signed, the body is: a v3 event id cannot be changed by
        # whoever replays a captured delivery. (A v2 message may lack an id, which the
        # parser then makes up from the incident; that is no key to refuse events by.)
        claims = [f"webhook:{webhook_id}"] if webhook_id else []
        claims += [f"event:{event.id}" for event in events if event.version == "v3"]
        if not claims:
            claims = [f"events:{key}"]
        if self._deliveries is not None:
            claim = self._deliveries.claim(claims)
            if claim == "done":
                _log.info("PagerDuty webhook %s is a redelivery: already handled", key)
                return WebhookResult(200, {"status": "duplicate"}, events, duplicate=True)
            if claim == "in-flight":
                # Handled right now by another request; PagerDuty retries a 5xx later.
                return _error(503, "this delivery is being handled")
        foreground: list[tuple[Handler, WebhookEvent]] = []
        background: list[tuple[Handler, WebhookEvent]] = []
        for event in events:
            for registration in self._matching(event):
                queue = background if registration.background else foreground
                queue.append((registration.handler, event))
        return _Delivery(
            key if self._deliveries else None, tuple(claims), events, foreground, background
        )

    def _matching(self, event: WebhookEvent) -> list[_Registration]:
        found = [r for r in self._registrations if fnmatchcase(event.event_type, r.pattern)]
        if not found and self.default_handlers:
            handler = self.default_handler(event.event_type)
            if handler is not None:
                found.append(_Registration(event.event_type, handler, False))
        return found

    def _failed(self, delivery: _Delivery) -> WebhookResult:
        _log.exception(
            "a PagerDuty webhook handler failed (delivery %s): answering 500 so that "
            "PagerDuty retries",
            delivery.key,
        )
        if delivery.key is not None and self._deliveries is not None:
            self._deliveries.finish(delivery.claims, handled=False)
        return _error(500, "a webhook handler failed")

    def _succeeded(self, delivery: _Delivery, started: float) -> WebhookResult:
        elapsed = time.monotonic() - started
        if elapsed > SLOW_HANDLING_SECONDS:
            _log.warning(
                "PagerDuty webhook handlers took %.1f s; PagerDuty gives up after 5 s: "
                "register slow handlers with background=True",
                elapsed,
            )
        if delivery.key is not None and self._deliveries is not None:
            self._deliveries.finish(delivery.claims, handled=True)
        for event in delivery.events:
            emit(webhook_received, self, event=event, webhook_id=delivery.key)
        return WebhookResult(
            200,
            {"status": "accepted", "events": len(delivery.events)},
            delivery.events,
            BackgroundWork(delivery.background) if delivery.background else None,
        )


# -- helpers ----------------------------------------------------------------------------


def _header(headers: HeaderSource, name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        # A plain dict is case-sensitive; framework header objects are not.
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return value
