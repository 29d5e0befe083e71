"""The shop's Celery app: tasks in ``pdexample.shop.tasks``, failures paged through PagerDuty.

Celery reads the ``CELERY_*`` Django settings (``namespace="CELERY"``), so the
PagerDuty task settings sit there too: ``CELERY_PAGERDUTY_SLOW_TASK_MS`` is
``app.conf.pagerduty_slow_task_ms``. The routing key comes from the environment, as
for the web app. Run a worker with ``celery -A pdexample worker``.
"""

from __future__ import annotations

import os

from celery import Celery

from pd_integrations.celery import PagerDuty

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdexample.settings")

app = Celery("pdexample")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["pdexample.shop"])
pagerduty = PagerDuty(app)
