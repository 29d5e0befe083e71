"""HealthMonitor: edge-triggered health-check alerting.

Checks are registered in code. Each run records every check's result; a check pages
once when it has failed ``failure_threshold`` times in a row and resolves once when it
has then passed ``recovery_threshold`` times in a row, so a flapping dependency does not
page on every blip and a long outage is one incident, not one per run.

A check's options (timeout, dependencies, severity, runbook, thresholds) are one value,
:class:`CheckOptions`, checked once when the check is registered; a timeout or threshold
left at ``None`` is the monitor's default, filled in then. The Flask extension's checks
and the ``health_checks`` setting build the same value, so a check behaves the same
however it was declared, and a run reads the options as they were resolved, never
resolving them again.

The counts and the open/closed state live in the alert manager's state
(:mod:`pd_integrations.state.base`): with shared state (Redis) every worker's run counts
toward one streak, and only the run that flips the state sends the trigger or the
resolve, so N workers checking one database page once and resolve once. A run never
waits for Redis (a probe must not stall, nor an event loop): it hands its result to the
alert manager's background thread, which counts it there, in the order this process ran
them, and sends what the shared state decides; the report then shows this process's view
(the shared state as last seen, plus its own runs since).

A check may depend on others: while a dependency is failing, its dependents are not run
and are reported as skipped, because the outage is the dependency's and one page is
enough. The same report serves a health endpoint (:attr:`HealthReport.http_status`).

Runs overlap all the time (probes from load balancers and orchestrators, the periodic
runner): a run that finds a check's call in flight shares it instead of starting
another, waits for it until that call's deadline at most, and reports what the call
produced, its result or its timeout; one shared call counts once toward the streaks.
Only a call still running past its deadline is a hung check: it is reported as such and
not started again until it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pd_integrations import environment as env_vars
from pd_integrations.delivery.dispatcher import DeliveryHealth
from pd_integrations.state.base import Edge, HealthState, next_health

from .alerts import AlertManager, make_dedup_key
from .events import Link, Severity
from .fingerprint import message, type_name
from .scrub import DEFAULT_SCRUBBER, Scrubber
from .workers import worker_server

_log = logging.getLogger("pd_integrations.health")

BLIND_RESOLVE_EVERY = 60.0
"""Seconds between the resolves one worker sends for a check it sees healthy but another
worker may have seen failing (per-process state under a multi-process server)."""

HEALTH_CHECK_ALERT = "health_check"
DEFAULT_FAILURE_THRESHOLD = 2
DEFAULT_RECOVERY_THRESHOLD = 1
DEFAULT_TIMEOUT = 5.0
DEFAULT_INTERVAL = 30.0
MAX_ERROR = 500

HealthCheck = Callable[[], bool | Awaitable[bool | None] | None]
"""A check: returns ``True``/``None`` when healthy, ``False`` when not, or raises."""

CheckT = TypeVar("CheckT", bound=HealthCheck)


class CheckStatus(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    SKIPPED = "skipped"
    """Not run because a dependency is failing; it neither counts nor pages."""


class OverallStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    """Only checks of severity ``warning`` or ``info`` are failing: still serving."""
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome in one run."""

    name: str
    status: CheckStatus
    duration_ms: float
    severity: Severity
    error: str | None = None
    alerting: bool = False
    """The check has crossed its failure threshold and its alert is open."""
    consecutive_failures: int = 0

    @property
    def healthy(self) -> bool:
        return self.status is CheckStatus.HEALTHY

    def to_dict(self, *, errors: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status.value,
            "duration_ms": self.duration_ms,
            "alerting": self.alerting,
        }
        if errors and self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The result of one run of every check, ready to serve from a health endpoint."""

    checks: tuple[CheckResult, ...]
    checked_at: datetime
    delivery: DeliveryHealth | None = None
    """Whether the alerts themselves reach PagerDuty; it never changes the HTTP status
    (the app is fine, its alerting is not), it only shows it."""

    @property
    def status(self) -> OverallStatus:
        failing = [c for c in self.checks if c.status is not CheckStatus.HEALTHY]
        if any(c.severity.rank >= Severity.ERROR.rank for c in failing):
            return OverallStatus.UNHEALTHY
        return OverallStatus.DEGRADED if failing else OverallStatus.HEALTHY

    @property
    def healthy(self) -> bool:
        """``False`` only when a check of severity ``error`` or ``critical`` is failing."""
        return self.status is not OverallStatus.UNHEALTHY

    @property
    def http_status(self) -> int:
        return 200 if self.healthy else 503

    def __getitem__(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self, *, errors: bool = True) -> dict[str, Any]:
        """A JSON-ready body; ``errors=False`` leaves out error messages (public endpoints)."""
        body: dict[str, Any] = {
            "status": self.status.value,
            "checked_at": self.checked_at.isoformat().replace("+00:00", "Z"),
            "checks": {c.name: c.to_dict(errors=errors) for c in self.checks},
        }
        if self.delivery is not None:
            delivery = self.delivery
            body["delivery"] = {
                "ok": delivery.ok,
                "queued": delivery.queued,
                "oldest_queued_seconds": delivery.oldest_queued_seconds,
                "rejected": delivery.rejected,
                "dropped": delivery.dropped,
            }
            if errors and delivery.problem is not None:
                body["delivery"]["problem"] = delivery.problem
        return body


@dataclass(frozen=True, slots=True, init=False)
class CheckOptions:
    """How one health check runs and pages: every option of a check, checked, in one value.

    ``timeout`` (seconds), ``failure_threshold`` and ``recovery_threshold`` left at
    ``None`` take the default of the monitor the check is registered on
    (:meth:`with_defaults`), so options written before the monitor exists (a Flask
    extension's checks, the ``health_checks`` setting) behave as on the monitor itself.
    ``depends_on`` names checks registered before this one; ``severity`` is a
    :class:`~pd_integrations.events.Severity` or its name; a ``runbook`` URL becomes a
    :class:`~pd_integrations.events.Link` titled "Runbook".

    Checked when built, so bad options are refused where the check is registered:
    ``ValueError`` naming the option and the bad value (a threshold below 1 or not a
    whole number, a timeout that is not a finite positive number of seconds, an unknown
    severity...). Equal options compare equal; ``dataclasses.replace(options,
    timeout=2)`` makes a variant, checked again.
    """

    timeout: float | None
    depends_on: tuple[str, ...]
    severity: Severity
    runbook: Link | None
    failure_threshold: int | None
    recovery_threshold: int | None

    def __init__(
        self,
        *,
        timeout: float | None = None,
        depends_on: Iterable[str] = (),
        severity: Severity | str = Severity.CRITICAL,
        runbook: str | Link | None = None,
        failure_threshold: int | None = None,
        recovery_threshold: int | None = None,
    ) -> None:
        # A frozen dataclass: its fields are set once, here, through object.__setattr__.
        set_field = object.__setattr__
        set_field(self, "timeout", None if timeout is None else _seconds("timeout", timeout))
        set_field(self, "depends_on", _check_names(depends_on))
        set_field(self, "severity", _severity(severity))
        set_field(self, "runbook", _runbook(runbook))
        set_field(
            self,
            "failure_threshold",
            None
            if failure_threshold is None
            else _threshold("failure_threshold", failure_threshold),
        )
        set_field(
            self,
            "recovery_threshold",
            None
            if recovery_threshold is None
            else _threshold("recovery_threshold", recovery_threshold),
        )

    def with_defaults(
        self, *, timeout: float, failure_threshold: int, recovery_threshold: int
    ) -> CheckOptions:
        """These options with each ``None`` replaced by the given default (a monitor's)."""
        return replace(
            self,
            timeout=timeout if self.timeout is None else self.timeout,
            failure_threshold=(
                failure_threshold if self.failure_threshold is None else self.failure_threshold
            ),
            recovery_threshold=(
                recovery_threshold if self.recovery_threshold is None else self.recovery_threshold
            ),
        )


def _seconds(option: str, value: object) -> float:
    # bool is an int, but True seconds is certainly a mistake.
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{option} must be a positive number of seconds, not {_shown(value)}")
    return float(number)


def _threshold(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a whole number of at least 1, not {_shown(value)}")
    return value


def _check_names(value: object) -> tuple[str, ...]:
    # A lone name is a common slip: iterating it would depend on its letters.
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"depends_on must be a list of check names, not {_shown(value)}")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"depends_on must list check names, not {_shown(name)}")
    return names


def _severity(value: object) -> Severity:
    if isinstance(value, str):  # a Severity is one too
        with contextlib.suppress(ValueError):
            return Severity.parse(value)
    allowed = ", ".join(severity.value for severity in Severity)
    raise ValueError(f"severity must be one of {allowed}, not {_shown(value)}")


def _runbook(value: object) -> Link | None:
    if value is None or isinstance(value, Link):
        return value
    if isinstance(value, str) and value.strip():
        return Link(value, "Runbook")
    raise ValueError(f"runbook must be a URL or a Link, not {_shown(value)}")


def _shown(value: object) -> str:
    """``repr(value)``, cut short: an error message stays one readable line."""
    text = _repr_bounded(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


_SHOWN_MAX = 80


@dataclass(slots=True)
class _Check:
    name: str
    fn: HealthCheck
    options: CheckOptions
    """As registered, the monitor's defaults filled in: what :meth:`HealthMonitor.options`
    gives."""
    # options' timeout and thresholds, never None there: every run reads them.
    timeout: float
    failure_threshold: int
    recovery_threshold: int
    is_async: bool
    level: int
    state_key: str
    """The check's alert dedup key, which also names its edge-trigger state."""
    # The check's current call, which overlapping runs share rather than start another;
    # once past its deadline it is a hung check, never started a second time (each run
    # would leak one more thread).
    inflight: _Call | None = None
    # With a remote state: its state as this process last saw it, plus the runs since.
    known: HealthState = field(default_factory=HealthState)
    # With a remote state: the results (healthy or not) of this process's runs not yet
    # recorded there, oldest first; each recording re-applies those still waiting.
    unrecorded: deque[bool] = field(default_factory=deque)
    # time.monotonic() of this process's last resolve for a check another worker may
    # have seen failing (see HealthMonitor's ``resolve_when_healthy``).
    blind_resolve: float | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: CheckStatus
    duration: float
    error: str | None = None
    call: _Call | None = None
    """The call this outcome came from: runs sharing it count it once toward a streak."""


class _Call:
    """One call of a check, shared by every run that overlaps it until its deadline.

    Whoever waits for it waits until ``deadline`` at most, so every sharer sees the
    same thing: the check's own result if it came in time, else a timeout.
    """

    def __init__(self, timeout: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + timeout
        self.loop = loop
        """The event loop running the check as a task; ``None`` for a thread."""
        self.task: asyncio.Task[object] | None = None
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self.finished = self.started
        # Guarded by the monitor's lock.
        self.waiters = 0
        self.counted = False
        self.abandoned = False
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def finish(self, result: object, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.finished = time.perf_counter()
        with self._lock:
            self.done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one waiter's trouble must not strand the others
                _log.exception("a health check waiter failed")

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) once the call is done, now if it is."""
        with self._lock:
            if not self.done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def joinable(self) -> bool:
        """Still running and worth waiting for (its task's loop can still run it)."""
        if self.done.is_set() or self.abandoned:
            return False
        return self.loop is None or not self.loop.is_closed()


def _call_in_thread(fn: HealthCheck, timeout: float) -> _Call:
    """Run ``fn`` on a daemon thread (a hung check never blocks interpreter exit)."""
    call = _Call(timeout)

    def run() -> None:
        result: object = None
        error: BaseException | None = None
        try:
            result = fn()
            if inspect.isawaitable(result):
                # An async check called from sync code: give it a loop of its own.
                result = asyncio.run(_await(result, timeout))
        except BaseException as exc:  # a check's failure, whatever it is, is a result
            error = exc
        call.finish(result, error)

    threading.Thread(target=run, name="pd_integrations-health-check", daemon=True).start()
    return call


def _call_as_task(fn: HealthCheck, timeout: float) -> _Call:
    """Run the async check ``fn`` as a task on the running loop, cancelled at its deadline."""
    loop = asyncio.get_running_loop()
    call = _Call(timeout, loop)

    def finished(task: asyncio.Task[object]) -> None:
        try:
            call.finish(task.result(), None)
        except BaseException as exc:  # the check's own error (or its own CancelledError)
            call.finish(None, exc)

    call.task = loop.create_task(_await(_call_async(fn), timeout))
    call.task.add_done_callback(finished)
    return call


class _CheckTimeout(Exception):
    """The check's own time limit ran out (not a timeout the check itself ran into)."""


async def _await(awaitable: Awaitable[object], timeout: float) -> object:
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise _CheckTimeout from None
        raise  # the check's own TimeoutError: its error, not its time limit


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _judge(result: object) -> str | None:
    """``None`` if ``result`` means healthy, else the reason it does not."""
    if result is None or result is True:
        return None
    try:
        ok = bool(result)
    except Exception:
        ok = False
    return None if ok else f"check returned {_repr_bounded(result)}"


def _repr_bounded(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text[:MAX_ERROR]


def _error_text(exc: BaseException) -> str:
    text = message(exc, MAX_ERROR)
    return f"{type_name(exc)}: {text}" if text else type_name(exc)


class CheckRegistry(ABC):
    """``register()`` and its decorator form ``@check()``, for anything that takes checks.

    Both turn a check's options into one :class:`CheckOptions`, checked where the check
    is written (the error names the check), and hand it to :meth:`_add`, which each
    registry implements: :class:`HealthMonitor`, and the Flask extension's checks.
    """

    def register(
        self,
        name: str,
        check: CheckT,
        *,
        timeout: float | None = None,
        depends_on: Iterable[str] = (),
        severity: Severity | str = Severity.CRITICAL,
        runbook: str | Link | None = None,
        failure_threshold: int | None = None,
        recovery_threshold: int | None = None,
        options: CheckOptions | None = None,
    ) -> CheckT:
        """Add a check; returns it unchanged. Dependencies must be registered first.

        The options are those of :class:`CheckOptions`, given one by one or as one
        ``options=`` value (then none of the others).
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a health check needs a non-empty name")
        if not callable(check):
            raise TypeError(f"health check {name!r} must be callable")
        if options is None:
            try:
                options = CheckOptions(
                    timeout=timeout,
                    depends_on=depends_on,
                    severity=severity,
                    runbook=runbook,
                    failure_threshold=failure_threshold,
                    recovery_threshold=recovery_threshold,
                )
            except ValueError as error:
                raise ValueError(f"health check {name!r}: {error}") from None
        elif (timeout, runbook, failure_threshold, recovery_threshold) != (None,) * 4 or (
            severity != Severity.CRITICAL or depends_on != ()
        ):
            raise TypeError(
                f"health check {name!r}: options= holds every option of the check; "
                "give it alone, or the options one by one"
            )
        elif not isinstance(options, CheckOptions):
            raise TypeError(
                f"health check {name!r}: options= must be a CheckOptions, not {_shown(options)}"
            )
        self._add(name, check, options)
        return check

    def check(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        depends_on: Iterable[str] = (),
        severity: Severity | str = Severity.CRITICAL,
        runbook: str | Link | None = None,
        failure_threshold: int | None = None,
        recovery_threshold: int | None = None,
        options: CheckOptions | None = None,
    ) -> Callable[[CheckT], CheckT]:
        """Decorator form of :meth:`register`; the name defaults to the function's."""

        def decorate(fn: CheckT) -> CheckT:
            return self.register(
                name or str(getattr(fn, "__name__", None) or repr(fn)),
                fn,
                timeout=timeout,
                depends_on=depends_on,
                severity=severity,
                runbook=runbook,
                failure_threshold=failure_threshold,
                recovery_threshold=recovery_threshold,
                options=options,
            )

        return decorate

    @abstractmethod
    def _add(self, name: str, check: HealthCheck, options: CheckOptions) -> None:
        """Add the check ``name`` (valid, and callable); ``ValueError`` if it cannot be."""


class HealthMonitor(CheckRegistry):
    """Runs registered health checks and pages on transitions, not on every failure.

    ``failure_threshold`` consecutive failures open one alert (``alert_type``
    ``health_check``, identifier the check's name); ``recovery_threshold`` consecutive
    successes then resolve it. Checks are sync or async callables returning ``True`` or
    ``None`` when healthy and ``False`` when not; raising or exceeding the timeout is a
    failure with the error in the alert's details. Thread-safe.

    ``resolve_when_healthy`` (seconds, or ``None`` for automatic) covers several worker
    processes that each keep their own state: a worker that never saw the check fail
    cannot know that another one paged, so a healthy run sends the check's resolve
    anyway, at most once per that many seconds per worker (PagerDuty ignores a resolve
    for an alert that is not open). Automatic: 60 s when the process is recognised as one
    of several workers (:mod:`pd_integrations.workers`) and the state is in-process, else
    off (``0``). So once every worker has seen the check healthy, its alert is resolved.
    """

    def __init__(
        self,
        alerts: AlertManager,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        recovery_threshold: int = DEFAULT_RECOVERY_THRESHOLD,
        default_timeout: float = DEFAULT_TIMEOUT,
        component: str | None = None,
        environment: str | None = None,
        scrubber: Scrubber | None = DEFAULT_SCRUBBER,
        resolve_when_healthy: float | None = None,
    ) -> None:
        _threshold("failure_threshold", failure_threshold)
        _threshold("recovery_threshold", recovery_threshold)
        _seconds("default_timeout", default_timeout)
        self.alerts = alerts
        self.failure_threshold = failure_threshold
        self.recovery_threshold = recovery_threshold
        self.default_timeout = default_timeout
        self.component = component
        self.environment = env_vars.environment(environment)
        self._scrubber = scrubber
        self._checks: dict[str, _Check] = {}
        self._lock = threading.RLock()
        self._last_report: HealthReport | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if resolve_when_healthy is None:
            several = worker_server() is not None and alerts.state.decides_locally
            resolve_when_healthy = BLIND_RESOLVE_EVERY if several else 0.0
        self.resolve_when_healthy = resolve_when_healthy

    # -- registration -------------------------------------------------------------------

    def _add(self, name: str, check: HealthCheck, options: CheckOptions) -> None:
        options = options.with_defaults(
            timeout=self.default_timeout,
            failure_threshold=self.failure_threshold,
            recovery_threshold=self.recovery_threshold,
        )
        timeout, failures, successes = (
            options.timeout,
            options.failure_threshold,
            options.recovery_threshold,
        )
        # with_defaults left no None: the asserts only tell the type checker.
        assert timeout is not None
        assert failures is not None
        assert successes is not None
        with self._lock:
            if name in self._checks:
                raise ValueError(f"a health check named {name!r} is already registered")
            missing = [d for d in options.depends_on if d not in self._checks]
            if missing:
                # Registering dependencies first also makes cycles impossible.
                raise ValueError(
                    f"health check {name!r} depends on {', '.join(map(repr, missing))}, "
                    "which must be registered first"
                )
            level = 1 + max((self._checks[d].level for d in options.depends_on), default=-1)
            self._checks[name] = _Check(
                state_key=make_dedup_key(
                    HEALTH_CHECK_ALERT,
                    prefix=self.alerts.dedup_key_prefix,
                    component=self.component,
                    identifier=name,
                ),
                name=name,
                fn=check,
                options=options,
                timeout=timeout,
                failure_threshold=failures,
                recovery_threshold=successes,
                is_async=_is_async(check),
                level=level,
            )

    def options(self, name: str) -> CheckOptions:
        """The options check ``name`` runs with: as registered, this monitor's defaults
        filled in (no ``None`` left); ``KeyError`` if there is no such check."""
        with self._lock:
            return self._checks[name].options

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._checks)

    @property
    def last_report(self) -> HealthReport | None:
        """The most recent report, for endpoints that should not run checks per request."""
        return self._last_report

    # -- running ------------------------------------------------------------------------

    def run(self, *, alert: bool = True) -> HealthReport:
        """Run every check now (sync checks in threads, in parallel per dependency level).

        Async checks get an event loop of their own here; checks bound to the running
        application's loop should be run with :meth:`arun` instead. ``alert=False``
        only reports: no alert, and the failure/recovery counts do not move (for
        one-shot diagnostics, which cannot tell a blip from an outage).
        """
        outcomes: dict[str, _Outcome] = {}
        for level in self._levels():
            started: list[tuple[_Check, _Call | _Outcome]] = []
            for check in level:
                skipped = self._skip(check, outcomes)
                started.append((check, skipped or self._join(check)))
            for check, call in started:
                outcomes[check.name] = self._wait(check, call) if isinstance(call, _Call) else call
        return self._record(outcomes, alert=alert)

    async def arun(self, *, alert: bool = True) -> HealthReport:
        """Run every check on the running loop (sync checks in threads), in parallel.

        ``alert`` as for :meth:`run`.
        """
        outcomes: dict[str, _Outcome] = {}
        for level in self._levels():
            names = [check.name for check in level]
            results = await asyncio.gather(*(self._arun_one(check, outcomes) for check in level))
            outcomes.update(zip(names, results, strict=True))
        return self._record(outcomes, alert=alert)

    def start(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Run the checks every ``interval`` seconds on a daemon thread, starting now."""
        _seconds("interval", interval)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("this HealthMonitor is already running periodically")
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop,
                args=(interval, self._stop),
                name="pd_integrations-health",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop periodic runs; ``False`` if a run was still in progress after ``timeout``."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is None:
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    async def run_periodically(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Run the checks every ``interval`` seconds until cancelled (for lifespan tasks)."""
        _seconds("interval", interval)
        while True:
            try:
                await self.arun()
            except Exception:
                _log.exception("health checks failed to run")
            await asyncio.sleep(interval)

    def _loop(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run()
            except Exception:
                _log.exception("health checks failed to run")
            if stop.wait(interval):
                return

    # -- one check ------------------------------------------------------------------------

    def _levels(self) -> list[list[_Check]]:
        with self._lock:
            checks = list(self._checks.values())
        levels: list[list[_Check]] = []
        for check in checks:
            while len(levels) <= check.level:
                levels.append([])
            levels[check.level].append(check)
        return levels

    @staticmethod
    def _skip(check: _Check, outcomes: dict[str, _Outcome]) -> _Outcome | None:
        depends_on = check.options.depends_on
        if not depends_on:  # most checks: no list to build
            return None
        down = [d for d in depends_on if outcomes[d].status is not CheckStatus.HEALTHY]
        if not down:
            return None
        return _Outcome(CheckStatus.SKIPPED, 0.0, f"dependency down: {', '.join(down)}")

    def _join(self, check: _Check, *, in_loop: bool = False) -> _Call | _Outcome:
        """The call of ``check`` to wait for: the one in flight, else a new one.

        A call past its deadline and still running is a hung check: reported as such,
        never joined and never started again. ``in_loop``: an async run, which runs
        an async check as a task on its loop.
        """
        now = time.perf_counter()
        with self._lock:
            call = check.inflight
            if call is not None and call.joinable():
                if now >= call.deadline:
                    return _Outcome(
                        CheckStatus.UNHEALTHY,
                        now - call.started,
                        f"still running after timing out earlier (timeout {check.timeout:g}s)",
                    )
                if in_loop or call.loop is None or call.loop is not _running_loop():
                    call.waiters += 1
                    return call
                # A sync run blocking the very loop that runs the call would wait for
                # it in vain: this run gets a call of its own.
                call = _call_in_thread(check.fn, check.timeout)
                call.waiters += 1
                return call
            if in_loop and check.is_async:
                call = _call_as_task(check.fn, check.timeout)
            else:
                call = _call_in_thread(check.fn, check.timeout)
            call.waiters += 1
            check.inflight = call
        call.on_done(lambda: self._done(check, call))
        return call

    def _done(self, check: _Check, call: _Call) -> None:
        with self._lock:
            if check.inflight is call:
                check.inflight = None

    def _leave(self, call: _Call) -> None:
        """A waiter is through with ``call``; the last one to give up early cancels it."""
        with self._lock:
            call.waiters -= 1
            abandon = (
                call.waiters == 0
                and call.task is not None
                and not call.done.is_set()
                and time.perf_counter() < call.deadline
            )
            if abandon:
                call.abandoned = True
        if abandon and call.loop is not None and call.task is not None:
            # Every run waiting for it was cancelled (shutdown): so is the check.
            with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                call.loop.call_soon_threadsafe(call.task.cancel)

    def _wait(self, check: _Check, call: _Call) -> _Outcome:
        try:
            finished = call.done.wait(max(0.0, call.deadline - time.perf_counter()))
        finally:
            self._leave(call)
        return self._result(check, call) if finished else self._timed_out(check, call)

    async def _await_call(self, check: _Check, call: _Call) -> _Outcome:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            # The loop may have closed while the check hung: nobody is waiting then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set_done, waiter)

        try:
            call.on_done(wake)
            await asyncio.wait_for(waiter, max(0.0, call.deadline - time.perf_counter()))
        except TimeoutError:
            return self._timed_out(check, call)
        finally:
            self._leave(call)
        return self._result(check, call)

    async def _arun_one(self, check: _Check, outcomes: dict[str, _Outcome]) -> _Outcome:
        skipped = self._skip(check, outcomes)
        if skipped is not None:
            return skipped
        call = self._join(check, in_loop=True)
        if isinstance(call, _Outcome):
            return call
        return await self._await_call(check, call)

    def _result(self, check: _Check, call: _Call) -> _Outcome:
        return self._outcome(check, call.finished - call.started, call.result, call.error, call)

    def _timed_out(self, check: _Check, call: _Call) -> _Outcome:
        return _Outcome(
            CheckStatus.UNHEALTHY, check.timeout, f"timed out after {check.timeout:g}s", call
        )

    def _outcome(
        self,
        check: _Check,
        duration: float,
        result: object,
        error: BaseException | None,
        call: _Call,
    ) -> _Outcome:
        if isinstance(error, _CheckTimeout):
            return self._timed_out(check, call)
        reason = _error_text(error) if error is not None else _judge(result)
        if reason is None:
            return _Outcome(CheckStatus.HEALTHY, duration, call=call)
        if self._scrubber is not None:
            # The report may be served by a public endpoint: no credentials in it.
            reason = self._scrubber.scrub_text(reason)
        return _Outcome(CheckStatus.UNHEALTHY, duration, reason, call)

    # -- edge-triggered state -------------------------------------------------------------

    def _record(self, outcomes: dict[str, _Outcome], *, alert: bool = True) -> HealthReport:
        results: list[CheckResult] = []
        # Alerts are raised under the lock: AlertManager.alert only queues, and the order
        # of trigger and resolve must not be swapped by two concurrent runs.
        with self._lock:
            for name, check in self._checks.items():  # registration order, for the report
                outcome = outcomes.get(name)
                if outcome is None:
                    continue  # registered while this run was under way
                state = self._transition(check, outcome) if alert else None
                if state is None:
                    state = self._state(check)
                results.append(
                    CheckResult(
                        name=name,
                        status=outcome.status,
                        duration_ms=round(outcome.duration * 1000, 3),
                        severity=check.options.severity,
                        error=outcome.error,
                        alerting=state.down,
                        consecutive_failures=state.failures,
                    )
                )
            report = HealthReport(tuple(results), datetime.now(UTC), self._delivery())
            self._last_report = report
        return report

    def _delivery(self) -> DeliveryHealth | None:
        try:
            return self.alerts.health()
        except Exception:  # a report without it beats no report
            _log.exception("could not read the PagerDuty delivery health")
            return None

    def _state(self, check: _Check) -> HealthState:
        if not self.alerts.state.decides_locally:
            return check.known  # reading Redis here would stall the probe
        try:
            return self.alerts.state.health(check.state_key)
        except Exception:
            _log.exception("could not read the state of health check %r", check.name)
            return HealthState()

    def _transition(self, check: _Check, outcome: _Outcome) -> HealthState | None:
        """Count the run's call; ``None`` if it does not count.

        A skipped check's outage is the dependency's, not its own; a call already
        counted for another run that shared it is one result, not one per run.
        """
        if outcome.status is CheckStatus.SKIPPED:
            return None
        if outcome.call is not None:
            if outcome.call.counted:
                return None
            outcome.call.counted = True
        if not self.alerts.state.decides_locally:
            # Counted in the background, in the order of this process's runs, so a
            # trigger and its resolve keep theirs; the report shows the estimate.
            healthy = outcome.status is CheckStatus.HEALTHY
            check.known = self._estimate(check, check.known, (healthy,))
            check.unrecorded.append(healthy)
            self.alerts.in_background(functools.partial(self._observe, check, outcome))
            return check.known
        return self._observe(check, outcome)

    def _observe(self, check: _Check, outcome: _Outcome) -> HealthState:
        """Count the run in the state; the run that flipped it sends the event."""
        try:
            state = self.alerts.state.observe_health(
                check.state_key,
                outcome.status is CheckStatus.HEALTHY,
                check.failure_threshold,
                check.recovery_threshold,
            )
        except Exception:
            _log.exception("could not record the run of health check %r", check.name)
            with self._lock:
                if check.unrecorded:
                    check.unrecorded.popleft()
            return HealthState()
        with self._lock:  # the background thread's turn: a run may be recording meanwhile
            if check.unrecorded:
                check.unrecorded.popleft()
            # The state as of this run, and the runs of this process made since: an
            # older answer must not undo what later runs already counted.
            check.known = self._estimate(check, state, check.unrecorded)
            # The state tells only the run that flipped it, so one process sends the event.
            if state.edge is Edge.TRIGGER:
                self._trigger(check, outcome, state)
            elif state.edge is Edge.RESOLVE:
                self._resolve(check)
            elif not state.down and outcome.status is CheckStatus.HEALTHY:
                self._resolve_blind(check)
        return state

    @staticmethod
    def _estimate(check: _Check, state: HealthState, runs: Iterable[bool]) -> HealthState:
        for healthy in runs:
            state = next_health(state, healthy, check.failure_threshold, check.recovery_threshold)
        return HealthState(state.failures, state.successes, state.down)

    def _resolve_blind(self, check: _Check) -> None:
        """Resolve what another worker may have opened (``resolve_when_healthy``)."""
        every = self.resolve_when_healthy
        if not every or not self.alerts.enabled:
            return
        now = time.monotonic()
        if check.blind_resolve is not None and now - check.blind_resolve < every:
            return
        check.blind_resolve = now
        self._resolve(check)

    def _trigger(self, check: _Check, outcome: _Outcome, state: HealthState) -> None:
        details: dict[str, Any] = {
            "check": check.name,
            "error": outcome.error,
            "consecutive_failures": state.failures,
            "duration_ms": round(outcome.duration * 1000, 1),
            "timeout_s": check.timeout,
        }
        if check.options.depends_on:
            details["depends_on"] = list(check.options.depends_on)
        dependents = self._dependents(check.name)
        if dependents:
            details["dependents"] = dependents
        if self.environment:
            details["environment"] = self.environment
        first_line = (outcome.error or "unhealthy").splitlines()[0][:200]
        try:
            self.alerts.alert(
                f"Health check failed: {check.name} ({first_line})",
                check.options.severity,
                alert_type=HEALTH_CHECK_ALERT,
                component=self.component,
                identifier=check.name,
                custom_details=details,
                links=[check.options.runbook] if check.options.runbook else None,
            )
        except Exception:
            _log.exception("could not raise the alert for health check %r", check.name)

    def _resolve(self, check: _Check) -> None:
        try:
            self.alerts.resolve(check.state_key)
        except Exception:
            _log.exception("could not resolve the alert for health check %r", check.name)

    def _dependents(self, name: str) -> list[str]:
        """Every check that depends on ``name``, directly or not (they will be skipped)."""
        found: list[str] = []
        frontier = {name}
        for check in self._checks.values():  # registration order: dependencies come first
            if frontier.intersection(check.options.depends_on):
                found.append(check.name)
                frontier.add(check.name)
        return found


async def _call_async(fn: HealthCheck) -> object:
    value: object = fn()
    if inspect.isawaitable(value):
        value = await value
    return value


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
