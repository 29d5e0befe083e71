"""The heartbeat state machine, without I/O: check-ins and deadlines in, alert actions out.

Every function here takes the monitor's :class:`MonitorSpec`, its :class:`MonitorState`
and the time, and returns the new state plus at most one :class:`Action`. A store runs
them inside one atomic read-modify-write, so whichever process makes a transition (a
check-in, a watchdog noticing a deadline) is the only one that sends its trigger or
resolve, however many processes watch the same monitor.

- A run that has not started ``grace`` seconds after its expected start is *missed*.
- A run still going ``max_runtime`` seconds after it started is *overrunning*.
- ``failure_threshold`` failed runs in a row are *failing*.
- Each of those opens the monitor's one alert (one dedup key per monitor); it resolves
  once ``recovery_threshold`` runs in a row succeeded.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pd_integrations.events import Severity

from .schedule import Schedule, schedule_from_dict

__all__ = [
    "STATUSES",
    "Action",
    "MonitorSpec",
    "MonitorState",
    "Resolve",
    "Status",
    "Trigger",
    "check_slug",
    "on_check_in",
    "on_deadlines",
    "on_declare",
]

Status = Literal["ok", "in_progress", "error"]
STATUSES: Final[tuple[str, ...]] = ("ok", "in_progress", "error")
DEFAULT_GRACE: Final = 60.0
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def check_slug(slug: object) -> str:
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise ValueError(f"a monitor's name must be 1-128 letters, digits and _.:- (not {slug!r})")
    return slug


def _seconds_or_none(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _threshold(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """What a monitor expects: plain data, shared with every process through the store."""

    slug: str
    schedule: Schedule
    grace: float = DEFAULT_GRACE
    max_runtime: float | None = None
    failure_threshold: int = 1
    recovery_threshold: int = 1
    severity: Severity = Severity.ERROR

    def __post_init__(self) -> None:
        check_slug(self.slug)
        if not isinstance(self.schedule, Schedule):
            raise ValueError(f"schedule must be a Schedule, not {self.schedule!r}")
        grace = _seconds_or_none("grace", self.grace)
        object.__setattr__(self, "grace", grace if grace is not None else DEFAULT_GRACE)
        object.__setattr__(self, "max_runtime", _seconds_or_none("max_runtime", self.max_runtime))
        _threshold("failure_threshold", self.failure_threshold)
        _threshold("recovery_threshold", self.recovery_threshold)
        object.__setattr__(self, "severity", Severity.parse(self.severity))

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "schedule": self.schedule.to_dict(),
            "grace": self.grace,
            "max_runtime": self.max_runtime,
            "failure_threshold": self.failure_threshold,
            "recovery_threshold": self.recovery_threshold,
            "severity": self.severity.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorSpec:
        return cls(
            data["slug"],
            schedule_from_dict(data["schedule"]),
            grace=data.get("grace", DEFAULT_GRACE),
            max_runtime=data.get("max_runtime"),
            failure_threshold=data.get("failure_threshold", 1),
            recovery_threshold=data.get("recovery_threshold", 1),
            severity=data.get("severity", Severity.ERROR.value),
        )


@dataclass(frozen=True, slots=True)
class MonitorState:
    """What has happened: the shared record of one monitor's check-ins and alert."""

    expected: float | None = None
    """The next start waited for (epoch seconds)."""
    started: float | None = None
    """When the run in progress started; ``None`` when none is running."""
    last_check_in: float | None = None
    last_status: str | None = None
    last_ok: float | None = None
    failures: int = 0
    successes: int = 0
    alert: str | None = None
    """Why the monitor's alert is open (``missed``, ``overrun``, ``failed``), or ``None``."""
    missed_for: float | None = None
    overrun_for: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorState:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True, slots=True)
class Trigger:
    reason: Literal["missed", "overrun", "failed"]
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolve:
    reason: str


Action = Trigger | Resolve


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


def _details(spec: MonitorSpec, state: MonitorState) -> dict[str, Any]:
    return {
        "monitor": spec.slug,
        "schedule": spec.schedule.describe(),
        "grace_seconds": spec.grace,
        "max_runtime_seconds": spec.max_runtime,
        "expected_start": _iso(state.expected),
        "last_check_in": _iso(state.last_check_in),
        "last_status": state.last_status,
        "last_success": _iso(state.last_ok),
        "failures_in_a_row": state.failures,
    }


def on_declare(spec: MonitorSpec, state: MonitorState | None, now: float) -> MonitorState:
    """A monitor declared (again): wait for its next start from now if nothing is known."""
    if state is None:
        return MonitorState(expected=spec.schedule.next_after(now))
    if state.expected is None and state.started is None:
        return replace(state, expected=spec.schedule.next_after(now))
    return state


def on_check_in(
    spec: MonitorSpec,
    state: MonitorState | None,
    status: str,
    now: float,
    details: dict[str, Any] | None = None,
) -> tuple[MonitorState, Action | None]:
    """A run started (``in_progress``), succeeded (``ok``) or failed (``error``)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    state = state or MonitorState()
    if status == "in_progress":
        return replace(
            state,
            started=now,
            expected=spec.schedule.next_after(now),
            last_check_in=now,
            last_status=status,
        ), None
    # A run's end. Without a start check-in before it, the run counts as starting now.
    expected = state.expected if state.started is not None else spec.schedule.next_after(now)
    state = replace(state, started=None, expected=expected, last_check_in=now, last_status=status)
    if status == "ok":
        state = replace(state, last_ok=now, failures=0, successes=state.successes + 1)
        if state.alert is not None and state.successes >= spec.recovery_threshold:
            return replace(state, alert=None), Resolve(f"{spec.slug} succeeded")
        return state, None
    state = replace(state, successes=0, failures=state.failures + 1)
    if state.failures >= spec.failure_threshold and state.alert != "failed":
        summary = f"Scheduled job {spec.slug} failed"
        if spec.failure_threshold > 1:
            summary += f" {state.failures} times in a row"
        info = {**_details(spec, state), **(details or {})}
        return replace(state, alert="failed"), Trigger("failed", summary, info)
    return state, None


def on_deadlines(
    spec: MonitorSpec, state: MonitorState | None, now: float
) -> tuple[MonitorState, Action | None]:
    """What the watchdog finds at ``now``: a run missed or overrunning, else nothing."""
    state = on_declare(spec, state, now)
    started = state.started
    if (
        started is not None
        and spec.max_runtime is not None
        and now >= started + spec.max_runtime
        and state.overrun_for != started
    ):
        summary = f"Scheduled job {spec.slug} still running after {spec.max_runtime:g}s"
        info = {**_details(spec, state), "started": _iso(started)}
        return replace(state, overrun_for=started, alert=state.alert or "overrun"), Trigger(
            "overrun", summary, info
        )
    expected = state.expected
    if (
        started is None
        and expected is not None
        and now >= expected + spec.grace
        and state.missed_for != expected
        and state.alert != "missed"
    ):
        summary = f"Scheduled job {spec.slug} missed its run due at {_iso(expected)}"
        return replace(state, missed_for=expected, alert="missed", successes=0), Trigger(
            "missed", summary, _details(spec, state)
        )
    return state, None
