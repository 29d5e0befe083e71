"""Django signal receivers: exceptions from ``got_request_exception``, settings changes.

Django turns an exception raised by a view *or by any middleware* into a 500 response
inside ``get_response``, so a middleware never sees it raised. Django sends
``got_request_exception`` just before, while the exception is being handled: that is
where it is reported. The exception is also left on the request, so the middleware's
own report for the same request recognises it instead of adding a second alert.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.signals import got_request_exception, setting_changed
from django.http import HttpRequest

from pd_integrations.monitor import RequestInfo

from . import runtime
from .conf import SETTING
from .describe import describe, stash_exception

_log = logging.getLogger("pd_integrations.django")

# Django answers an exception that reaches this signal with handler500.
UNCAUGHT_STATUS = 500


def report_exception(sender: object, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``got_request_exception`` receiver; never raises (Django's ``send`` would not catch it)."""
    try:
        exc = sys.exc_info()[1]
        if exc is None:
            return
        monitor = runtime.current().monitor
        if monitor is None:
            return
        if isinstance(request, HttpRequest):
            stash_exception(request, exc)
            monitor.exception(exc, lambda: describe(request), UNCAUGHT_STATUS)
        else:
            monitor.exception(exc, RequestInfo(method="?"), UNCAUGHT_STATUS)
    except Exception:
        _log.exception("could not report an exception to PagerDuty")


def settings_changed(sender: object, setting: str = "", **kwargs: Any) -> None:
    """Rebuild everything when ``settings.PAGERDUTY`` changes (``override_settings``)."""
    if setting == SETTING:
        runtime.reset()


def connect() -> None:
    """Connect the receivers; safe to call more than once."""
    got_request_exception.connect(
        report_exception, dispatch_uid="pd_integrations.django.report_exception"
    )
    setting_changed.connect(settings_changed, dispatch_uid="pd_integrations.django.settings")
