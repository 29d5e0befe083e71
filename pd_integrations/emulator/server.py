"""The :class:`Emulator`: a local PagerDuty (Events API v2, a REST API v2 subset, signed
v3 webhooks) in a background thread."""

from __future__ import annotations

import functools
import importlib.resources
import os
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .api import App
from .faults import FaultConfig, FaultInjector, OutageMode
from .guard import RequestGuard
from .httpserver import EmulatorServer
from .insights import InsightsView
from .resources import Resources
from .rest import RestApi
from .roster import DEFAULT_ROSTER, Roster
from .state import DEFAULT_MAX_RECORDS, Change, Responder, Store
from .throttle import DEFAULT_LIMIT, SlidingWindow
from .tls import TLSMaterial
from .webhook_sender import DEFAULT_RETRY_DELAYS, DEFAULT_TIMEOUT, WebhookSender

_WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
JOIN_TIMEOUT = 5.0


@functools.cache
def console_html() -> str:
    """The console page, shipped as package data next to this module."""
    return importlib.resources.files(__package__).joinpath("console.html").read_text("utf-8")


class Emulator:
    """PagerDuty's Events API v2 on a local port, with a console and a control API.

    ::

        with Emulator(port=0) as emulator:
            client = EventsClient(ROUTING_KEY, base_url=emulator.url)
            client.trigger("Disk full", "critical", source="db1")
            (alert,) = emulator.wait_for_alerts(1)

    :param host: interface to listen on.
    :param port: TCP port; 0 picks a free one (see :attr:`port`).
    :param tls: serve HTTPS with a certificate from a throwaway CA (needs ``trustme``).
    :param ca_file: where to write that CA's PEM; by default a temporary file that
        :meth:`stop` removes. Either way it is :attr:`ca_file`.
    :param rate_limit_per_minute: events accepted per routing key in any 60 s window
        (PagerDuty: about 120); None turns the limit off.
    :param error_rate: share of ``/v2`` requests answered 500, 502 or 503.
    :param rate_limit_429_rate: share of ``/v2`` requests answered 429 regardless of
        the budget.
    :param latency: seconds to wait before answering each ``/v2`` request.
    :param drop_rate: share of ``/v2`` requests whose connection is closed unanswered.
    :param outage: answer every ``/v2`` request with 503 (or drop it, see
        ``outage_mode``) until cleared or until ``outage_seconds`` have passed.
    :param seed: seed for the fault decisions, for reproducible tests.
    :param clock: monotonic clock in seconds for the rate window and timed outages;
        tests pass a fake one to move time without sleeping.
    :param verbose: log every request (and handler errors) to stderr.
    :param max_records: how many events and requests the logs keep (oldest go first).
    :param roster: users, schedules and escalation policy of the REST API (default:
        :data:`~.roster.DEFAULT_ROSTER`, Alice on call, then Bob).
    :param api_token: the only REST API key accepted; by default any non-empty one.
    :param webhook_url: where to send signed v3 webhooks when an incident is
        triggered, acknowledged, resolved or annotated (see :meth:`set_webhook`).
    :param webhook_secret: the subscription's secret (several: one signature each).
    :param webhook_timeout: seconds to wait for the webhook receiver.
    :param webhook_retry_delays: seconds before each retry of a webhook answered 5xx
        or 429, or not answered; their number bounds the retries.
    :param allowed_hosts: host names (or addresses) besides ``localhost``,
        ``127.0.0.1``, ``[::1]`` and ``host`` that requests may name in their ``Host``
        header, such as a container's service name; any other name gets 403, so that a
        web page cannot reach the emulator through DNS rebinding (see :mod:`.guard`).
    :param now: the wall clock that stamps events, acknowledgements and resolves (an
        aware datetime); tests pass a fake one to load a deterministic history.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        rate_limit_per_minute: int | None = DEFAULT_LIMIT,
        error_rate: float = 0.0,
        rate_limit_429_rate: float = 0.0,
        latency: float = 0.0,
        drop_rate: float = 0.0,
        outage: bool = False,
        outage_seconds: float | None = None,
        outage_mode: OutageMode = "error",
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        verbose: bool = False,
        max_records: int = DEFAULT_MAX_RECORDS,
        roster: Roster = DEFAULT_ROSTER,
        api_token: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | Sequence[str] | None = None,
        webhook_timeout: float = DEFAULT_TIMEOUT,
        webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        allowed_hosts: Sequence[str] = (),
        now: Callable[[], datetime] | None = None,
    ) -> None:
        monotonic = clock or time.monotonic
        faults = FaultConfig(
            error_rate=error_rate,
            rate_limit_429_rate=rate_limit_429_rate,
            latency=latency,
            drop_rate=drop_rate,
            outage=outage,
            outage_seconds=outage_seconds,
            outage_mode=outage_mode,
        )
        self._host = host
        self._requested_port = port
        self._verbose = verbose
        self._roster = roster
        self._resources = Resources(roster, lambda: self.url)
        self._webhooks = WebhookSender(timeout=webhook_timeout, retry_delays=webhook_retry_delays)
        self._webhooks.configure(webhook_url, webhook_secret)
        wall = now or (lambda: datetime.now(UTC))
        self._store = Store(
            max_records=max_records,
            listener=self._on_change,
            now=lambda: (
                wall().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            ),
        )
        self._faults = FaultInjector(faults, seed=seed, clock=monotonic)
        self._window = SlidingWindow(rate_limit_per_minute, clock=monotonic)
        self._rest = RestApi(self._store, self._resources, token=api_token)
        guard = RequestGuard(host, lambda: self.port, "https" if tls else "http", allowed_hosts)
        self._app = App(
            self._store,
            self._faults,
            self._window,
            console_html(),
            rest=self._rest.handle,
            webhooks=self._webhooks,
            console_user=roster.console_user,
            guard=guard.check,
            insights=InsightsView(self._store, self._resources, wall).handle,
        )
        self._tls = TLSMaterial(host, ca_file) if tls else None
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lifecycle = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Emulator:
        """Listen and serve in a daemon thread; returns self. An emulator starts once."""
        with self._lifecycle:
            if self._stopped:
                raise RuntimeError("this Emulator was stopped; create a new one")
            if self._server is not None:
                return self
            self._server = EmulatorServer(
                (self._host, self._requested_port),
                self._app,
                ssl_context=self._tls.server_context if self._tls else None,
                verbose=self._verbose,
            )
            self._thread = threading.Thread(
                target=self._server.serve,
                name=f"pd-emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
            self._webhooks.start()
            return self

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread. Idempotent."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            self._webhooks.stop(JOIN_TIMEOUT)
            server, thread = self._server, self._thread
            if server is not None:
                server.stop(JOIN_TIMEOUT)
            if thread is not None:
                thread.join(JOIN_TIMEOUT)
            if self._tls is not None:
                self._tls.cleanup()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None and not self._stopped

    # -- addresses ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started: call start() or use `with`")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``: what a client's ``base_url`` takes."""
        host = _WILDCARD_HOSTS.get(self._host, self._host)
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    @property
    def change_events_url(self) -> str:
        return f"{self.url}/v2/change/enqueue"

    @property
    def console_url(self) -> str:
        return f"{self.url}/"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API subset, e.g. ``http://127.0.0.1:8765/rest``."""
        return f"{self.url}/rest"

    @property
    def roster(self) -> Roster:
        return self._roster

    @property
    def ca_file(self) -> Path | None:
        """PEM file of the CA that signed the server certificate (None without TLS)."""
        return self._tls.ca_path if self._tls else None

    @property
    def ca_pem(self) -> bytes | None:
        return self._tls.ca_pem if self._tls else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting only this emulator's CA (for ``verify=``)."""
        if self._tls is None:
            raise RuntimeError("the emulator was created without tls=True")
        return self._tls.client_context()

    # -- state -------------------------------------------------------------------------

    def alerts(
        self,
        status: str | None = None,
        *,
        routing_key: str | None = None,
        dedup_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts in the order they were opened, as ``GET /api/alerts`` returns them."""
        return self._store.alerts(status=status, routing_key=routing_key, dedup_key=dedup_key)

    def alert(self, alert_id: str) -> dict[str, Any]:
        """One alert by id (KeyError when unknown)."""
        return self._store.alert(alert_id)

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Accepted events (``seq`` above ``since``), change events included."""
        return self._store.events(since)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Every Events API request with its answer, rejected and faulted ones included."""
        return self._store.requests(since)

    def stats(self) -> dict[str, Any]:
        return self._app.stats()

    def acknowledge(self, alert_id: str) -> dict[str, Any]:
        """Acknowledge an alert as a responder would (the console's button)."""
        return self._respond(alert_id, "acknowledge")

    def resolve(self, alert_id: str) -> dict[str, Any]:
        """Resolve an alert as a responder would (the console's button)."""
        return self._respond(alert_id, "resolve")

    def _respond(self, alert_id: str, action: Responder) -> dict[str, Any]:
        return self._store.respond(alert_id, action, agent=self._roster.console_user)

    def add_note(self, alert_id: str, content: str) -> dict[str, Any]:
        """Add a note to an alert as the console's user; the note (KeyError if unknown)."""
        if not content.strip():
            raise ValueError("a note needs some content")
        return self._store.add_note(
            alert_id, content, agent=self._roster.console_user, via="console"
        )

    def incident(self, alert_id: str) -> dict[str, Any]:
        """An alert as the REST API's incident (KeyError when unknown)."""
        return self._resources.incident(self._store.alert(alert_id))

    def reset(self) -> None:
        """Forget alerts, events, requests and rate windows; clear every fault."""
        self._app.reset()

    # -- webhooks ----------------------------------------------------------------------

    def set_webhook(self, url: str | None, secret: str | Sequence[str] | None = None) -> None:
        """Send signed v3 webhooks to ``url`` from now on (``None``: stop sending).

        ValueError for a URL that is not absolute http(s), or without a secret.
        """
        self._webhooks.configure(url, secret)

    @property
    def webhook_url(self) -> str | None:
        return self._webhooks.url

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery, oldest first, as ``GET /api/webhooks`` lists them."""
        return self._webhooks.deliveries()

    def wait_for_webhooks(
        self,
        count: int = 1,
        timeout: float = 5.0,
        *,
        event_type: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` deliveries (of ``event_type``) are finished (or have
        ``status``); return the matching ones. TimeoutError when they do not come."""

        def matching(deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                d
                for d in deliveries
                if (event_type is None or d["event_type"] == event_type)
                and (d["status"] == status if status else d["status"] != "pending")
            ]

        if not self._webhooks.wait_for(lambda found: len(matching(found)) >= count, timeout):
            found = matching(self._webhooks.deliveries())
            raise TimeoutError(
                f"expected {count} webhook deliver{'y' if count == 1 else 'ies'}"
                f"{f' of {event_type}' if event_type else ''} within {timeout} s, "
                f"found {len(found)}"
            )
        return matching(self._webhooks.deliveries())

    def _on_change(self, change: Change) -> None:
        if self._webhooks.enabled and self.running:
            self._webhooks.submit(self._resources.webhook_event(change))

    # -- faults and limits -------------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        """The fault settings, as ``GET /api/faults`` returns them."""
        return self._faults.snapshot()

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Change the given fault settings (others keep their value); ValueError if invalid.

        Settings: ``error_rate``, ``rate_limit_429_rate``, ``latency``, ``drop_rate``,
        ``outage``, ``outage_seconds``, ``outage_mode``.
        """
        self._faults.update(**settings)
        return self._faults.snapshot()

    def revoke(self, routing_key: str) -> None:
        """Answer ``routing_key``'s events with 400 "Invalid routing key", as PagerDuty
        does once its integration was deleted; :meth:`reset` or :meth:`restore` ends it."""
        self._app.revoked.add(routing_key)

    def restore(self, routing_key: str) -> None:
        """Accept ``routing_key``'s events again after :meth:`revoke`."""
        self._app.revoked.discard(routing_key)

    def clear_faults(self) -> None:
        """No more faults; the fault decisions restart from the seed."""
        self._faults.clear()

    @property
    def rate_limit_per_minute(self) -> int | None:
        return self._window.limit

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, value: int | None) -> None:
        self._window.limit = value

    # -- waiting -----------------------------------------------------------------------

    def wait_for_alerts(
        self, count: int = 1, timeout: float = 5.0, *, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` alerts (with ``status``) exist; return them all.

        Raises TimeoutError when they do not appear in time.
        """
        store = self._store
        if not store.wait_for(lambda: store.count_alerts(status) >= count, timeout):
            found = store.count_alerts(status)
            raise TimeoutError(
                f"expected {count} alert(s){f' with status {status}' if status else ''}"
                f" within {timeout} s, found {found}"
            )
        return self.alerts(status)

    def wait_for_events(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events were accepted; return them all."""
        store = self._store
        if not store.wait_for(lambda: store.count_events() >= count, timeout):
            raise TimeoutError(
                f"expected {count} accepted event(s) within {timeout} s, "
                f"found {store.count_events()}"
            )
        return self.events()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` Events API requests arrived; return them all.

        A request is logged as soon as its answer is decided, before injected latency.
        """
        store = self._store
        if not store.wait_for(lambda: store.count_requests() >= count, timeout):
            raise TimeoutError(
                f"expected {count} request(s) within {timeout} s, found {store.count_requests()}"
            )
        return self.requests()

    def __repr__(self) -> str:
        where = self.url if self.running else "not running"
        return f"<Emulator {where}>"
