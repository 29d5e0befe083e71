"""Heartbeats: monitors for scheduled jobs that page when a run is missed, late or failing.

``monitors = Heartbeats(alerts)`` holds the monitors a process declares
(:meth:`Heartbeats.job`, :meth:`Heartbeats.add`) and reports their runs
(:meth:`Heartbeats.run`, :meth:`Heartbeats.check_in`). Every decision is made by
:mod:`.core` inside one atomic update of the shared store (:mod:`.store`), and only the
process whose update made a transition sends its trigger or resolve.

Missed and overrunning runs are noticed by a watchdog: a daemon thread in every process
that declared monitors (``watchdog=True``) or the ``pd-integrations watchdog`` command,
of which only the holder of the store's lease checks deadlines at a time. A watchdog
inside the system it watches cannot report that system being down as a whole.

Nothing here raises into the job or the app once the arguments are valid: a store or
delivery failure is logged and the job goes on.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from pd_integrations.alerts import AlertManager, make_dedup_key
from pd_integrations.events import Severity
from pd_integrations.fingerprint import fingerprint, message, type_name
from pd_integrations.state.base import routing_key_hash

from .core import (
    DEFAULT_GRACE,
    Action,
    MonitorSpec,
    MonitorState,
    Resolve,
    Trigger,
    check_slug,
    on_check_in,
    on_deadlines,
    on_declare,
)
from .schedule import make_schedule
from .store import HeartbeatStore, MemoryStore, Record, SQLiteStore, default_path

__all__ = ["HEARTBEAT_ALERT", "Heartbeats", "MonitorInfo"]

_log = logging.getLogger("pd_integrations.heartbeats")

HEARTBEAT_ALERT: Final = "heartbeat"
DEFAULT_WATCHDOG_INTERVAL: Final = 30.0
HEARTBEAT_FILE_VAR: Final = "PAGERDUTY_HEARTBEAT_FILE"
F = TypeVar("F", bound=Callable[..., Any])
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class MonitorInfo:
    """One monitor as ``pd-integrations monitors`` shows it."""

    spec: MonitorSpec
    state: MonitorState

    @property
    def status(self) -> str:
        if self.state.alert is not None:
            return self.state.alert
        if self.state.started is not None:
            return "running"
        return "ok" if self.state.last_check_in is not None else "waiting"


def _record(spec: MonitorSpec, state: MonitorState) -> Record:
    return {"spec": spec.to_dict(), "state": state.to_dict()}


class Heartbeats:
    """The monitors of scheduled jobs, shared with every process using the same store.

    :param alerts: where triggers and resolves go; default: built from the settings
        (the ``PAGERDUTY_*`` environment).
    :param state_url: a Redis URL shares check-ins across hosts (default: the alerts'
        settings, ``PAGERDUTY_STATE_URL``); without one, an SQLite file on this host.
    :param path: that SQLite file (default ``PAGERDUTY_HEARTBEAT_FILE``, else
        ``~/.local/state/pd_integrations/heartbeats.sqlite3``).
    :param store: a ready store instead (tests).
    :param watchdog: start a watchdog thread when the first monitor is declared.
    :param clock: wall-clock time in epoch seconds (tests pass a fake one).
    """

    def __init__(
        self,
        alerts: AlertManager | None = None,
        *,
        state_url: str | None = None,
        path: str | None = None,
        store: HeartbeatStore | None = None,
        watchdog: bool = True,
        watchdog_interval: float = DEFAULT_WATCHDOG_INTERVAL,
        clock: Clock = time.time,
    ) -> None:
        if alerts is None or (store is None and (state_url is None or path is None)):
            from pd_integrations.settings import load
            from pd_integrations.settings.build import build_alerts

            settings = load({}, origin="Heartbeats", ref=lambda setting: setting.name)
            for problem in settings.errors:
                _log.error("PagerDuty heartbeats: %s", problem)
            if alerts is None:
                alerts = build_alerts(settings)
            state_url = state_url if state_url is not None else settings.state_url
            # Not (yet) in the settings table: every setting there is also a web
            # middleware keyword, which this one is not.
            path = path if path is not None else os.environ.get(HEARTBEAT_FILE_VAR) or None
        self.alerts = alerts
        if store is None:
            key = alerts.dispatcher.client.routing_key if alerts.dispatcher else ""
            namespace = f"{routing_key_hash(key)}:{alerts.dedup_key_prefix or ''}"
            store = open_store(state_url, path, namespace)
        self.store = store
        self._clock = clock
        self._specs: dict[str, MonitorSpec] = {}
        self._watchdog = watchdog
        self.watchdog_interval = watchdog_interval
        self._owner = uuid.uuid4().hex
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Heartbeats monitors={sorted(self._specs)} store={self.store.description}>"

    # -- declaring ---------------------------------------------------------------------

    def add(
        self,
        slug: str,
        schedule: str | None = None,
        *,
        interval: float | None = None,
        timezone: str | None = None,
        grace: float | None = None,
        max_runtime: float | None = None,
        failure_threshold: int = 1,
        recovery_threshold: int = 1,
        severity: Severity | str = Severity.ERROR,
    ) -> MonitorSpec:
        """Declare a monitor (again); ``ValueError`` for a bad schedule or option."""
        spec = MonitorSpec(
            check_slug(slug),
            make_schedule(schedule, interval=interval, timezone=timezone),
            grace=DEFAULT_GRACE if grace is None else grace,
            max_runtime=max_runtime,
            failure_threshold=failure_threshold,
            recovery_threshold=recovery_threshold,
            severity=cast(Severity, severity),
        )
        self._specs[slug] = spec
        now = self._clock()

        def declare(record: Record | None) -> tuple[Record, None]:
            state = MonitorState.from_dict(record["state"]) if record else None
            if (
                record is not None
                and record.get("spec", {}).get("schedule") != spec.to_dict()["schedule"]
            ):
                # A new schedule: the start waited for is the new schedule's next one.
                state = (
                    None if state is None else MonitorState(**{**state.to_dict(), "expected": None})
                )
            return _record(spec, on_declare(spec, state, now)), None

        self._safely(f"declaring monitor {slug}", lambda: self.store.transact(slug, declare))
        if self._watchdog:
            self.start_watchdog()
        return spec

    def job(self, slug: str, schedule: str | None = None, **options: Any) -> Callable[[F], F]:
        """Decorate a job function: each call is a run of monitor ``slug``."""
        self.add(slug, schedule, **options)

        def decorate(function: F) -> F:
            if inspect.iscoroutinefunction(function):

                @functools.wraps(function)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    with self.run(slug):
                        return await function(*args, **kwargs)

                return cast(F, run_async)

            @functools.wraps(function)
            def run(*args: Any, **kwargs: Any) -> Any:
                with self.run(slug):
                    return function(*args, **kwargs)

            return cast(F, run)

        return decorate

    # -- checking in -------------------------------------------------------------------

    @contextlib.contextmanager
    def run(self, slug: str) -> Iterator[None]:
        """A run of ``slug``: ``in_progress`` now, then ``ok``, or ``error`` (re-raised)."""
        self.check_in(slug, "in_progress")
        try:
            yield
        except BaseException as error:
            details = {
                "exception": type_name(error),
                "message": message(error),
                "fingerprint": fingerprint(error).readable,
            }
            self.check_in(slug, "error", details=details)
            raise
        self.check_in(slug, "ok")

    def check_in(
        self, slug: str, status: str = "ok", *, details: dict[str, Any] | None = None
    ) -> None:
        """Report a run of ``slug``: ``in_progress`` (started), ``ok`` or ``error`` (ended).

        ``ValueError`` for an unknown status or a monitor declared nowhere; a failure to
        reach the store or PagerDuty is logged, never raised.
        """
        if status not in ("ok", "in_progress", "error"):
            raise ValueError(f"status must be 'ok', 'in_progress' or 'error', not {status!r}")
        now = self._clock()
        known = self._specs.get(slug)

        def change(
            record: Record | None,
        ) -> tuple[Record | None, tuple[MonitorSpec, Action | None]]:
            spec = known or (MonitorSpec.from_dict(record["spec"]) if record else None)
            if spec is None:
                raise ValueError(f"no monitor named {slug!r} is declared (Heartbeats.add or job)")
            state = MonitorState.from_dict(record["state"]) if record else None
            new, action = on_check_in(spec, state, status, now, details)
            return _record(spec, new), (spec, action)

        try:
            spec, action = self.store.transact(slug, change)
        except ValueError:
            raise
        except Exception:
            _log.exception("PagerDuty heartbeats: could not record a check-in of %s", slug)
            return
        self._apply(spec, action)

    # -- deadlines -----------------------------------------------------------------------

    def check(self, now: float | None = None) -> list[tuple[str, Action]]:
        """Check every monitor of the store for missed and overrunning runs; send what is due."""
        moment = self._clock() if now is None else now
        done: list[tuple[str, Action]] = []
        slugs = self._safely("listing monitors", self.store.slugs) or []
        for slug in slugs:
            result = self._safely(
                f"checking monitor {slug}", functools.partial(self._deadlines, slug, moment)
            )
            if result is not None and result[1] is not None:
                self._apply(result[0], result[1])
                done.append((slug, result[1]))
        return done

    def _deadlines(self, slug: str, moment: float) -> tuple[MonitorSpec, Action | None] | None:
        def change(
            record: Record | None,
        ) -> tuple[Record | None, tuple[MonitorSpec, Action | None] | None]:
            if record is None:
                return None, None
            spec = MonitorSpec.from_dict(record["spec"])
            state, action = on_deadlines(spec, MonitorState.from_dict(record["state"]), moment)
            return (_record(spec, state) if action else None), (spec, action)

        return self.store.transact(slug, change)

    def watch_once(self, now: float | None = None) -> list[tuple[str, Action]] | None:
        """One watchdog round: ``None`` if another watchdog holds the lease."""
        moment = self._clock() if now is None else now
        ttl = max(3 * self.watchdog_interval, 5.0)
        leader = self._safely(
            "taking the watchdog lease", lambda: self.store.acquire_lease(self._owner, ttl, moment)
        )
        if not leader:
            return None
        return self.check(moment)

    def start_watchdog(self) -> None:
        """Start the watchdog thread (once); it stops with :meth:`close`."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._watch, name="pd-heartbeats-watchdog", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.watch_once()
            except Exception:  # pragma: no cover - watch_once already logs
                _log.exception("PagerDuty heartbeats: watchdog round failed")
            self._stop.wait(self.watchdog_interval)

    def close(self) -> None:
        """Stop the watchdog and give its lease up; the alert manager stays open."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)
        self._safely("releasing the watchdog lease", lambda: self.store.release_lease(self._owner))
        self.store.close()

    # -- reading -------------------------------------------------------------------------

    def monitors(self) -> list[MonitorInfo]:
        """Every monitor the store knows (declared by any process), by name."""
        found = []
        for slug in self.store.slugs():
            record = self.store.load(slug)
            if record is not None:
                found.append(
                    MonitorInfo(
                        MonitorSpec.from_dict(record["spec"]),
                        MonitorState.from_dict(record["state"]),
                    )
                )
        return found

    def dedup_key(self, slug: str) -> str:
        """The one dedup key of monitor ``slug``'s alerts."""
        return make_dedup_key(HEARTBEAT_ALERT, prefix=self.alerts.dedup_key_prefix, identifier=slug)

    # -- sending -------------------------------------------------------------------------

    def _apply(self, spec: MonitorSpec, action: Action | None) -> None:
        if action is None:
            return
        key = self.dedup_key(spec.slug)
        try:
            if isinstance(action, Trigger):
                # The store decided this transition: the manager's own memory of an
                # earlier alert on this key (maybe resolved by another process) must
                # not suppress it.
                self.alerts.mark_resolved(key)
                self.alerts.alert(
                    action.summary,
                    spec.severity,
                    alert_type=HEARTBEAT_ALERT,
                    identifier=spec.slug,
                    custom_details={"reason": action.reason, **action.details},
                )
            elif isinstance(action, Resolve):
                self.alerts.resolve(key)
        except Exception:
            _log.exception("PagerDuty heartbeats: could not send the alert of %s", spec.slug)

    def _safely(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception:
            _log.exception("PagerDuty heartbeats: failed %s", what)
            return None


def open_store(
    state_url: str | None, path: str | os.PathLike[str] | None, namespace: str
) -> HeartbeatStore:
    """Redis for a ``redis://``/``rediss://``/``unix://`` URL, ``memory://`` for memory,
    else the SQLite file ``path`` (default :func:`default_path`)."""
    if state_url and state_url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        from .store_redis import RedisStore  # the redis extra is optional: import late

        return RedisStore(state_url, namespace)
    if path is None and state_url and state_url.startswith("memory:"):
        return MemoryStore()
    return SQLiteStore(path if path is not None else default_path())
