"""Heartbeat monitors for scheduled jobs: page PagerDuty when a run is missed, late or failing.

``from pd_integrations.heartbeats import Heartbeats``; see :mod:`.monitors` for the
contract, :mod:`.core` for the rules, :mod:`.store` for where check-ins are shared.
Cron schedules need the ``heartbeats`` extra (``cronsim``); intervals need nothing.
"""

from __future__ import annotations

from .core import STATUSES, MonitorSpec, MonitorState, Resolve, Trigger
from .monitors import HEARTBEAT_ALERT, Heartbeats, MonitorInfo
from .schedule import CronSchedule, IntervalSchedule, Schedule
from .store import HeartbeatStore, MemoryStore, SQLiteStore

__all__ = [
    "HEARTBEAT_ALERT",
    "STATUSES",
    "CronSchedule",
    "HeartbeatStore",
    "Heartbeats",
    "IntervalSchedule",
    "MemoryStore",
    "MonitorInfo",
    "MonitorSpec",
    "MonitorState",
    "Resolve",
    "SQLiteStore",
    "Schedule",
    "Trigger",
]
