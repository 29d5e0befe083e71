"""A logging handler that turns ERROR and CRITICAL records into PagerDuty alerts.

:class:`BreadcrumbHandler` keeps the records of the current request for the alert it
may raise (see :mod:`pd_integrations.context.breadcrumbs`).

Usable from ``logging.config.dictConfig`` and Django's ``LOGGING``::

    "handlers": {
        "pagerduty": {"class": "pd_integrations.logging.PagerDutyHandler", "level": "ERROR"},
    }

Records are grouped by logger and message *template* (``"payment %s failed"``, not the
formatted text), so one log line repeated with different arguments is one alert. A
record with ``exc_info`` is grouped by the exception's fingerprint instead, the same key
the framework adapters use, and an exception an adapter already reported is skipped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Final

# Part of this module's API: the handler that keeps breadcrumbs, added with dictConfig.
from pd_integrations.context.breadcrumbs import BreadcrumbHandler as BreadcrumbHandler

from .alerts import AlertManager
from .events import MAX_SUMMARY, Severity, truncate
from .fingerprint import Fingerprinter, message, type_name
from .monitor import EXCEPTION_ALERT, mark_reported, reported_key
from .settings import load
from .settings.build import build_alerts

LOG_ALERT = "log"
DEFAULT_SEVERITIES: Mapping[int | str, Severity] = {
    logging.CRITICAL: Severity.CRITICAL,
    logging.ERROR: Severity.ERROR,
    logging.WARNING: Severity.WARNING,
    logging.INFO: Severity.INFO,
}
# The library's own records (delivery failures, drops) must never page through itself:
# an outage of PagerDuty would otherwise feed a loop of alerts about alerts.
_OWN_LOGGERS = "pd_integrations"

ARGUMENT_ORIGIN: Final = "a PagerDutyHandler argument"


def _level(value: int | str) -> int:
    """A level number from a number or a name (``dictConfig`` files use names)."""
    if isinstance(value, int):
        return value
    names = logging.getLevelNamesMapping()
    if value.upper() in names:
        return names[value.upper()]
    raise ValueError(f"unknown log level {value!r} in the severities mapping")


class PagerDutyHandler(logging.Handler):
    """Sends log records at ``level`` (default ERROR) and above to PagerDuty.

    Without ``alerts``, the handler builds its AlertManager from the shared settings
    (:mod:`pd_integrations.settings`): ``routing_key`` and ``source`` (handy in
    ``dictConfig``), else ``PAGERDUTY_ROUTING_KEY``, ``APP_NAME`` and every other
    ``PAGERDUTY_<NAME>`` variable, validated as in every framework (a bad value raises
    :class:`~pd_integrations.ConfigurationError` naming the variable). ``severities``
    maps log levels to PagerDuty severities (the nearest level at or below a record's level wins).
    ``auto_resolve`` lets alerts for log records resolve once they stop recurring.
    """

    def __init__(
        self,
        level: int | str = logging.ERROR,
        *,
        alerts: AlertManager | None = None,
        routing_key: str | None = None,
        source: str | None = None,
        component: str | None = None,
        severities: Mapping[int | str, Severity | str] | None = None,
        auto_resolve: bool = True,
        stack_frames: int = 10,
    ) -> None:
        # Built before the handler registers with logging: a bad setting raises here and
        # leaves no half-made handler for logging's exit flush to trip over.
        if alerts is None:
            settings = load(
                {"routing_key": routing_key, "source": source},
                origin=ARGUMENT_ORIGIN,
                ref=lambda setting: setting.name,
            )
            settings.raise_for_errors()
            alerts = build_alerts(settings)
        super().__init__(level)
        self.alerts = alerts
        self.component = component
        self.auto_resolve = auto_resolve
        self.stack_frames = stack_frames
        chosen = DEFAULT_SEVERITIES if severities is None else severities
        self._severities = sorted(
            ((_level(lvl), Severity.parse(sev)) for lvl, sev in chosen.items()), reverse=True
        )
        self._fingerprinter = Fingerprinter()

    def severity_for(self, levelno: int) -> Severity:
        for threshold, severity in self._severities:
            if levelno >= threshold:
                return severity
        return self._severities[-1][1] if self._severities else Severity.ERROR

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter, then :meth:`emit` *without* the handler's lock.

        ``logging.Handler.handle`` holds the lock around ``emit``, which reads the
        record's message and its exception's ``str()``: user code that may be slow. Under
        the lock, one slow ``__str__`` would stall every other thread logging an error.
        Nothing here needs it: the alert manager and the fingerprinter are thread-safe.
        """
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):  # a filter may hand back a new record
            record = passed
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == _OWN_LOGGERS or record.name.startswith(_OWN_LOGGERS + "."):
            return
        try:
            self._emit(record)
        except Exception:
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and reported_key(exc) is not None:
            return  # an adapter already raised this alert
        text = truncate(record.getMessage(), MAX_SUMMARY)
        details: dict[str, Any] = {
            "logger": record.name,
            "level": record.levelname,
            "message": text,
            "location": f"{record.pathname}:{record.lineno} in {record.funcName}",
        }
        if exc is not None:
            fp = self._fingerprinter.fingerprint(exc)
            alert_type, identifier = EXCEPTION_ALERT, fp.digest
            details["exception_type"] = type_name(exc)
            details["exception_message"] = message(exc)
            details["fingerprint"] = fp.readable
            details["stack"] = self._fingerprinter.stack(exc, self.stack_frames)
        else:
            template = f"{record.name}:{record.msg}"
            digest = hashlib.sha256(template.encode("utf-8", "replace")).hexdigest()[:16]
            alert_type, identifier = LOG_ALERT, digest
        key = self.alerts.alert(
            f"{record.levelname} {record.name}: {text}",
            self.severity_for(record.levelno),
            alert_type=alert_type,
            component=self.component,
            identifier=identifier,
            custom_details=details,
            auto_resolve=self.auto_resolve,
        )
        if exc is not None:
            mark_reported(exc, key)

    def flush(self) -> None:
        self.alerts.flush(timeout=2.0)

    def close(self) -> None:
        self.alerts.flush(timeout=2.0)
        super().close()
