"""The health endpoint for Starlette and FastAPI: :func:`health_route` and its endpoint.

:class:`~.middleware.PagerDutyMiddleware` serves the same endpoint at ``health_path``;
these are for apps that mount it themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pd_integrations.health import HealthMonitor

__all__ = ["health_endpoint", "health_route"]


def health_endpoint(
    health: HealthMonitor, *, max_age: float | None = None, errors: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint serving ``health``'s report as JSON: 200 when healthy, else 503.

    Each request runs the checks (which raise and resolve alerts as they change),
    unless the last report is younger than ``max_age`` seconds, e.g. when periodic
    checks run anyway. ``errors`` puts the (scrubbed) error messages in the body.
    """

    async def pagerduty_health(request: Request) -> Response:
        report = health.last_report
        age_limit = max_age
        if (
            report is None
            or age_limit is None
            or (datetime.now(UTC) - report.checked_at).total_seconds() > age_limit
        ):
            report = await health.arun()
        return JSONResponse(
            report.to_dict(errors=errors),
            status_code=report.http_status,
            headers={"Cache-Control": "no-store"},
        )

    return pagerduty_health


def health_route(
    health: HealthMonitor,
    path: str = "/health",
    *,
    name: str = "pagerduty_health",
    max_age: float | None = None,
    errors: bool = False,
    include_in_schema: bool = False,
) -> Route:
    """A ``GET``/``HEAD`` route for :func:`health_endpoint`.

    Starlette: ``Starlette(routes=[..., health_route(health)])``; FastAPI:
    ``app.router.routes.append(health_route(health))``.
    """
    return Route(
        path,
        health_endpoint(health, max_age=max_age, errors=errors),
        methods=["GET"],
        name=name,
        include_in_schema=include_in_schema,
    )
