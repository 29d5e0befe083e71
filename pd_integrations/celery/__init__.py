"""Celery: failure, time-limit, lost-worker and slow-task alerts for a Celery app.

::

    from celery import Celery
    from pd_integrations.celery import PagerDuty

    app = Celery("proj", broker="redis://localhost:6379/0")
    PagerDuty(app)  # PAGERDUTY_ROUTING_KEY from the environment, or routing_key=...

Connected only through Celery's public signals; every decision is the
:class:`~pd_integrations.celery.monitor.TaskMonitor`'s. See the "Celery" docs page.

Celery is imported when ``PagerDuty`` is first used, not by this package: the
``TaskMonitor`` needs no task queue, so any other queue's adapter (or the demo) imports
it without Celery installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .monitor import TaskInfo, TaskMonitor

if TYPE_CHECKING:
    from .integration import PagerDuty

__all__ = ["PagerDuty", "TaskInfo", "TaskMonitor"]


def __getattr__(name: str) -> Any:
    if name == "PagerDuty":
        from .integration import PagerDuty

        return PagerDuty
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
