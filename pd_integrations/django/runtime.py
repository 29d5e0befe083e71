"""The process's AlertManager, RequestMonitor and HealthMonitor, built once from the settings.

They are created lazily, by the first request (or the first exception, or the health
view), not at import or in ``AppConfig.ready``: management commands such as
``migrate`` then start no threads, and a test that sets the routing key (the
``pagerduty_events`` fixture) before its first request gets an enabled manager. The
core flushes what is queued at interpreter exit.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pd_integrations.alerts import AlertManager
from pd_integrations.errors import ConfigurationError
from pd_integrations.health import HealthMonitor
from pd_integrations.monitor import RequestMonitor
from pd_integrations.settings import build as settings_build
from pd_integrations.workers import multi_process_warning

from . import conf
from .conf import PagerDutySettings

_log = logging.getLogger("pd_integrations.django")

SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the middleware, the signal receiver and the health view share."""

    settings: PagerDutySettings
    alerts: AlertManager | None
    """``None`` only when the routing key is malformed: no manager can be built then."""
    monitor: RequestMonitor | None
    """``None`` while alerting is off (no usable key): the middleware only passes requests on."""
    health: HealthMonitor | None
    """Runs ``HEALTH_CHECKS``; ``None`` only together with :attr:`alerts`."""
    error: str | None = None
    """Why alerting cannot work (a malformed key), for the health view and the logs."""


def build_alerts(settings: PagerDutySettings) -> AlertManager | None:
    """An AlertManager for ``settings``: disabled without a key, ``None`` if the key is bad."""
    if settings.routing_key_error is not None:
        return None
    try:
        return settings_build.build_alerts(settings)
    except ConfigurationError:
        # The environment changed since the settings were read; treat it like a bad key.
        _log.exception("cannot create the PagerDuty AlertManager")
        return None


build_monitor = settings_build.build_monitor
build_health = settings_build.build_health


def build(settings: PagerDutySettings, *, background: bool = True) -> Runtime:
    """Everything for ``settings``; ``background`` starts periodic health checks."""
    alerts = build_alerts(settings)
    if alerts is None:
        error = settings.routing_key_error or "the PagerDuty AlertManager could not be created"
        _log.error("PagerDuty alerting is disabled: %s", error)
        return Runtime(settings, None, None, None, error)
    if not settings.enabled:
        _log.warning(
            "PagerDuty alerting is disabled: no routing key "
            "(set PAGERDUTY['ROUTING_KEY'] or PAGERDUTY_ROUTING_KEY)"
        )
    monitor = build_monitor(settings, alerts) if alerts.enabled else None
    health = build_health(settings, alerts)
    if alerts.enabled:
        warning = multi_process_warning(settings.state_url is not None)
        if warning is not None:
            _log.warning("%s", warning)
    if background and settings.health_interval is not None and settings.health_checks:
        health.start(settings.health_interval)
    return Runtime(settings, alerts, monitor, health)


def close(runtime: Runtime, timeout: float = SHUTDOWN_TIMEOUT) -> None:
    """Stop periodic checks and deliver what is queued, waiting at most about ``timeout``."""
    if runtime.health is not None:
        runtime.health.stop(timeout)
    if runtime.alerts is not None:
        runtime.alerts.close(timeout)


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    """The process's runtime, built from the settings on first use."""
    runtime = _current
    if runtime is None:
        runtime = _build_current()
    return runtime


def _build_current() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            settings, problems = conf.get_with_problems()
            for problem in problems:
                if problem.level == "error":
                    # Reported by `manage.py check` too; here because servers skip checks.
                    _log.error("%s (%s); the default is used", problem.msg, problem.id)
            _current = build(settings)
        return _current


def reset() -> None:
    """Forget the settings and close the runtime; the next request builds a new one.

    Called when ``settings.PAGERDUTY`` changes (``override_settings``); call it yourself
    after changing ``PAGERDUTY_*`` environment variables in a running process (tests).
    """
    global _current
    with _lock:
        old, _current = _current, None
        conf.reset()
    if old is not None:
        close(old)
