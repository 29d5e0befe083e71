"""RQ: page when a job fails for good, times out or loses its work-horse; resolve on success.

Use the worker class, ``rq worker -w pd_integrations.rq.Worker``, or only the exception
handler, ``Worker(queues, exception_handlers=[pd_integrations.rq.exception_handler])``:

- a job whose retries (``Retry(max=N)``) are used up, or that had none, raises one alert
  per (function, exception fingerprint); a failure that RQ will retry sends nothing;
- a job timeout (``JobTimeoutException``) is such a failure;
- a work-horse killed (SIGKILL, the OOM killer) is noticed by the parent worker, which
  alerts (``Worker`` only: the horse can no longer say anything);
- the function's next successful run resolves its open failure alerts (``Worker``
  only; with the bare handler they resolve after ``auto_resolve_after``).

The work-horse ends with ``os._exit``, so no exit handler of it runs: an alert raised in
it is delivered before the horse goes on (a bounded ``flush``). Which alerts are open is
kept in RQ's own Redis (one set per function), so that the horses of every worker page
once per (function, fingerprint), not once per failure.

Settings come from the environment (``PAGERDUTY_ROUTING_KEY``...), or from
:func:`configure`. Nothing here raises into RQ: a failure to alert is logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from rq import Worker as _RQWorker
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException

from .alerts import AlertManager, make_dedup_key
from .events import Severity
from .fingerprint import fingerprint, message, trimmed_stack, type_name
from .scrub import DEFAULT_SCRUBBER

__all__ = ["RQ_ALERT", "Worker", "configure", "exception_handler", "work_horse_killed_handler"]

_log = logging.getLogger("pd_integrations.rq")

RQ_ALERT: Final = "rq_job"
OPEN_KEY_PREFIX: Final = "pd_integrations:rq:open:"
OPEN_TTL_SECONDS: Final = 7 * 24 * 3600
DEFAULT_FLUSH_TIMEOUT: Final = 5.0
MAX_ARGS = 500

_lock = threading.Lock()
_alerts: AlertManager | None = None
_severity = Severity.ERROR
_flush_timeout = DEFAULT_FLUSH_TIMEOUT


def configure(
    alerts: AlertManager | None = None,
    *,
    severity: Severity | str = Severity.ERROR,
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
) -> None:
    """Use ``alerts`` (default: built from the settings) and ``severity`` for RQ jobs."""
    global _alerts, _severity, _flush_timeout
    with _lock:
        _alerts, _severity, _flush_timeout = alerts, Severity.parse(severity), flush_timeout


def _manager() -> AlertManager:
    global _alerts
    with _lock:
        if _alerts is None:
            from pd_integrations.settings.build import build_alerts

            from .settings import load

            settings = load({}, origin="the environment", ref=lambda setting: setting.env_var)
            for problem in settings.errors:
                _log.error("PagerDuty RQ: %s", problem)
            _alerts = build_alerts(settings)
        return _alerts


def _func_name(job: Job) -> str:
    try:
        return str(job.func_name)
    except Exception:  # an undeserialisable job still fails for good
        return "<unknown function>"


def _retried(job: Job) -> bool:
    """Will RQ run ``job`` again? Asked before or after RQ decided, depending on version."""
    status = job.get_status(refresh=True)
    if status == JobStatus.STARTED:  # not decided yet (RQ 2, and a killed horse)
        retries = job.retries_left
        return bool(retries and retries > 0)
    return status != JobStatus.FAILED


def _details(job: Job, worker: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "job_id": job.id,
        "function": _func_name(job),
        "queue": job.origin,
        "worker": worker,
    }
    try:
        details["args"] = DEFAULT_SCRUBBER.scrub_text(repr(job.args))[:MAX_ARGS]
        details["kwargs"] = DEFAULT_SCRUBBER.scrub_text(repr(job.kwargs))[:MAX_ARGS]
    except Exception:  # noqa: S110 - arguments that cannot be read are left out
        pass
    return details


def _raise(
    job: Job, summary: str, identifier: str, details: dict[str, Any], *, flush: bool
) -> None:
    """Alert once per (function, identifier) while it is open, across every worker."""
    alerts = _manager()
    function = _func_name(job)
    key = OPEN_KEY_PREFIX + function
    dedup_key = make_dedup_key(
        RQ_ALERT, prefix=alerts.dedup_key_prefix, component=function, identifier=identifier
    )
    with job.connection.pipeline() as pipe:
        pipe.sadd(key, dedup_key)
        pipe.expire(key, OPEN_TTL_SECONDS)
        added, _ = pipe.execute()
    if not added:
        return  # already open: another failure of the same bug
    alerts.alert(
        summary,
        _severity,
        alert_type=RQ_ALERT,
        component=function,
        identifier=identifier,
        custom_details=details,
    )
    if flush:
        alerts.flush(_flush_timeout)


def report_failure(job: Job, error: BaseException, worker: str | None = None) -> None:
    """Alert if ``job`` failed for good with ``error`` (a retry sends nothing)."""
    if _retried(job):
        return
    found = fingerprint(error)
    timed_out = isinstance(error, JobTimeoutException)
    kind = "timed out" if timed_out else "failed"
    summary = f"RQ job {_func_name(job)} {kind}: {type_name(error)}: {message(error, 200)}"
    details = {
        **_details(job, worker),
        "exception": type_name(error),
        "message": message(error),
        "fingerprint": found.readable,
        "stack": trimmed_stack(error),
    }
    _raise(job, summary, found.digest, details, flush=True)


def report_killed(job: Job, ret_val: int | None, worker: str | None = None) -> None:
    """Alert for a work-horse that died running ``job`` (unless RQ retries it)."""
    if _retried(job):
        return
    summary = f"RQ job {_func_name(job)} lost: its work-horse was terminated (status {ret_val})"
    details = {**_details(job, worker), "waitpid_status": ret_val}
    _raise(job, summary, "work-horse-killed", details, flush=True)


def report_success(job: Job) -> None:
    """Resolve the open failure alerts of ``job``'s function."""
    key = OPEN_KEY_PREFIX + _func_name(job)
    connection = job.connection
    open_keys = connection.smembers(key)
    if not open_keys:
        return
    alerts = _manager()
    for raw in open_keys:
        dedup_key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if connection.srem(key, raw):
            alerts.resolve(dedup_key)
    alerts.flush(_flush_timeout)


def exception_handler(job: Job, exc_type: Any, exc_value: Any, traceback: Any) -> bool:
    """An RQ exception handler: alerts on a final failure; lets the next handlers run."""
    try:
        if isinstance(exc_value, BaseException):
            report_failure(job, exc_value)
    except Exception:
        _log.exception("PagerDuty RQ: could not alert on job %s", getattr(job, "id", "?"))
    return True


def work_horse_killed_handler(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
    """RQ's ``work_horse_killed_handler``: alerts for a killed horse (runs in the worker)."""
    try:
        report_killed(job, ret_val)
    except Exception:
        _log.exception("PagerDuty RQ: could not alert on job %s", getattr(job, "id", "?"))


class Worker(_RQWorker):
    """An RQ worker that alerts on failures, killed work-horses and timeouts, and resolves.

    ``rq worker -w pd_integrations.rq.Worker``. Its exception handler is added after the
    ones given, so they run first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        handlers = list(kwargs.get("exception_handlers") or ())
        if exception_handler not in handlers:
            handlers.append(exception_handler)
        kwargs["exception_handlers"] = handlers
        super().__init__(*args, **kwargs)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]
        try:
            report_killed(job, ret_val, self.name)
        except Exception:
            _log.exception("PagerDuty RQ: could not alert on job %s", job.id)

    def handle_job_success(self, job: Job, *args: Any, **kwargs: Any) -> None:
        # RQ's own arguments after the job differ between releases: passed on as they come.
        super().handle_job_success(job, *args, **kwargs)
        try:
            report_success(job)
        except Exception:
            _log.exception("PagerDuty RQ: could not resolve the alerts of job %s", job.id)
