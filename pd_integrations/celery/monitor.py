"""TaskMonitor: every decision about background-task alerts, free of any task queue.

A task-queue adapter translates its queue's events into three calls and decides nothing::

    monitor.failed(name, exc, describe)            # failed for good, or lost by the worker
    monitor.retried(name, exc, attempt, describe)  # an attempt failed, another one follows
    monitor.succeeded(name, runtime, describe)     # the hot path

``describe`` is a callable returning a :class:`TaskInfo`; it is only called when an
alert is about to be sent, so a healthy task builds nothing. Decided here:

- a task that failed for good raises one alert per (task name, exception fingerprint),
  severity ``task_severity`` (``error``) or the task's override; ``None`` there: no alert;
- a failed attempt that is retried raises nothing, unless it is attempt
  ``alert_on_attempt`` or later (same dedup key as the final failure, so the final
  failure adds an occurrence instead of a second incident);
- a hard time limit or a lost worker process is identified by the task and the kind of
  loss, never by a traceback (they have none of the application's);
- a success resolves the task's open failure alerts; with shared state (Redis) the
  failures other processes raised are learnt at most every ``sync_interval`` seconds;
- a run longer than ``slow_task_ms`` (or the task's own threshold) raises a ``warning``
  per task name, auto-resolved.

No method of this class raises into the caller: a failure here is logged and dropped.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from pd_integrations import environment as env_vars
from pd_integrations.alerts import AlertManager
from pd_integrations.events import Severity
from pd_integrations.fingerprint import (
    DEFAULT_LIBRARY_MODULES,
    DEFAULT_STACK_LIMIT,
    Fingerprinter,
    message,
    type_name,
)
from pd_integrations.monitor import _LazyDetails
from pd_integrations.scrub import DEFAULT_SCRUBBER
from pd_integrations.settings.tasks import UNSET, TaskRule
from pd_integrations.state.memory import MemoryState

__all__ = [
    "SLOW_TASK_ALERT",
    "TASK_FAILURE_ALERT",
    "TASK_LIBRARY_MODULES",
    "TaskInfo",
    "TaskMonitor",
]

_log = logging.getLogger("pd_integrations.tasks")

TASK_FAILURE_ALERT: Final = "task_failure"
SLOW_TASK_ALERT: Final = "slow_task"
# Task-queue packages: their frames are never the application's, even in an editable
# install, so a fingerprint names the task's own code.
TASK_LIBRARY_MODULES: Final = (
    *DEFAULT_LIBRARY_MODULES,
    "celery",
    "billiard",
    "kombu",
    "vine",
    "amqp",
    "redis",
    "rq",
)
MAX_ARG_STRING: Final = 500
MAX_ARG_ITEMS: Final = 20
MAX_ARG_DEPTH: Final = 4
MAX_SUMMARY_MESSAGE: Final = 200
DEFAULT_SYNC_INTERVAL: Final = 1.0


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What an alert says about one run of a task; built only when an alert fires."""

    id: str | None = None
    queue: str | None = None
    hostname: str | None = None
    attempt: int | None = None
    """1 for the first run, 2 for the first retry..."""
    max_retries: int | None = None
    args: Sequence[Any] | None = None
    kwargs: Mapping[str, Any] | None = None


Describe = Callable[[], TaskInfo]


@dataclass(frozen=True, slots=True)
class _Rule:
    severity: Severity | None
    slow_seconds: float | None
    alert_on_attempt: int | None


def _pick(override: object, default: Any) -> Any:
    return default if override is UNSET else override


class TaskMonitor:
    """Framework-neutral decisions about task alerts; adapters call it, never decide."""

    def __init__(
        self,
        alerts: AlertManager,
        *,
        task_severity: Severity | str = Severity.ERROR,
        alert_on_attempt: int | None = None,
        slow_task_ms: float | None = None,
        task_overrides: Mapping[str, TaskRule] | None = None,
        include_task_args: bool = True,
        environment: str | None = None,
        component: str | None = None,
        in_app_include: Iterable[str] = (),
        in_app_exclude: Iterable[str] = (),
        ignore_exceptions: Iterable[type[BaseException]] = (),
        auto_resolve: bool = True,
        stack_frames: int = DEFAULT_STACK_LIMIT,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if alert_on_attempt is not None and alert_on_attempt < 1:
            raise ValueError(f"alert_on_attempt must be at least 1, got {alert_on_attempt!r}")
        if slow_task_ms is not None and not slow_task_ms > 0:
            raise ValueError(f"slow_task_ms must be positive, got {slow_task_ms!r}")
        self.alerts = alerts
        self.default_rule = _Rule(
            Severity.parse(task_severity),
            None if slow_task_ms is None else slow_task_ms / 1000.0,
            alert_on_attempt,
        )
        self.task_overrides = dict(task_overrides or {})
        self._rules: dict[str, _Rule] = {}
        self.include_task_args = include_task_args
        self.environment = env_vars.environment(environment)
        self.component = component
        self.ignore_exceptions = tuple(ignore_exceptions)
        self.auto_resolve = auto_resolve
        self.stack_frames = stack_frames
        self._fingerprinter = Fingerprinter(
            in_app_include=in_app_include,
            in_app_exclude=in_app_exclude,
            library_modules=TASK_LIBRARY_MODULES,
        )
        # The fast path of a success: below the smallest threshold nothing is slow.
        limits = [
            rule.slow_task_ms
            for rule in self.task_overrides.values()
            if isinstance(rule.slow_task_ms, float)
        ]
        if slow_task_ms is not None:
            limits.append(slow_task_ms)
        self.quiet_seconds_below = min(limits) / 1000.0 if limits else float("inf")
        # Task name -> dedup keys of its failure alerts believed open (this process's own,
        # plus, with shared state, those other processes opened).
        self._open: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._shared = not isinstance(alerts.state, MemoryState)
        self.sync_interval = sync_interval
        self._clock = clock
        self._next_sync = 0.0

    # -- rules ------------------------------------------------------------------------

    def rule(self, name: str) -> _Rule:
        """The task's settings: its override where it has one, else the global setting."""
        rule = self._rules.get(name)
        if rule is None:
            override = self.task_overrides.get(name)
            base = self.default_rule
            if override is None:
                rule = base
            else:
                slow = override.slow_task_ms
                rule = _Rule(
                    _pick(override.severity, base.severity),
                    base.slow_seconds
                    if slow is UNSET
                    else (None if slow is None else float(slow) / 1000.0),  # type: ignore[arg-type]
                    _pick(override.alert_on_attempt, base.alert_on_attempt),
                )
            self._rules[name] = rule
        return rule

    # -- events -----------------------------------------------------------------------

    def failed(
        self,
        name: str,
        exc: BaseException,
        describe: Describe,
        *,
        runtime: float | None = None,
        lost: str | None = None,
    ) -> str | None:
        """The task failed for good; ``lost`` names how the worker lost it, if it did.

        A lost run (``"hard time limit"``, ``"worker lost"``) is identified by the task
        and that kind, whatever the exception's traceback.
        """
        try:
            return self._failure(name, exc, describe, runtime, lost, retried=False)
        except Exception:
            _log.exception("could not raise the PagerDuty alert for task %s", name)
            return None

    def retried(
        self,
        name: str,
        exc: BaseException,
        attempt: int,
        describe: Describe,
        *,
        trace: TracebackType | None = None,
    ) -> str | None:
        """Attempt ``attempt`` failed with ``exc`` and will be retried: an alert only from
        ``alert_on_attempt`` on.

        ``trace`` is where the retry was asked for, for an ``exc`` never raised (a task
        may hand a fresh exception to its retry): the fingerprint then matches that of
        the final failure, which is the same alert.
        """
        try:
            threshold = self.rule(name).alert_on_attempt
            if threshold is None or attempt < threshold:
                return None
            return self._failure(name, exc, describe, None, None, retried=True, trace=trace)
        except Exception:
            _log.exception("could not raise the PagerDuty alert for task %s", name)
            return None

    def succeeded(self, name: str, runtime: float | None, describe: Describe) -> None:
        """Resolve the task's failure alerts; a warning if it ran too long."""
        try:
            if self._shared and self._clock() >= self._next_sync:
                self._sync()
            if name in self._open:
                self._resolve(name)
            if runtime is not None and runtime >= self.quiet_seconds_below:
                self._slow(name, runtime, describe)
        except Exception:
            _log.exception("could not handle the success of task %s", name)

    # -- decisions --------------------------------------------------------------------

    def _failure(
        self,
        name: str,
        exc: BaseException,
        describe: Describe,
        runtime: float | None,
        lost: str | None,
        *,
        retried: bool,
        trace: TracebackType | None = None,
    ) -> str | None:
        if isinstance(exc, self.ignore_exceptions):
            return None
        severity = self.rule(name).severity
        if severity is None:
            return None
        traced = exc if trace is None else _traced(exc, trace)
        if lost is None:
            fp = self._fingerprinter.fingerprint(traced)
            identity, readable = fp.digest, fp.readable
        else:
            identity, readable = lost.replace(" ", "_"), f"{type_name(exc)} ({lost})"
        text = message(exc, MAX_SUMMARY_MESSAGE)
        what = f"{lost}: " if lost is not None else ""
        verb = "failed, will retry" if retried else "failed"
        summary = f"Task {name} {verb}: {what}{type(exc).__name__}: {text}".rstrip(": ")

        def details() -> dict[str, Any]:
            built: dict[str, Any] = {
                "task": name,
                "exception_type": type_name(exc),
                "exception_message": message(exc),
                "fingerprint": readable,
            }
            if lost is not None:
                built["lost"] = lost
            else:
                built["stack"] = self._fingerprinter.stack(traced, self.stack_frames)
                causes = self._fingerprinter.causes(traced)
                if causes:
                    built["causes"] = causes
            if retried:
                built["will_retry"] = True
            built.update(self._task_details(describe(), runtime))
            return built

        key = self.alerts.alert(
            summary,
            severity,
            alert_type=TASK_FAILURE_ALERT,
            component=self.component,
            identifier=f"{name}:{identity}",
            custom_details=_LazyDetails(details, None),
            auto_resolve=self.auto_resolve,
        )
        with self._lock:
            self._open.setdefault(name, set()).add(key)
        return key

    def _slow(self, name: str, runtime: float, describe: Describe) -> None:
        threshold = self.rule(name).slow_seconds
        if threshold is None or runtime < threshold:
            return

        def details() -> dict[str, Any]:
            built: dict[str, Any] = {"task": name, "threshold_ms": round(threshold * 1000, 1)}
            built.update(self._task_details(describe(), runtime))
            return built

        self.alerts.alert(
            f"Slow task: {name} took {runtime * 1000:.0f} ms (threshold {threshold * 1000:.0f} ms)",
            Severity.WARNING,
            alert_type=SLOW_TASK_ALERT,
            component=self.component,
            identifier=name,
            custom_details=_LazyDetails(details, None),
            auto_resolve=True,
        )

    def _resolve(self, name: str) -> None:
        with self._lock:
            keys = self._open.pop(name, set())
        for key in keys:
            self.alerts.resolve(key)

    def _sync(self) -> None:
        """Learn the failure alerts other processes opened (shared state only)."""
        self._next_sync = self._clock() + self.sync_interval
        found: dict[str, set[str]] = {}
        for alert in self.alerts.active_alerts():
            if alert.alert_type == TASK_FAILURE_ALERT and alert.identifier:
                task = alert.identifier.rpartition(":")[0]
                found.setdefault(task, set()).add(alert.dedup_key)
        with self._lock:
            for task, keys in found.items():
                self._open.setdefault(task, set()).update(keys)

    def _task_details(self, info: TaskInfo, runtime: float | None) -> dict[str, Any]:
        details: dict[str, Any] = {
            "task_id": info.id,
            "queue": info.queue,
            "worker": info.hostname,
        }
        if info.attempt is not None:
            details["attempt"] = info.attempt
        if info.max_retries is not None:
            details["max_retries"] = info.max_retries
        if runtime is not None:
            details["runtime_ms"] = round(runtime * 1000, 1)
        if self.include_task_args:
            if info.args:
                details["args"] = _bounded(list(info.args))
            if info.kwargs:
                details["kwargs"] = _bounded(dict(info.kwargs))
        details["environment"] = self.environment
        return {k: v for k, v in details.items() if v is not None and v != ""}


def _traced(exc: BaseException, trace: TracebackType) -> BaseException:
    """``exc`` as if raised at ``trace`` (a copy: the task's exception is left alone)."""
    if exc.__traceback__ is not None:
        return exc
    try:
        return copy.copy(exc).with_traceback(trace)
    except Exception:
        return exc


def _bounded(value: object) -> object:
    # Scrubbed before it is cut: a secret cut in half no longer looks like one.
    return DEFAULT_SCRUBBER.to_jsonable(
        value, max_depth=MAX_ARG_DEPTH, max_string=MAX_ARG_STRING, max_items=MAX_ARG_ITEMS
    )
