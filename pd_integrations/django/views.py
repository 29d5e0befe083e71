"""The health view: runs ``PAGERDUTY['HEALTH_CHECKS']`` and answers 200 or 503.

It is an async view so that, under ASGI, async checks run on the application's event
loop and sync checks in their own threads, without holding Django's single thread for
sync code; under WSGI Django runs it in an event loop of its own.

With ``HEALTH_INTERVAL`` set, the checks run in the background and the view answers
with the latest report instead of running them per probe. Failing checks page through
the HealthMonitor's edge triggers, whoever ran them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

from .runtime import current

ALLOWED_METHODS = ("GET", "HEAD")
MISCONFIGURED = "PagerDuty alerting is misconfigured: run `manage.py check`"


async def health(request: HttpRequest) -> HttpResponse:
    if request.method not in ALLOWED_METHODS:
        return HttpResponseNotAllowed(ALLOWED_METHODS)
    runtime = current()
    monitor = runtime.health
    if monitor is None:
        # A malformed routing key: loud, and `manage.py check` says why (E001).
        response: HttpResponse = JsonResponse(
            {"status": "unhealthy", "error": MISCONFIGURED, "checks": {}}, status=503
        )
    else:
        report = monitor.last_report if runtime.settings.health_interval is not None else None
        if report is None:
            report = await monitor.arun()
        response = JsonResponse(
            report.to_dict(errors=runtime.settings.health_show_errors), status=report.http_status
        )
    response["Cache-Control"] = "no-store"
    return response
