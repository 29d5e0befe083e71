"""Settings -> the runtime objects, the same way in every framework.

:func:`build_alerts`, :func:`build_monitor` and :func:`build_health` turn one
:class:`~.model.PagerDutySettings` into the :class:`~pd_integrations.AlertManager`,
:class:`~pd_integrations.monitor.RequestMonitor` and
:class:`~pd_integrations.health.HealthMonitor` an adapter uses. Every value is passed
explicitly, so the objects never read the environment again: what was checked (and
reported) is what runs.
"""

from __future__ import annotations

from typing import Any

from pd_integrations.alerts import AlertManager
from pd_integrations.context.release import announce_release
from pd_integrations.health import HealthMonitor
from pd_integrations.monitor import RequestMonitor
from pd_integrations.routing import RoutingAlertManager

from .model import PagerDutySettings
from .values import MEMORY_STATE_URL

__all__ = ["apply_release", "build_alerts", "build_health", "build_monitor"]


def build_alerts(settings: PagerDutySettings) -> AlertManager:
    """An AlertManager for ``settings`` (disabled when there is no routing key).

    With ``routing_rules``, a :class:`~pd_integrations.routing.RoutingAlertManager`:
    one manager per routing key the rules name, each with its own budget and state.
    With ``announce_release``, the release's first start is announced here.
    """
    alerts: AlertManager
    if settings.routing_rules:
        alerts = RoutingAlertManager(
            settings.routing_key, rules=settings.routing_rules, **_alert_options(settings)
        )
    else:
        alerts = AlertManager(settings.routing_key, **_alert_options(settings))
    apply_release(settings, alerts)
    return alerts


def _alert_options(settings: PagerDutySettings) -> dict[str, Any]:
    return dict(
        source=settings.source,
        dedup_key_prefix=settings.environment,
        auto_resolve_after=settings.auto_resolve_after,
        refresh_after=settings.refresh_after,
        base_url=settings.events_base_url,
        client_url=settings.client_url,
        timeout=settings.timeout,
        state_url=settings.state_url or MEMORY_STATE_URL,
        spool=settings.spool,
        shutdown_timeout=settings.flush_timeout,
        delivery_alert_routing_key=settings.delivery_alert_routing_key,
        delivery_stall_after=settings.delivery_stall_after,
        before_send=settings.before_send,
    )


def apply_release(settings: PagerDutySettings, alerts: AlertManager) -> None:
    """Stamp the release on ``alerts``' triggers, and announce it if asked to."""
    if settings.release is None:
        return
    alerts.release = settings.release
    if settings.announce_release:
        announce_release(alerts, settings.release)


def build_monitor(settings: PagerDutySettings, alerts: AlertManager) -> RequestMonitor:
    """The RequestMonitor; the health endpoint's path is never reported as slow."""
    exclude = settings.exclude_paths
    if settings.health_path is not None and settings.health_path not in exclude:
        exclude = (*exclude, settings.health_path)
    return RequestMonitor(
        alerts,
        slow_request_ms=settings.slow_request_ms,
        slow_routes=settings.slow_routes,
        exclude_paths=exclude,
        severity_for_status=settings.severity_for_status or None,
        alert_on_handled_5xx=settings.alert_on_handled_5xx,
        dedup_by=settings.dedup_by,
        runbooks=settings.runbooks,
        environment=settings.environment,
        component=settings.component,
        in_app_include=settings.in_app_include,
        in_app_exclude=settings.in_app_exclude,
        include_headers=settings.include_headers,
        send_client_ip=settings.send_client_ip,
        ignore_exceptions=settings.ignore_exceptions,
        auto_resolve=settings.auto_resolve,
        trace_url_template=settings.trace_url_template,
        breadcrumbs=settings.breadcrumbs,
        breadcrumb_bytes=settings.breadcrumb_bytes,
        send_user=settings.send_user,
    )


def build_health(settings: PagerDutySettings, alerts: AlertManager) -> HealthMonitor:
    """A HealthMonitor with the ``health_checks`` setting's checks registered."""
    health = HealthMonitor(
        alerts,
        failure_threshold=settings.health_failure_threshold,
        recovery_threshold=settings.health_recovery_threshold,
        default_timeout=settings.health_timeout,
        component=settings.component,
        environment=settings.environment,
    )
    for spec in settings.health_checks:
        health.register(spec.name, spec.check, options=spec.options)
    return health
