"""Celery: failure, time-limit, lost-worker and slow-task alerts for a Celery app.

::

    from celery import Celery
    from pd_integrations.celery import PagerDuty

    app = Celery("proj", broker="redis://localhost:6379/0")
    PagerDuty(app)  # PAGERDUTY_ROUTING_KEY from the environment, or routing_key=...

Connected only through Celery's public signals; every decision is the
:class:`~pd_integrations.celery.monitor.TaskMonitor`'s. See the "Celery" docs page.
"""

from __future__ import annotations

from .integration import PagerDuty
from .monitor import TaskInfo, TaskMonitor

__all__ = ["PagerDuty", "TaskInfo", "TaskMonitor"]
