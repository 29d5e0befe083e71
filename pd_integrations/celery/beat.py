"""Celery beat: a heartbeat monitor for every ``beat_schedule`` entry.

:func:`monitor_beat` reads ``celery_app.conf.beat_schedule`` and declares one
:mod:`pd_integrations.heartbeats` monitor per entry, named ``beat:<entry name>``, with
the entry's schedule: a ``crontab`` (read in the app's ``timezone``) or an interval (a
``schedule``, a ``timedelta`` or a number of seconds). The entry's task checks in from
Celery's public signals: ``task_prerun`` (in progress), ``task_success`` (ok) and
``task_failure`` (error; a retry is still the same run). A run that beat never sent, or
that no worker ran, is a missed run; one that outlives ``max_runtime`` pages too.

The beat scheduler is never replaced or patched: entries are read from the
configuration, so this covers the default ``PersistentScheduler`` and any scheduler fed
by ``beat_schedule``; entries kept only in a database (django-celery-beat's
``DatabaseScheduler``, RedBeat) and ``solar`` schedules are not monitored (logged).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from celery import signals
from celery.schedules import crontab
from celery.schedules import schedule as interval_schedule

from pd_integrations.alerts import AlertManager
from pd_integrations.fingerprint import message, type_name
from pd_integrations.heartbeats import Heartbeats
from pd_integrations.heartbeats.core import DEFAULT_GRACE

__all__ = ["SLUG_PREFIX", "beat_monitors", "monitor_beat"]

_log = logging.getLogger("pd_integrations.celery")

SLUG_PREFIX: Final = "beat:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")
_monitors: weakref.WeakKeyDictionary[Any, Heartbeats] = weakref.WeakKeyDictionary()


def beat_monitors(celery_app: Any) -> Heartbeats | None:
    """The :class:`Heartbeats` :func:`monitor_beat` made for ``celery_app``, if any."""
    return _monitors.get(celery_app)


def _slug(name: str) -> str:
    return (SLUG_PREFIX + _UNSAFE.sub("-", name))[:128]


def _cron(entry: crontab) -> str:
    fields = (
        entry._orig_minute,
        entry._orig_hour,
        entry._orig_day_of_month,
        entry._orig_month_of_year,
        entry._orig_day_of_week,
    )
    return " ".join(str(field).replace(" ", "") for field in fields)


def _schedule_options(value: Any, timezone: str) -> dict[str, Any] | None:
    if isinstance(value, crontab):
        return {"schedule": _cron(value), "timezone": timezone}
    if isinstance(value, interval_schedule):
        return {"interval": value.run_every.total_seconds()}
    if isinstance(value, timedelta):
        return {"interval": value.total_seconds()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"interval": float(value)}
    return None


def monitor_beat(
    celery_app: Any,
    manager: AlertManager,
    *,
    grace: float = DEFAULT_GRACE,
    max_runtime: float | None = None,
    heartbeats: Heartbeats | None = None,
) -> None:
    """Monitor every ``beat_schedule`` entry of ``celery_app``; alerts go to ``manager``.

    Called once per process (the worker's and beat's); calling it again for the same
    app does nothing. Never raises: an entry that cannot be monitored is logged.
    """
    if celery_app in _monitors:
        return
    monitors = heartbeats if heartbeats is not None else Heartbeats(manager)
    _monitors[celery_app] = monitors
    conf = celery_app.conf
    timezone = str(conf.timezone) if conf.timezone else "UTC"  # Celery's default
    by_task: dict[str, list[str]] = {}
    entries: Mapping[str, Any] = conf.beat_schedule or {}
    for name, entry in entries.items():
        try:
            task = entry["task"]
            options = _schedule_options(entry["schedule"], timezone)
            if options is None:
                _log.warning(
                    "PagerDuty: beat entry %r has a %s schedule, which is not monitored",
                    name,
                    type(entry["schedule"]).__name__,
                )
                continue
            slug = _slug(str(name))
            monitors.add(slug, grace=grace, max_runtime=max_runtime, **options)
        except Exception as error:
            _log.warning("PagerDuty: beat entry %r is not monitored: %s", name, error)
            continue
        by_task.setdefault(str(task), []).append(slug)
    if not by_task:
        return

    def check_in(sender: Any, status: str, details: dict[str, Any] | None = None) -> None:
        for slug in by_task.get(getattr(sender, "name", None) or "", ()):
            try:
                monitors.check_in(slug, status, details=details)
            except Exception:
                _log.exception("PagerDuty: could not check in beat monitor %s", slug)

    def on_prerun(sender: Any = None, **_: Any) -> None:
        check_in(sender, "in_progress")

    def on_success(sender: Any = None, **_: Any) -> None:
        check_in(sender, "ok")

    def on_failure(sender: Any = None, exception: Any = None, **_: Any) -> None:
        details = None
        if isinstance(exception, BaseException):
            details = {"exception": type_name(exception), "message": message(exception)}
        check_in(sender, "error", details)

    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_success.connect(on_success, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
