"""What the extension keeps for one app (``app.extensions["pagerduty"]``) and how to find it.

Its own module so that the ``flask pagerduty`` commands (:mod:`.cli`) and the extension
(:mod:`.extension`) both build on it without importing each other.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from flask import Flask, current_app, request
from flask.wrappers import Request
from werkzeug.exceptions import HTTPException

from pd_integrations.alerts import AlertManager
from pd_integrations.context.user import flask_login_user
from pd_integrations.health import HealthMonitor, HealthReport
from pd_integrations.monitor import RequestInfo, RequestMonitor
from pd_integrations.settings import PagerDutySettings

__all__ = ["EXTENSION_KEY", "PagerDutyState", "get_state"]

_log = logging.getLogger("pd_integrations.flask")

EXTENSION_KEY: Final = "pagerduty"


class PagerDutyState:
    """Everything the extension keeps for one app, in ``app.extensions["pagerduty"]``."""

    def __init__(
        self,
        settings: PagerDutySettings,
        alerts: AlertManager,
        monitor: RequestMonitor,
        health: HealthMonitor,
        *,
        owns_alerts: bool,
        owns_monitor: bool,
    ) -> None:
        self.settings = settings
        self.alerts = alerts
        self.monitor = monitor
        self.health = health
        self.owns_alerts = owns_alerts
        self.owns_monitor = owns_monitor
        self._clock = monitor.clock
        self._start_lock = threading.Lock()
        # With periodic checks, read by each request until the first one has started them.
        self._start_pending = settings.health_interval is not None
        # Private to this state: an environ shared by nested apps cannot mix them up.
        self._started_key = f"pd_integrations.flask.{id(self):x}.started"
        self._error_key = f"pd_integrations.flask.{id(self):x}.error"
        self._stream_key = f"pd_integrations.flask.{id(self):x}.stream"

    def _on_exception(self, sender: Flask, exception: BaseException, **extra: Any) -> None:
        """``got_request_exception``: an exception Flask turns into a 500 (or re-raises)."""
        if isinstance(exception, HTTPException) and (exception.code or 500) < 500:
            # Trapped (TRAP_HTTP_EXCEPTIONS, debug mode): Flask answers 500, but a 404 is
            # the client's problem, never an incident.
            return
        try:
            environ = request.environ
            # _RequestTimer passes it on with the 500, so that one error is one alert.
            environ[self._error_key] = exception
            started = environ.get(self._started_key)
            duration = None if started is None else self._clock() - started
            # Reported now, not when the response starts: with PROPAGATE_EXCEPTIONS
            # (debug, testing) Flask re-raises and no response is ever made.
            self.monitor.exception(exception, _describe_current, 500, duration=duration)
        except Exception:
            _log.exception("PagerDuty: could not report %s", type(exception).__name__)

    # -- health -------------------------------------------------------------------------

    def health_report(self) -> HealthReport:
        """The report the health endpoint serves.

        With periodic checks running, the latest periodic report (so probes do not
        double the rate at which checks run); otherwise the checks run now.
        """
        if self.health.running:
            report = self.health.last_report
            if report is not None:
                return report
        return self.health.run()

    def start_health_checks(self) -> bool:
        """Start the periodic checks if ``PAGERDUTY_HEALTH_INTERVAL`` is set; idempotent.

        Called by the first request, so that only a process serving requests runs them:
        not ``flask shell`` or ``flask pagerduty check``, and not a pre-fork master
        (threads do not survive ``fork``). Call it yourself in a process that serves no
        HTTP. Returns whether the checks are running.
        """
        interval = self.settings.health_interval
        with self._start_lock:
            self._start_pending = False
            if interval is not None and not self.health.running:
                self.health.start(interval)
        return self.health.running

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop periodic checks and, if the extension created it, close the AlertManager."""
        self.health.stop(timeout)
        return self.alerts.close(timeout) if self.owns_alerts else True

    def __repr__(self) -> str:
        return f"<PagerDutyState alerts={self.alerts!r}>"


def _describe(req: Request) -> RequestInfo:
    rule = req.url_rule
    return RequestInfo(
        method=req.method,
        route=None if rule is None else rule.rule,
        path=req.path,
        headers=req.headers,
        client_ip=req.remote_addr,
        user=flask_login_user,
    )


def _describe_current() -> RequestInfo:
    """The current request, for the monitor: called only when an alert is about to fire."""
    return _describe(request)


def get_state(app: Flask | None = None) -> PagerDutyState:
    """The extension's state for ``app`` (default: the current app)."""
    target = current_app if app is None else app
    state = target.extensions.get(EXTENSION_KEY)
    if not isinstance(state, PagerDutyState):
        raise RuntimeError(
            "PagerDuty is not initialised on this app: call PagerDuty(app) or "
            "pagerduty.init_app(app) first"
        )
    return state
