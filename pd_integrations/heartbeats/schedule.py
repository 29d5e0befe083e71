"""When a monitored job is expected to start: a cron expression or a fixed interval.

A :class:`Schedule` answers one question, :meth:`Schedule.next_after`: the first expected
start strictly after a moment (epoch seconds, wall-clock time). Cron expressions are read
by ``cronsim`` (the ``heartbeats`` extra) in the schedule's time zone, so a job at
02:30 Europe/Berlin keeps running at 02:30 local time across daylight-saving changes;
intervals need nothing extra. Schedules are plain data (:meth:`Schedule.to_dict`), so a
watchdog in another process reads the same schedule the job declared.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "make_schedule", "schedule_from_dict"]


class Schedule(ABC):
    """The expected starts of a job."""

    @abstractmethod
    def next_after(self, moment: float) -> float:
        """The first expected start strictly after ``moment`` (epoch seconds)."""

    @abstractmethod
    def describe(self) -> str:
        """The schedule for people: ``every 900 s``, ``0 2 * * * (Europe/Berlin)``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The schedule as stored with its monitor (read back by ``schedule_from_dict``)."""


@dataclass(frozen=True, slots=True)
class IntervalSchedule(Schedule):
    """A run every ``seconds``, counted from the previous run's start."""

    seconds: float

    def __post_init__(self) -> None:
        if not (isinstance(self.seconds, int | float) and not isinstance(self.seconds, bool)):
            raise ValueError(f"interval must be a number of seconds, not {self.seconds!r}")
        if not 0 < self.seconds < math.inf:
            raise ValueError(f"interval must be a positive number of seconds, not {self.seconds}")

    def next_after(self, moment: float) -> float:
        return moment + self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g}s"

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.seconds}


@dataclass(frozen=True, slots=True)
class CronSchedule(Schedule):
    """A cron expression (5 fields, or 6 with seconds) read in ``timezone``."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone = _zone(self.timezone)
        try:
            from cronsim import CronSim, CronSimError
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "cron schedules need the cronsim package: pip install 'pd-integrations[heartbeats]'"
            ) from None
        try:
            CronSim(self.expression, datetime.now(zone))
        except CronSimError as error:
            raise ValueError(f"invalid cron expression {self.expression!r}: {error}") from None

    def next_after(self, moment: float) -> float:
        from cronsim import CronSim

        start = datetime.fromtimestamp(moment, UTC).astimezone(_zone(self.timezone))
        # cronsim yields times strictly after a whole-second start.
        return next(CronSim(self.expression, start.replace(microsecond=0))).timestamp()

    def describe(self) -> str:
        return f"{self.expression} ({self.timezone})"

    def to_dict(self) -> dict[str, Any]:
        return {"cron": self.expression, "timezone": self.timezone}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name like 'Europe/Berlin')"
        ) from None


def make_schedule(
    schedule: str | None = None, *, interval: float | None = None, timezone: str | None = None
) -> Schedule:
    """A schedule from exactly one of a cron ``schedule`` and an ``interval``; ValueError."""
    if (schedule is None) == (interval is None):
        raise ValueError("give exactly one of schedule= (a cron expression) and interval=")
    if interval is not None:
        if timezone is not None:
            raise ValueError("timezone= applies to cron schedules only")
        return IntervalSchedule(interval)
    if not isinstance(schedule, str) or not schedule.strip():
        raise ValueError(f"schedule must be a cron expression, not {schedule!r}")
    return CronSchedule(" ".join(schedule.split()), timezone or "UTC")


def schedule_from_dict(data: dict[str, Any]) -> Schedule:
    if "interval" in data:
        return IntervalSchedule(float(data["interval"]))
    return CronSchedule(str(data["cron"]), str(data.get("timezone", "UTC")))
