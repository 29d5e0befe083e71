"""PagerDuty alerting for Starlette and FastAPI apps.

- :mod:`.middleware`: :class:`PagerDutyMiddleware`, one plain ASGI middleware;
- :mod:`.health`: :func:`health_route`, the health endpoint as a route of its own;
- :mod:`.webhooks`: PagerDuty v3 webhooks as an endpoint, route or app.
"""

from __future__ import annotations

from .health import health_endpoint, health_route
from .middleware import SLOW_REQUEST_MS_VAR, PagerDutyMiddleware, route_template
from .webhooks import WebhookApp, webhook_app, webhook_endpoint, webhook_route

__all__ = [
    "SLOW_REQUEST_MS_VAR",
    "PagerDutyMiddleware",
    "WebhookApp",
    "health_endpoint",
    "health_route",
    "route_template",
    "webhook_app",
    "webhook_endpoint",
    "webhook_route",
]
