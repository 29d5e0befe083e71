"""PagerDuty alerting for Django: an installable app.

::

    INSTALLED_APPS += ["pd_integrations.django"]
    MIDDLEWARE = ["pd_integrations.django.middleware.PagerDutyMiddleware", *MIDDLEWARE]
    PAGERDUTY = {"ROUTING_KEY": env("PAGERDUTY_ROUTING_KEY"), "SLOW_REQUEST_MS": 5000}

The functions here give application code the same objects the middleware uses, for
alerts of its own (``alert_manager().warning("Queue backing up")``).
"""

from __future__ import annotations

from pd_integrations.alerts import AlertManager
from pd_integrations.health import HealthMonitor
from pd_integrations.monitor import RequestMonitor

from .runtime import current, reset


def alert_manager() -> AlertManager | None:
    """The process's AlertManager (disabled without a key; ``None`` if the key is malformed)."""
    return current().alerts


def request_monitor() -> RequestMonitor | None:
    """The RequestMonitor the middleware reports to; ``None`` while alerting is off."""
    return current().monitor


def health_monitor() -> HealthMonitor | None:
    """The HealthMonitor running ``PAGERDUTY['HEALTH_CHECKS']``."""
    return current().health


__all__ = ["alert_manager", "health_monitor", "request_monitor", "reset"]
