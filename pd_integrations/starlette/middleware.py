"""PagerDuty alerting for Starlette and FastAPI apps: one plain ASGI middleware.

::

    app.add_middleware(PagerDutyMiddleware, alerts=manager, slow_request_ms=5000)

The middleware translates ASGI events into calls on :class:`~pd_integrations.monitor.
RequestMonitor`, which makes every decision. It watches ``send`` only to learn the
status and the moment the last body message is handed to the server (where timing
ends, so background tasks are not counted), and sees exceptions that escape the app on
their way to Starlette's ``ServerErrorMiddleware``, which still produces the 500: the
responses are the app's own, byte for byte. Websocket scopes pass through untouched;
lifespan messages pass through unchanged, watched to start and stop periodic health
checks and to flush the alert queue at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Iterable, Mapping
from functools import partial
from typing import Any, Final

from starlette.requests import ClientDisconnect
from starlette.routing import Host, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pd_integrations.alerts import AlertManager
from pd_integrations.errors import ConfigurationError
from pd_integrations.health import DEFAULT_INTERVAL, HealthMonitor
from pd_integrations.monitor import DedupBy, RequestInfo, RequestMonitor, RunbookMap, StatusSeverity
from pd_integrations.policy import BeforeSend, Rule
from pd_integrations.settings import SETTINGS, load
from pd_integrations.settings.build import build_alerts, build_health, build_monitor
from pd_integrations.settings.tasks import TASK_SETTINGS
from pd_integrations.workers import multi_process_warning

from .health import health_endpoint

__all__ = ["SLOW_REQUEST_MS_VAR", "PagerDutyMiddleware", "route_template"]

_log = logging.getLogger("pd_integrations.starlette")

SLOW_REQUEST_MS_VAR = "PAGERDUTY_SLOW_REQUEST_MS"
# Messages that carry response body; the one without ``more_body`` is the last.
_BODY_MESSAGES = frozenset(
    {"http.response.body", "http.response.zerocopysend", "http.response.pathsend"}
)
_MAX_MOUNT_DEPTH = 16
_warned_disabled = False


# Settings that configure the AlertManager the middleware creates, and the HealthMonitor.
_ALERT_SETTINGS: Final = frozenset(
    {
        "routing_key",
        "events_base_url",
        "source",
        "client_url",
        "timeout",
        "auto_resolve_after",
        "refresh_after",
        "state_url",
        "spool",
        "flush_timeout",
        "delivery_alert_routing_key",
        "delivery_stall_after",
        "before_send",
        "routing_rules",
        "release",
        "announce_release",
    }
)
_HEALTH_SETTINGS: Final = frozenset(
    {"health_checks", "health_timeout", "health_failure_threshold", "health_recovery_threshold"}
)
_MIDDLEWARE_SETTINGS: Final = frozenset({"health_interval", "health_path", "health_show_errors"})
_REQUEST_SETTINGS: Final = frozenset(
    setting.name
    for setting in SETTINGS
    if setting.name not in _ALERT_SETTINGS | _HEALTH_SETTINGS | _MIDDLEWARE_SETTINGS
    and setting.name != "webhook_secret"
    and setting.name not in TASK_SETTINGS
)
KEYWORD_SETTINGS: Final = (
    _REQUEST_SETTINGS | _ALERT_SETTINGS | _HEALTH_SETTINGS | _MIDDLEWARE_SETTINGS
)
"""The settings PagerDutyMiddleware takes as keywords: all but ``webhook_secret``."""
ARGUMENT_ORIGIN: Final = "a PagerDutyMiddleware argument"


class PagerDutyMiddleware:
    """Exception and slow-request alerts for a Starlette or FastAPI app.

    Every setting of :data:`pd_integrations.settings.SETTINGS` but ``webhook_secret``
    (which :func:`webhook_app` takes) is a keyword of the same name; one not given (or
    ``None``) falls back to its ``PAGERDUTY_<NAME>`` environment variable, as in Flask
    and Django. ``alerts``, ``monitor`` and ``health`` replace what the middleware would
    build: ``alerts`` defaults to the ``health`` monitor's manager, else one built from
    the settings (and flushed at lifespan shutdown); with ``monitor`` no request setting
    may be given, with ``alerts``/``monitor``/``health`` no AlertManager setting, with
    ``health`` no health-check setting.

    With a health monitor (``health``, or the ``health_checks`` setting), the checks run
    every ``health_interval`` seconds (default 30; ``"off"`` for never) in a task started
    when the app reports lifespan startup complete and cancelled when shutdown begins;
    ``health_path`` serves them (or use :func:`health_route`).

    A setting that cannot be used never breaks a request: the middleware logs it once
    at ``ERROR`` and passes every request through untouched, and the lifespan startup
    fails with it after the app's own startup ran (so ``uvicorn --lifespan on`` exits;
    the default ``auto`` mode only logs that lifespan looks unsupported and serves).
    Without a routing key the middleware passes every request through and warns once.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        alerts: AlertManager | None = None,
        monitor: RequestMonitor | None = None,
        health: HealthMonitor | None = None,
        # The settings, in the order of pd_integrations.settings.SETTINGS; None: not given.
        routing_key: str | None = None,
        events_base_url: str | None = None,
        source: str | None = None,
        environment: str | None = None,
        client_url: str | None = None,
        component: str | None = None,
        timeout: float | None = None,
        auto_resolve_after: float | str | None = None,
        refresh_after: float | str | None = None,
        state_url: str | None = None,
        spool: str | os.PathLike[str] | None = None,
        flush_timeout: float | None = None,
        delivery_alert_routing_key: str | None = None,
        delivery_stall_after: float | None = None,
        before_send: BeforeSend | str | None = None,
        routing_rules: Iterable[Rule | Mapping[str, Any]] | str | None = None,
        release: str | None = None,
        announce_release: bool | None = None,
        trace_url_template: str | None = None,
        breadcrumbs: int | str | None = None,
        breadcrumb_bytes: int | str | None = None,
        send_user: bool | None = None,
        slow_request_ms: float | str | None = None,
        slow_routes: Mapping[str, float | None] | None = None,
        exclude_paths: Iterable[str] | None = None,
        alert_on_handled_5xx: bool | None = None,
        severity_for_status: StatusSeverity | None = None,
        dedup_by: DedupBy | None = None,
        runbooks: RunbookMap | None = None,
        ignore_exceptions: Iterable[type[BaseException] | str] | None = None,
        auto_resolve: bool | None = None,
        in_app_include: Iterable[str] | None = None,
        in_app_exclude: Iterable[str] | None = None,
        include_headers: Iterable[str] | None = None,
        send_client_ip: bool | None = None,
        health_checks: Mapping[str, object] | None = None,
        health_interval: float | str | None = None,
        health_timeout: float | None = None,
        health_failure_threshold: int | None = None,
        health_recovery_threshold: int | None = None,
        health_show_errors: bool | None = None,
        health_path: str | None = None,
    ) -> None:
        self.app = app
        arguments = locals()
        given = {
            name: arguments[name]
            for name in _REQUEST_SETTINGS
            | _ALERT_SETTINGS
            | _HEALTH_SETTINGS
            | _MIDDLEWARE_SETTINGS
            if arguments[name] is not None
        }
        _refuse(given, _ALERT_SETTINGS, "alerts=, monitor= or health=", (alerts, monitor, health))
        _refuse(given, _REQUEST_SETTINGS, "monitor=", (monitor,))
        _refuse(given, _HEALTH_SETTINGS, "health=", (health,))
        if monitor is not None:
            if alerts is not None and alerts is not monitor.alerts:
                raise ValueError("alerts= is not the AlertManager of the monitor given")
            alerts = monitor.alerts
        elif alerts is None and health is not None:
            alerts = health.alerts
        self.settings = load(
            given,
            origin=ARGUMENT_ORIGIN,
            ref=lambda setting: setting.name,
            defaults={"health_interval": DEFAULT_INTERVAL, "health_path": None},
        )
        self.error: ConfigurationError | None = None
        try:
            self.settings.raise_for_errors()
            if alerts is None:
                alerts = build_alerts(self.settings)
            if monitor is None:
                monitor = build_monitor(self.settings, alerts)
            if health is None and self.settings.health_checks:
                health = build_health(self.settings, alerts)
        except ConfigurationError as error:
            # Raising here would turn every request into a 500: Starlette builds the
            # middleware stack lazily and builds it again on each request that fails.
            self.error = error
            _log.error(
                "PagerDuty alerting is disabled: %s; PagerDutyMiddleware passes requests "
                "through untouched",
                error,
            )
            health = None
        self.alerts: AlertManager | None = None if self.error else alerts
        """``None`` only while a setting is invalid: nothing is watched or sent then."""
        self.monitor: RequestMonitor | None = None if self.error else monitor
        self.health = health
        self.health_interval = self.settings.health_interval
        self._health_endpoint: ASGIApp | None = None
        if health is not None and self.settings.health_path is not None:
            self._health_endpoint = Route(
                self.settings.health_path,
                health_endpoint(
                    health,
                    max_age=None if self.health_interval is None else self.health_interval,
                    errors=self.settings.health_show_errors,
                ),
                methods=["GET"],
            )
        # The hot path compares the scope type with this once: ``None`` when alerting is
        # off turns the middleware into a pass-through for every request.
        enabled = self.alerts is not None and self.alerts.enabled
        self._watched: str | None = "http" if enabled or self._health_endpoint else None
        # What the hot path reads, resolved once: the monitor when alerting is on (else
        # requests other than the health endpoint's pass through) and the health path.
        self._watching = self.monitor if enabled else None
        self._health_path = self.settings.health_path
        # Lifespan shutdown flushes the queue: uvicorn re-raises SIGTERM after it, so the
        # exit handlers never run there. A configuration error fails the startup.
        self._hooks_lifespan = health is not None or enabled or self.error is not None
        if self.alerts is not None:
            if not enabled:
                _warn_disabled()
            _warn_multi_process(self.alerts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == self._watched:
            endpoint = self._health_endpoint
            if endpoint is not None and scope.get("path") == self._health_path:
                await endpoint(scope, receive, send)
                return
            monitor = self._watching
            if monitor is None:
                await self.app(scope, receive, send)
                return
            watch = _Watch(monitor, scope, send, monitor.clock())
            crumbs = monitor.begin_request(scope)
            try:
                await self.app(scope, receive, watch.send)
            except Exception as exc:
                watch.failed(exc)
                raise
            else:
                if watch.open:
                    watch.returned()
            finally:
                # After the alert a request raised, which carries its breadcrumbs.
                monitor.end_request(crumbs)
        elif scope["type"] == "lifespan" and self._hooks_lifespan:
            hooks = _Lifespan(self, receive, send)
            try:
                await self.app(scope, hooks.receive, hooks.send)
            finally:
                await hooks.stop_checks()
        else:
            await self.app(scope, receive, send)


class _Watch:
    """One request: sees its status and its last body message, describes it on demand.

    Calling the instance builds the :class:`RequestInfo` (the monitor's lazy request
    description), so nothing else is allocated per request.
    """

    __slots__ = ("_send", "ended", "monitor", "open", "scope", "started", "status")

    def __init__(self, monitor: RequestMonitor, scope: Scope, send: Send, started: float) -> None:
        self.monitor = monitor
        self.scope = scope
        self._send = send
        self.started = started
        self.status = 0
        self.open = True
        self.ended: float | None = None

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: it hands back the server's own awaitable, so watching costs
        # no extra coroutine per message. Timing thus ends when the app hands the last
        # body message over, not when a slow client has read it.
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif self.open and kind in _BODY_MESSAGES and not message.get("more_body", False):
            status = self.status
            if status < 500:
                self.open = False
                monitor = self.monitor
                # The monitor's own quiet bounds, compared here: the call it saves is a
                # tenth of this middleware's cost on a hello-world request.
                if (
                    status >= monitor.quiet_status_below
                    or monitor.clock() - self.started >= monitor.quiet_seconds_below
                ):
                    monitor.request_finished(self, status, self.started)
            else:
                # A server error response may be followed by the exception behind it (a
                # mounted app's own ServerErrorMiddleware sends its 500, then re-raises):
                # decide when the app is done, so one error is one alert.
                self.ended = self.monitor.clock()
        return self._send(message)

    def failed(self, exc: BaseException) -> None:
        # Older Starlette streams responses in an anyio task group, which wraps the
        # error: alert about the error itself, as newer versions do.
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, ClientDisconnect):
            self.open = False  # the client went away: not a server error
        elif self.open:
            self.open = False
            status = self.status if self.status >= 500 else 500
            self.monitor.request_finished(self, status, self._timing_start(), exc)
        else:
            # The response was complete: a background task failed after it. Nobody saw
            # an error page, but the server logs one and the work was lost.
            self.monitor.exception(exc, self, 500)

    def returned(self) -> None:
        self.open = False
        # No response at all: the server answers 500 for the app.
        self.monitor.request_finished(self, self.status or 500, self._timing_start())

    def _timing_start(self) -> float:
        """A start time that makes the monitor's ``clock() - start`` end at the last byte."""
        if self.ended is None:
            return self.started
        return self.started + (self.monitor.clock() - self.ended)

    def __call__(self) -> RequestInfo:
        scope = self.scope
        client = scope.get("client")
        return RequestInfo(
            method=scope.get("method", "GET"),
            route=route_template(scope),
            path=scope.get("path"),
            headers=scope.get("headers"),
            client_ip=client[0] if client else None,
            # Starlette's AuthenticationMiddleware sets it in the shared scope.
            user=partial(scope.get, "user"),
        )


def route_template(scope: Scope) -> str | None:
    """The matched route's template (``/items/{item_id}``), mount templates included.

    Starlette 1.x and FastAPI store the matched route in ``scope["route"]`` (the scope
    the middleware holds is the same dict). Mounts extend ``root_path`` with the text
    they matched, values included, so to get their templates (``/tenants/{tenant}``)
    the routing is replayed from the top router; older Starlette versions, which do not
    set ``scope["route"]``, get their route the same way. ``None``: no route matched.
    Runs only when an alert is about to fire.
    """
    route = scope.get("route")
    root: str = scope.get("root_path", "")
    base: str = scope.get("app_root_path", root)
    prefix = ""
    if route is None or root != base:
        found, prefix, reached = _match_again(scope, base)
        if route is None:
            route = found
        if reached != root:
            # The replay did not retrace the mounts (a host route, a router Starlette
            # does not know): the text they matched is the next best thing.
            prefix = root[len(base) :] if root.startswith(base) else ""
    if route is None:
        return None
    if isinstance(route, Mount):
        # A mounted app that is not a router (static files, a WSGI app): its paths are
        # not routes, so the mount groups them. ``prefix`` already ends with the mount.
        return (prefix or route.path) + "/{path}"
    path = getattr(route, "path", None)
    # FastAPI keeps a nested router's prefix out of ``route.path``; the context it
    # resolved for this request carries the whole template.
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        if context is not None and getattr(context, "original_route", None) is route:
            path = getattr(context, "path_format", None) or path
    return prefix + path if isinstance(path, str) else None


def _match_again(scope: Scope, base: str) -> tuple[Any, str, str]:
    """Replay the routing from the top router: the route, the mount templates, the root.

    Like Starlette's router: the first full match wins, else the first partial one
    (a known path with another method). Descends into mounts and host routes whose app
    has routes.
    """
    routes = getattr(scope.get("router"), "routes", None) or ()
    probe: dict[str, Any] = {
        "type": scope["type"],
        "path": scope.get("path", ""),
        "root_path": base,
        "method": scope.get("method", "GET"),
        "headers": scope.get("headers", []),
    }
    template = ""
    for _ in range(_MAX_MOUNT_DEPTH):
        partial: Any = None
        for candidate in routes:
            match, child = candidate.matches(probe)
            if match is Match.FULL:
                if not isinstance(candidate, Mount | Host):
                    return candidate, template, probe["root_path"]
                # A host route adds nothing to the path but may hold mounts: descend, or
                # their matched text (the client's values) would end up in the route.
                if isinstance(candidate, Mount):
                    template += candidate.path
                probe.update(child)
                routes = candidate.routes
                if not routes:
                    return candidate, template, probe["root_path"]
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        else:
            return partial, template, probe["root_path"]
    return None, template, probe["root_path"]


class _Lifespan:
    """Starts the periodic health checks after startup, stops them before shutdown."""

    __slots__ = ("_receive", "_send", "failed", "middleware", "task")

    def __init__(self, middleware: PagerDutyMiddleware, receive: Receive, send: Send) -> None:
        self.middleware = middleware
        self.failed = False
        self._receive = receive
        self._send = send
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "lifespan.shutdown":
            # Before the app tears down what the checks use: no false alarms at exit.
            await self.stop_checks()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        error = self.middleware.error
        if error is not None:
            if kind == "lifespan.startup.complete":
                # The app's own startup ran; the server decides what a failed lifespan
                # means (uvicorn --lifespan on exits, the default mode serves on).
                self.failed = True
                raise error
            if kind == "lifespan.startup.failed" and self.failed:
                return  # Starlette reporting our error: the server gets the exception
        if kind == "lifespan.startup.complete":
            self.start_checks()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await self.stop_checks()
            await self.flush()
        await self._send(message)

    def start_checks(self) -> None:
        health = self.middleware.health
        if health is None or self.task is not None or self.middleware.health_interval is None:
            return
        self.task = asyncio.get_running_loop().create_task(
            health.run_periodically(self.middleware.health_interval),
            name="pd_integrations-health",
        )

    async def stop_checks(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            # wait(), not await: the task's cancellation is not ours to re-raise.
            await asyncio.wait({task})

    async def flush(self) -> None:
        alerts = self.middleware.alerts
        if alerts is None:
            return
        dispatcher = alerts.dispatcher
        if dispatcher is not None:
            # Deliver what is queued before the server exits; blocking, so in a thread.
            await asyncio.to_thread(alerts.flush, dispatcher.exit_flush_timeout)


# -- configuration ----------------------------------------------------------------------


def _refuse(
    given: Mapping[str, object], names: frozenset[str], instead: str, objects: Iterable[object]
) -> None:
    clash = sorted(name for name in given if name in names)
    if clash and any(obj is not None for obj in objects):
        raise TypeError(
            f"{', '.join(clash)} configure(s) what {instead} replaces: pass them to the "
            "object you build instead"
        )


_warned_multi_process = False


def _warn_multi_process(alerts: AlertManager) -> None:
    global _warned_multi_process
    if _warned_multi_process or not alerts.enabled:
        return
    warning = multi_process_warning(alerts.state.description != "memory")
    if warning is not None:
        _warned_multi_process = True
        _log.warning("%s", warning)


def _warn_disabled() -> None:
    global _warned_disabled
    if not _warned_disabled:
        _warned_disabled = True
        _log.warning(
            "PagerDuty alerting is disabled: no routing key (set PAGERDUTY_ROUTING_KEY); "
            "PagerDutyMiddleware passes requests through untouched"
        )
