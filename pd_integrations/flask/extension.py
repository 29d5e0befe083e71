"""Flask adapter: exception, slow-request and health-check alerting for Flask apps.

::

    from pd_integrations.flask.extension import PagerDuty

    pagerduty = PagerDuty()

    @pagerduty.health.check("cache")
    def cache_ok() -> bool:
        return cache.ping()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["PAGERDUTY_SLOW_REQUEST_MS"] = 2000
        pagerduty.init_app(app)
        return app

The extension object holds no app: everything belonging to one app (its settings, its
:class:`~pd_integrations.AlertManager`, :class:`~pd_integrations.monitor.RequestMonitor`
and :class:`~pd_integrations.health.HealthMonitor`) lives in
``app.extensions["pagerduty"]``, so one extension serves any number of apps.

Per app it wraps ``app.wsgi_app`` to time requests (a clock read when the request
enters, the status when the response starts; a streamed body is timed to its last
chunk), connects to Flask's ``got_request_exception`` signal for that app only
(unhandled exceptions), and adds a health endpoint and the ``flask pagerduty``
commands. Every decision is the :class:`~pd_integrations.monitor.RequestMonitor`'s.

A check registered on ``pagerduty.health`` is kept with its
:class:`~pd_integrations.health.CheckOptions`, checked when it is registered; each app's
HealthMonitor gets that same value and fills in its own defaults, exactly as for a check
registered on the monitor itself.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from flask import Blueprint, Flask, got_request_exception, request
from flask import globals as flask_globals

from pd_integrations import settings as values
from pd_integrations.alerts import AlertManager
from pd_integrations.context import breadcrumbs
from pd_integrations.delivery import lifecycle
from pd_integrations.errors import ConfigurationError
from pd_integrations.health import CheckOptions, CheckRegistry, HealthCheck, HealthMonitor
from pd_integrations.monitor import RequestInfo, RequestMonitor
from pd_integrations.settings import SETTINGS, PagerDutySettings, load
from pd_integrations.settings.build import build_alerts, build_health, build_monitor
from pd_integrations.workers import multi_process_warning

from .cli import pagerduty_cli
from .state import EXTENSION_KEY, PagerDutyState, _describe, _describe_current, get_state
from .webhooks import config_secrets, webhook_blueprint

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "EXTENSION_KEY",
    "HealthChecks",
    "PagerDuty",
    "PagerDutySettings",
    "PagerDutyState",
    "config_secrets",
    "get_state",
    "load_settings",
    "webhook_blueprint",
]

_log = logging.getLogger("pd_integrations.flask")


# -- settings ------------------------------------------------------------------------------

CONFIG_ORIGIN: Final = "app.config"


def load_settings(
    app_config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> PagerDutySettings:
    """Read and check one app's ``PAGERDUTY_*`` settings; :class:`ConfigurationError` if bad.

    Each setting of :data:`pd_integrations.settings.SETTINGS` comes from
    ``app_config["PAGERDUTY_<NAME>"]``, else from the environment (see
    :func:`pd_integrations.settings.load`). The error names the setting, shows the value,
    says where it came from and what is allowed.
    """
    given = {
        setting.name: app_config[setting.flask_key]
        for setting in SETTINGS
        if setting.flask_key in app_config
    }
    loaded = load(
        given,
        origin=CONFIG_ORIGIN,
        ref=lambda setting: setting.flask_key,
        environ=environ,
    )
    loaded.raise_for_errors()
    return loaded


# -- health checks shared by every app of one extension -------------------------------------


@dataclass(frozen=True, slots=True)
class _CheckSpec:
    name: str
    check: HealthCheck
    options: CheckOptions
    """As registered: each app's monitor fills in its own defaults."""


class HealthChecks(CheckRegistry):
    """Health checks registered on the extension, run by the HealthMonitor of every app.

    Checks can be registered before any app exists (at import time, with app
    factories); each app initialised with the extension gets all of them, including
    those registered later. Each app keeps its own edge-trigger state. ``register`` and
    ``@check`` are :class:`~pd_integrations.health.HealthMonitor`'s: the options are
    checked here, at once, and each app's monitor gets the same
    :class:`~pd_integrations.health.CheckOptions`.
    """

    def __init__(self) -> None:
        self._specs: list[_CheckSpec] = []
        self._monitors: weakref.WeakSet[HealthMonitor] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _add(self, name: str, check: HealthCheck, options: CheckOptions) -> None:
        with self._lock:
            known = {spec.name for spec in self._specs}
            if name in known:
                raise ValueError(f"a health check named {name!r} is already registered")
            missing = [dep for dep in options.depends_on if dep not in known]
            if missing:
                raise ValueError(
                    f"health check {name!r} depends on {', '.join(map(repr, missing))}, "
                    "which must be registered first"
                )
            spec = _CheckSpec(name, check, options)
            for monitor in list(self._monitors):
                monitor.register(spec.name, spec.check, options=spec.options)
            self._specs.append(spec)

    @property
    def names(self) -> list[str]:
        with self._lock:
            return [spec.name for spec in self._specs]

    def attach(self, monitor: HealthMonitor) -> None:
        """Register every check into ``monitor`` and keep it up to date from now on."""
        with self._lock:
            if monitor in self._monitors:
                return
            present = set(monitor.names)
            for spec in self._specs:
                if spec.name not in present:
                    monitor.register(spec.name, spec.check, options=spec.options)
            self._monitors.add(monitor)


# -- per-app state and the request hooks ----------------------------------------------------


class _RequestTimer:
    """Times each request of one app; its :meth:`wsgi` is installed as ``app.wsgi_app``.

    Wrapping ``app.wsgi_app`` is Flask's documented way to add WSGI middleware. It is
    used instead of ``before_request``/``after_request`` hooks because each hook costs
    about a microsecond in Flask's dispatch (plus one per ``request`` proxy access),
    several times the monitor's own cost; here the healthy path is a clock read, one
    ``partial`` standing in for ``start_response`` and the monitor's comparisons. The
    breadcrumbs cost it nothing: they are kept in the environ, found through Flask's
    own request context.

    The request ends when the app starts the response (Flask calls ``start_response``
    while the request context is still active, so the route is at hand): the body is
    then already in memory. A body without ``Content-Length`` is streamed: it is wrapped
    and the request ends when its last chunk was handed to the server. Either way,
    ``call_on_close`` callbacks (work done after the response) are not counted.
    """

    __slots__ = (
        "_clock",
        "_error_key",
        "_monitor",
        "_started_key",
        "_state",
        "_stream_key",
        "wsgi_app",
    )

    def __init__(self, wsgi_app: WSGIApplication, state: PagerDutyState) -> None:
        self.wsgi_app = wsgi_app
        self._state = state
        self._monitor = state.monitor
        self._clock = state.monitor.clock
        self._started_key = state._started_key
        self._error_key = state._error_key
        self._stream_key = state._stream_key

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Installed as ``app.wsgi_app`` (a bound method is quicker to call than ``self``)."""
        started = environ[self._started_key] = self._clock()
        # A plain function, not self._start: saves building a bound method per request.
        start: StartResponse = partial(_RequestTimer._start, self, environ, start_response, started)
        body = self.wsgi_app(environ, start)
        stream: _TimedBody | None = environ.get(self._stream_key)
        if stream is None:
            return body
        stream.body = body
        return stream

    def _start(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        started: float,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        try:
            code = _STATUS_CODES.get(status)
            if code is None:
                code = int(status[:3])
                if len(_STATUS_CODES) < _MAX_STATUS_CODES:
                    _STATUS_CODES[status] = code
            error = None
            if code >= 500:
                if _HEALTH_ENVIRON_KEY in environ:
                    # The health endpoint's 503 is the checks' to report, not a failed request.
                    return start_response(status, headers, exc_info)
                # Set by _on_exception for an unhandled error: it is not reported twice.
                error = environ.get(self._error_key)
            for name, _ in headers:
                if name == "Content-Length":
                    self._monitor.request_finished(_describe_current, code, started, error)
                    break
            else:
                environ[self._stream_key] = _TimedBody(
                    self._monitor, _describe(request), code, started, error
                )
        except Exception:  # alerting must never break a response
            _log.exception("PagerDuty: could not time a request")
        return start_response(status, headers, exc_info)


class _RequestTimerStartingChecks(_RequestTimer):
    """The timer of an app with ``PAGERDUTY_HEALTH_INTERVAL``: its first request starts
    the periodic checks (see :meth:`PagerDutyState.start_health_checks`). A separate
    class, so that apps without periodic checks do not pay for the test.
    """

    __slots__ = ()

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        state = self._state
        if state._start_pending:
            try:
                state.start_health_checks()
            except Exception:
                _log.exception("PagerDuty: could not start the periodic health checks")
        return super().wsgi(environ, start_response)


def _keep_breadcrumbs_in_flask_contexts() -> None:
    # Flask sets a context variable per request already: the breadcrumbs live in the
    # request's environ (shared by copies of its context), and the request path does
    # nothing for them.
    var = getattr(flask_globals, "_cv_request", None)
    if var is None:
        _log.warning(
            "PagerDuty: this Flask version has no request context variable; "
            "alerts from this app carry no breadcrumbs"
        )
        return
    breadcrumbs.follow(var, _environ_of)


def _environ_of(context: Any) -> dict[str, Any]:
    environ: dict[str, Any] = context.request.environ
    return environ


# Status lines seen, to their codes: parsing "200 OK" costs more than a dict lookup.
_STATUS_CODES: dict[str, int] = {}
_MAX_STATUS_CODES = 256


class _TimedBody:
    """A streamed body that tells the monitor when its last chunk was handed over.

    Iteration ends after the server wrote the last chunk and asked for the next: that
    is when the request ends. ``close`` (the client went away mid-stream) ends it too,
    before the app's own close callbacks run. An exception raised while streaming is
    an unhandled error (the client got a truncated response), reported as a 500.
    """

    __slots__ = ("_error", "_info", "_monitor", "_open", "_started", "_status", "body")

    def __init__(
        self,
        monitor: RequestMonitor,
        info: RequestInfo,
        status: int,
        started: float,
        error: BaseException | None,
    ) -> None:
        self.body: Iterable[bytes] = ()
        self._monitor = monitor
        self._info = info
        self._status = status
        self._started = started
        self._error = error
        self._open = True

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except Exception as exc:
            self._end(exc)
            raise
        self._end(None)

    def close(self) -> None:
        self._end(None)
        close = getattr(self.body, "close", None)
        if close is not None:
            close()

    def _end(self, exc: BaseException | None) -> None:
        if not self._open:
            return
        self._open = False
        status = max(self._status, 500) if exc is not None else self._status
        try:
            self._monitor.request_finished(self._info, status, self._started, exc or self._error)
        except Exception:
            _log.exception("PagerDuty: could not time a request")


# -- the health endpoint ----------------------------------------------------------------------


_HEALTH_ENVIRON_KEY = "pd_integrations.flask.health"


def _health_view() -> tuple[dict[str, Any], int, dict[str, str]]:
    request.environ[_HEALTH_ENVIRON_KEY] = True
    state = get_state()
    report = state.health_report()
    body = report.to_dict(errors=state.settings.health_show_errors)
    return body, report.http_status, {"Cache-Control": "no-store"}


def _health_blueprint(path: str) -> Blueprint:
    blueprint = Blueprint("pagerduty", __name__)
    blueprint.add_url_rule(path, "health", _health_view, methods=["GET"])
    return blueprint


# -- the extension --------------------------------------------------------------------------


class PagerDuty:
    """PagerDuty alerting for Flask apps: ``PagerDuty(app)`` or ``init_app(app)`` later.

    Settings come from each app's ``app.config["PAGERDUTY_*"]`` (with environment
    fallbacks, see :func:`load_settings`). ``alerts``, ``monitor`` and ``health``
    replace what the extension would build per app; when given, they are shared by
    every app initialised with this extension, and the settings they would have been
    built from are ignored. Checks registered through :attr:`health` reach every app.
    ``refresh_after`` overrides ``PAGERDUTY_REFRESH_AFTER`` for the AlertManager the
    extension builds (so it cannot go with ``alerts`` or ``monitor``).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        alerts: AlertManager | None = None,
        monitor: RequestMonitor | None = None,
        health: HealthMonitor | None = None,
        refresh_after: float | str | None = None,
    ) -> None:
        if monitor is not None:
            if alerts is not None and alerts is not monitor.alerts:
                raise ValueError("alerts= is not the AlertManager of the monitor given")
            alerts = monitor.alerts
        self._refresh_after: float | None = None
        if refresh_after is not None:
            if alerts is not None:
                raise TypeError(
                    "refresh_after= configures the AlertManager the extension builds; "
                    "pass it to AlertManager(refresh_after=) instead"
                )
            try:
                self._refresh_after = values.check_refresh_after(refresh_after)
            except values.InvalidSetting as error:
                raise ConfigurationError(f"refresh_after {error}") from None
        self._alerts = alerts
        self._monitor = monitor
        self._health = health
        self.health = HealthChecks()
        if health is not None:
            self.health.attach(health)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install the hooks, health endpoint and commands on ``app``.

        Raises :class:`ConfigurationError` naming the setting when one is invalid, and
        ``RuntimeError`` when ``app`` already has a PagerDuty extension.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("a PagerDuty extension is already registered on this app")
        settings = load_settings(app.config)
        if self._refresh_after is not None:
            settings = replace(settings, refresh_after=self._refresh_after)
        alerts, owns_alerts = self._alerts, False
        if alerts is None:
            alerts = build_alerts(settings)
            owns_alerts = True
            # init_app usually runs in the main thread (app factory, module import): the
            # one place where a SIGTERM handler can be installed. A no-op under a server
            # that handles SIGTERM itself.
            lifecycle.install()
        monitor = self._monitor or build_monitor(settings, alerts)
        health = self._health or build_health(settings, alerts)
        self.health.attach(health)
        state = PagerDutyState(
            settings,
            alerts,
            monitor,
            health,
            owns_alerts=owns_alerts,
            owns_monitor=self._monitor is None,
        )
        app.extensions[EXTENSION_KEY] = state

        if monitor.breadcrumbs:
            _keep_breadcrumbs_in_flask_contexts()
        timer = _RequestTimer if settings.health_interval is None else _RequestTimerStartingChecks
        app.wsgi_app = timer(app.wsgi_app, state).wsgi  # type: ignore[method-assign]
        # Connected for this app only. Weakly, through the bound method: the state lives
        # as long as app.extensions holds it, and when the app is collected blinker drops
        # the receiver. A strong receiver would stay in the signal forever (blinker only
        # unlinks it from the dead sender), keeping every old app's AlertManager alive.
        got_request_exception.connect(state._on_exception, app, weak=True)

        if settings.health_path is not None:
            _add_health_endpoint(app, settings.health_path)
        app.cli.add_command(pagerduty_cli)
        if alerts.enabled and owns_alerts:
            warning = multi_process_warning(settings.state_url is not None)
            if warning is not None:
                _log.warning("%s", warning)
        if not alerts.enabled:
            _log.warning(
                "PagerDuty alerting is disabled for app %r: no routing key "
                "(set PAGERDUTY_ROUTING_KEY); the app works, nothing is sent",
                app.name,
            )

    def state(self, app: Flask | None = None) -> PagerDutyState:
        """This extension's state for ``app`` (default: the current app)."""
        return get_state(app)

    @property
    def alerts(self) -> AlertManager:
        """The current app's AlertManager (needs an app context)."""
        return get_state().alerts

    @property
    def monitor(self) -> RequestMonitor:
        """The current app's RequestMonitor (needs an app context)."""
        return get_state().monitor

    def __repr__(self) -> str:
        return f"<PagerDuty checks={self.health.names}>"


def _add_health_endpoint(app: Flask, path: str) -> None:
    taken = [rule.endpoint for rule in app.url_map.iter_rules() if rule.rule == path]
    if taken:
        # The app's own endpoint wins: shadowing it would change what its probes see.
        _log.warning(
            "PagerDuty: %s is already served by %s; not adding the health endpoint there "
            "(set PAGERDUTY_HEALTH_PATH to another path, or None)",
            path,
            taken[0],
        )
        return
    app.register_blueprint(_health_blueprint(path))
