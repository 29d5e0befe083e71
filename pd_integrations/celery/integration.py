"""``PagerDuty(celery_app)``: Celery's public signals translated into TaskMonitor calls.

Where Celery sends each signal decides which process alerts:

- ``task_prerun``/``task_postrun``, ``task_retry`` and the ``task_failure`` of an
  exception the task raised run in the process that ran the task (a prefork child, the
  solo worker, a thread of the threads pool, or the caller for an eager task);
- a hard time limit and a lost child (killed by a signal or the OOM killer) end in the
  main worker process: Celery sends ``task_failure`` there with ``TimeLimitExceeded``
  or ``WorkerLostError``, so the alert leaves from a process that lives. Celery before
  5.7 sends nothing for a hard time limit; its main process logs the fact, and
  :mod:`.timelimit` turns that log record into the alert;
- ``worker_process_shutdown`` (a child ending) and ``worker_shutdown`` (the worker
  ending) flush what is queued, since a prefork child leaves without running
  ``atexit``.

The alert manager is built when ``PagerDuty`` is created, before the worker forks; the
dispatcher starts afresh in each child (see :mod:`pd_integrations.delivery.dispatcher`). Nothing
here raises into Celery or the task.
"""

from __future__ import annotations

import importlib
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from celery import Celery, Task, signals
from celery.exceptions import Retry, TimeLimitExceeded, WorkerLostError

from pd_integrations.alerts import AlertManager
from pd_integrations.errors import ConfigurationError
from pd_integrations.settings import PagerDutySettings
from pd_integrations.settings.build import build_alerts
from pd_integrations.workers import MULTI_PROCESS_FIX

from . import timelimit
from .conf import load_settings
from .monitor import TaskInfo, TaskMonitor

__all__ = ["PagerDuty"]

_log = logging.getLogger("pd_integrations.celery")

SUCCESS: Final = "SUCCESS"
HARD_TIME_LIMIT: Final = "hard time limit"
WORKER_LOST: Final = "worker lost"
_POOLS_WITH_CHILDREN: Final = ("prefork", "processes", "billiard")

# One integration per Celery app: a second PagerDuty(app) replaces the first.
_installed: weakref.WeakKeyDictionary[Celery, PagerDuty] = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()


class PagerDuty:
    """PagerDuty alerting for a Celery app's tasks.

    ::

        app = Celery("proj", broker="redis://localhost:6379/0")
        app.conf.pagerduty_slow_task_ms = 60_000
        PagerDuty(app)

    Settings come from keyword arguments (``routing_key=``, ``slow_task_ms=``...), else
    ``app.conf["pagerduty_<name>"]``, else the environment ``PAGERDUTY_<NAME>``. An
    invalid setting is logged once at ERROR and leaves the app unmonitored (``error``
    holds it); a missing routing key warns and sends nothing. ``alerts=`` uses an
    :class:`~pd_integrations.AlertManager` of yours instead of building one.

    ``monitor_beat=True`` also watches the app's ``beat_schedule`` (see the heartbeats
    page).
    """

    def __init__(
        self,
        celery_app: Celery,
        *,
        alerts: AlertManager | None = None,
        monitor_beat: bool = False,
        **settings: Any,
    ) -> None:
        self.app = celery_app
        self.error: ConfigurationError | None = None
        self.settings: PagerDutySettings = load_settings(celery_app.conf, settings)
        self.alerts: AlertManager | None = None
        self.monitor: TaskMonitor | None = None
        self._receivers: list[tuple[Any, Callable[..., None]]] = []
        self._started: dict[str, float] = {}
        self._hostname = socket.gethostname()
        self._clock = time.perf_counter
        try:
            self.settings.raise_for_errors()
            self.alerts = alerts if alerts is not None else build_alerts(self.settings)
        except ConfigurationError as error:
            self.error = error
            _log.error("PagerDuty alerting for Celery is off: %s", error)
            return
        s = self.settings
        self.monitor = TaskMonitor(
            self.alerts,
            task_severity=s.task_severity,
            alert_on_attempt=s.alert_on_attempt,
            slow_task_ms=s.slow_task_ms,
            task_overrides=s.task_overrides,
            include_task_args=s.include_task_args,
            environment=s.environment,
            component=s.component,
            in_app_include=s.in_app_include,
            in_app_exclude=s.in_app_exclude,
            ignore_exceptions=s.ignore_exceptions,
            auto_resolve=s.auto_resolve,
        )
        with _install_lock:
            previous = _installed.get(celery_app)
            if previous is not None:
                previous.disconnect()
            _installed[celery_app] = self
        self.connect()
        if monitor_beat:
            self._monitor_beat()

    # -- wiring -----------------------------------------------------------------------

    def connect(self) -> None:
        """Watch the app's tasks (done by the constructor; again after :meth:`disconnect`)."""
        if self._receivers or self.monitor is None:
            return
        for signal, receiver in (
            (signals.task_prerun, self._on_prerun),
            (signals.task_postrun, self._on_postrun),
            (signals.task_failure, self._on_failure),
            (signals.task_retry, self._on_retry),
            (signals.worker_init, self._on_worker_init),
            (signals.worker_process_shutdown, self._on_shutdown),
            (signals.worker_shutdown, self._on_shutdown),
        ):
            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))
        if timelimit.needed():
            timelimit.install(self._on_hard_time_limit)

    def disconnect(self) -> None:
        """Stop watching the app's tasks (the alert manager stays as it is)."""
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()
        timelimit.uninstall(self._on_hard_time_limit)

    def _monitor_beat(self) -> None:
        try:
            # Optional: the heartbeats feature provides it (imported here, at run time).
            beat = importlib.import_module("pd_integrations.celery.beat")
        except ImportError:
            _log.error(
                "PagerDuty(monitor_beat=True): beat monitoring is not available in this "
                "version of pd_integrations; the beat schedule is not watched"
            )
            return
        try:
            beat.monitor_beat(self.app, self.alerts)
        except Exception:
            _log.exception("PagerDuty(monitor_beat=True): could not watch the beat schedule")

    def _mine(self, task: object) -> bool:
        return getattr(task, "app", None) is self.app

    # -- the hot path -----------------------------------------------------------------

    def _on_prerun(self, sender: Any = None, task_id: Any = None, **_: Any) -> None:
        if task_id is not None:
            self._started[task_id] = self._clock()

    def _on_postrun(
        self,
        sender: Any = None,
        task_id: Any = None,
        state: Any = None,
        args: Any = None,
        kwargs: Any = None,
        **_: Any,
    ) -> None:
        started = self._started.pop(task_id, None)
        if state != SUCCESS or self.monitor is None or not self._mine(sender):
            return
        runtime = None if started is None else self._clock() - started
        self.monitor.succeeded(
            sender.name, runtime, lambda: self._describe(sender, task_id, args, kwargs)
        )

    # -- failures ---------------------------------------------------------------------

    def _on_failure(
        self,
        sender: Any = None,
        task_id: Any = None,
        exception: BaseException | None = None,
        args: Any = None,
        kwargs: Any = None,
        **_: Any,
    ) -> None:
        if self.monitor is None or exception is None or not self._mine(sender):
            return
        started = self._started.get(task_id)
        runtime = None if started is None else self._clock() - started
        lost = None
        if isinstance(exception, WorkerLostError):
            lost = WORKER_LOST
        elif isinstance(exception, TimeLimitExceeded):
            lost = HARD_TIME_LIMIT
        info = self._describe(sender, task_id, args, kwargs)
        self.monitor.failed(sender.name, exception, lambda: info, runtime=runtime, lost=lost)

    def _on_retry(
        self,
        sender: Any = None,
        request: Any = None,
        reason: Any = None,
        einfo: Any = None,
        **_: Any,
    ) -> None:
        if self.monitor is None or not self._mine(sender):
            return
        # ``reason`` is Celery's Retry; the task's own exception, if it gave one, is in it.
        exc = reason
        if isinstance(exc, Retry) and isinstance(exc.exc, BaseException):
            exc = exc.exc
        if not isinstance(exc, BaseException):
            exc = RuntimeError(str(reason))
        attempt = (getattr(request, "retries", 0) or 0) + 1
        task_id = getattr(request, "id", None)
        info = self._describe(
            sender, task_id, getattr(request, "args", None), getattr(request, "kwargs", None)
        )
        # Where the task asked for the retry: the frames of its final failure too.
        trace = reason.__traceback__ if isinstance(reason, BaseException) else None
        self.monitor.retried(
            sender.name,
            exc,
            attempt,
            lambda: info,
            trace=trace,
        )

    def _on_hard_time_limit(self, name: str, task_id: str, limit: float) -> None:
        """Celery before 5.7: the main process logged a hard time limit (see :mod:`.timelimit`)."""
        if self.monitor is None or name not in self.app.tasks:
            return
        task = self.app.tasks[name]
        info = TaskInfo(id=task_id, hostname=self._hostname, max_retries=task.max_retries)
        self.monitor.failed(name, TimeLimitExceeded(limit), lambda: info, lost=HARD_TIME_LIMIT)

    def _describe(
        self, task: Task, task_id: Any, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> TaskInfo:
        request = getattr(task, "request", None)
        if request is None or getattr(request, "id", None) != task_id:
            # The main process (a lost child, a time limit): the run's context is gone.
            return TaskInfo(
                id=task_id,
                hostname=self._hostname,
                max_retries=task.max_retries,
                args=args,
                kwargs=kwargs,
            )
        delivery = getattr(request, "delivery_info", None) or {}
        return TaskInfo(
            id=task_id,
            queue=delivery.get("routing_key") or delivery.get("queue"),
            hostname=getattr(request, "hostname", None) or self._hostname,
            attempt=(getattr(request, "retries", 0) or 0) + 1,
            max_retries=task.max_retries,
            args=args,
            kwargs=kwargs,
        )

    # -- the worker's life ------------------------------------------------------------

    def _on_worker_init(self, sender: Any = None, **_: Any) -> None:
        try:
            hostname = getattr(sender, "hostname", None)
            if hostname:
                self._hostname = hostname
            # A name ("prefork") before the worker resolved it, its class after.
            pool_cls = getattr(sender, "pool_cls", None)
            pool = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
            children = any(name in pool for name in _POOLS_WITH_CHILDREN)
            concurrency = getattr(sender, "concurrency", 1) or 1
            if (
                children
                and concurrency > 1
                and self.settings.state_url is None
                and self.settings.enabled
            ):
                _log.warning(
                    "PagerDuty: %d prefork children each keep their own alert state: a "
                    "task's success resolves only the failures its own process saw (the "
                    "others resolve when quiet); %s",
                    concurrency,
                    MULTI_PROCESS_FIX,
                )
        except Exception:
            _log.debug("could not inspect the Celery worker", exc_info=True)

    def _on_shutdown(self, **_: Any) -> None:
        if self.alerts is None:
            return
        try:
            if not self.alerts.flush(self.settings.flush_timeout):
                _log.warning("PagerDuty: some alerts were still queued when the worker stopped")
        except Exception:
            _log.exception("PagerDuty: could not flush the queued alerts")
