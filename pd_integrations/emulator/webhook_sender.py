"""Signed v3 webhook deliveries from the emulator, the way PagerDuty sends them.

One background thread posts the queued events in order. Each delivery gets a
``X-Webhook-Id`` that stays the same on redelivery, and an ``X-PagerDuty-Signature``
computed by :func:`pd_integrations.webhooks.receiver.sign_body` (one ``v1=`` entry per secret,
as during a secret rotation). Like PagerDuty, the sender waits at most ``timeout``
seconds for an answer, retries 5xx answers, 429s, timeouts and connection errors a
few times with a short backoff, and drops a delivery answered with any other
non-2xx status. Nothing here ever blocks or fails the emulator: :meth:`submit` only
queues, and what happened to each delivery is kept for :meth:`deliveries`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .state import utc_now

DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_RECORDS = 1000
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "PagerDuty-Webhook/V3.0"
JOIN_TIMEOUT = 5.0

DeliveryStatus = Literal["pending", "delivered", "failed", "dropped", "abandoned"]
Signer = Callable[[bytes, str], str]


def _library_signer(raw_body: bytes, secret: str) -> str:
    # Imported late: the library's webhook module is only needed once webhooks are on.
    from pd_integrations.webhooks.receiver import sign_body

    return sign_body(raw_body, secret)


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook_url must be an absolute http(s) URL, got {url!r}")
    return url.strip()


def check_secrets(secret: str | Sequence[str] | None) -> tuple[str, ...]:
    """The configured secrets as a tuple; ValueError when there is none or one is blank."""
    secrets = (secret,) if isinstance(secret, str) else tuple(secret or ())
    if not secrets:
        raise ValueError("a webhook_url needs a webhook_secret: deliveries are always signed")
    if any(not isinstance(s, str) or not s.strip() for s in secrets):
        raise ValueError("webhook secrets must be non-empty strings")
    return secrets


@dataclass
class Delivery:
    """One webhook and its attempts."""

    webhook_id: str
    event: dict[str, Any]
    body: bytes
    url: str
    created_at: str
    status: DeliveryStatus = "pending"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    finished_at: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        event = self.event.get("event", {})
        data = event.get("data") or {}
        incident = data.get("incident") if event.get("event_type") == "incident.annotated" else data
        last = self.attempts[-1] if self.attempts else {}
        return {
            "webhook_id": self.webhook_id,
            "event_id": event.get("id"),
            "event_type": event.get("event_type"),
            "incident_id": (incident or {}).get("id"),
            "url": self.url,
            "status": self.status,
            "status_code": last.get("status_code"),
            "error": last.get("error"),
            "attempts": len(self.attempts),
            "attempt_log": [dict(attempt) for attempt in self.attempts],
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "body": self.event,
        }


class WebhookSender:
    """Queues webhook events and posts them from a daemon thread.

    :param timeout: seconds to wait for the receiver (connect, and each read).
    :param retry_delays: seconds to wait before each retry; their number bounds the
        retries (PagerDuty retries for hours; a local tool should not).
    :param max_pending: queued deliveries beyond this are dropped (and recorded).
    :param max_records: how many finished deliveries :meth:`deliveries` keeps.
    :param sign: ``(raw_body, secret) -> "v1=<hex>"``; the library's by default.
    :param subscription_id: the ``X-Webhook-Subscription`` header.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_records: int = DEFAULT_MAX_RECORDS,
        sign: Signer | None = None,
        subscription_id: str = "PEMUSUB",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError("webhook timeout must be positive")
        if any(not delay >= 0 for delay in retry_delays):
            raise ValueError("webhook retry delays must be 0 or more seconds")
        self.timeout = float(timeout)
        self.retry_delays = tuple(float(delay) for delay in retry_delays)
        self.subscription_id = subscription_id
        self._sign = sign or _library_signer
        self._ssl_context = ssl_context
        self._max_pending = max_pending
        self._url: str | None = None
        self._secrets: tuple[str, ...] = ()
        self._changed = threading.Condition(threading.Lock())
        self._queue: deque[Delivery] = deque()
        self._records: deque[Delivery] = deque(maxlen=max_records)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._active: http.client.HTTPConnection | None = None

    # -- configuration ---------------------------------------------------------------

    def configure(self, url: str | None, secret: str | Sequence[str] | None = None) -> None:
        """Send to ``url`` signed with ``secret`` (one or several); ``None`` turns it off."""
        if url is None:
            with self._changed:
                self._url, self._secrets = None, ()
            return
        checked_url, secrets = check_webhook_url(url), check_secrets(secret)
        with self._changed:
            self._url, self._secrets = checked_url, secrets

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def enabled(self) -> bool:
        return self._url is not None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        with self._changed:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="pd-emulator-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Stop at once: a delivery in flight is cut off, queued ones are abandoned."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
            active = self._active
        if active is not None and active.sock is not None:
            with contextlib.suppress(OSError):
                active.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._changed:
            while self._queue:
                self._finish(self._queue.popleft(), "abandoned")

    # -- the emulator's side -------------------------------------------------------------

    def submit(self, event: dict[str, Any]) -> None:
        """Queue one ``{"event": ...}`` body; returns at once, never raises."""
        with self._changed:
            url, secrets = self._url, self._secrets
            if url is None or self._stopping.is_set():
                return
            body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            delivery = Delivery(str(uuid.uuid4()), event, body, url, utc_now(), secrets=secrets)
            if len(self._queue) >= self._max_pending:
                delivery.attempts.append(
                    {"at": utc_now(), "status_code": None, "error": "too many pending deliveries"}
                )
                self._finish(delivery, "dropped")
                return
            self._queue.append(delivery)
            self._records.append(delivery)
            self._changed.notify_all()

    def deliveries(self) -> list[dict[str, Any]]:
        """Every recorded delivery, oldest first (pending ones included)."""
        with self._changed:
            return [delivery.to_dict() for delivery in self._records]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        """Block until ``predicate(deliveries())`` is true, or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.deliveries()):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    def reset(self) -> None:
        """Forget finished deliveries (queued ones still go out)."""
        with self._changed:
            pending = [d for d in self._records if d.status == "pending"]
            self._records.clear()
            self._records.extend(pending)

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                while not self._queue and not self._stopping.is_set():
                    self._changed.wait()
                if self._stopping.is_set():
                    return
                delivery = self._queue[0]
            self._deliver(delivery)
            with self._changed:
                if self._queue and self._queue[0] is delivery:
                    self._queue.popleft()

    def _deliver(self, delivery: Delivery) -> None:
        try:
            signature = ",".join(self._sign(delivery.body, secret) for secret in delivery.secrets)
        except Exception as error:  # a signing bug must not kill the worker
            self._attempted(delivery, None, f"signing failed: {error}")
            self._finish_locked(delivery, "failed")
            return
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-PagerDuty-Signature": signature,
            "X-Webhook-Id": delivery.webhook_id,
            "X-Webhook-Subscription": self.subscription_id,
        }
        for attempt in range(len(self.retry_delays) + 1):
            if attempt and self._stopping.wait(self.retry_delays[attempt - 1]):
                self._finish_locked(delivery, "abandoned")
                return
            status, problem = self._post(delivery, headers)
            self._attempted(delivery, status, problem)
            if status is not None and 200 <= status < 300:
                self._finish_locked(delivery, "delivered")
                return
            if status is not None and status != 429 and status < 500:
                self._finish_locked(delivery, "dropped")
                return
            if self._stopping.is_set():
                self._finish_locked(delivery, "abandoned")
                return
        self._finish_locked(delivery, "failed")

    def _post(self, delivery: Delivery, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """One attempt: ``(status, None)`` for an answer, ``(None, reason)`` otherwise."""
        parts = urlsplit(delivery.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self.timeout
            )
        with self._changed:
            self._active = connection
        try:
            connection.request("POST", path, body=delivery.body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            return response.status, None
        except TimeoutError:
            return None, f"no answer within {self.timeout:g} s"
        except (OSError, http.client.HTTPException) as error:
            return None, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        finally:
            with self._changed:
                self._active = None
            connection.close()

    def _attempted(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        with self._changed:
            delivery.attempts.append({"at": utc_now(), "status_code": status, "error": error})
            self._changed.notify_all()

    def _finish_locked(self, delivery: Delivery, status: DeliveryStatus) -> None:
        with self._changed:
            self._finish(delivery, status)

    def _finish(self, delivery: Delivery, status: DeliveryStatus) -> None:
        delivery.status = status
        delivery.finished_at = utc_now()
        if not any(record is delivery for record in self._records):
            self._records.append(delivery)
        self._changed.notify_all()
