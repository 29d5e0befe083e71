"""The Celery app the real-worker tests start ``celery worker`` on.

Configured by the environment the test gives the worker: ``PD_CELERY_BROKER`` (a Redis
URL), ``PD_CELERY_QUEUE`` (a queue of the test's own) and the ``PAGERDUTY_*`` settings.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis
from celery import Celery, Task

from pd_integrations.celery import PagerDuty

app = Celery("pd_worker_tests", broker=os.environ.get("PD_CELERY_BROKER", "memory://"))
app.conf.task_default_queue = os.environ.get("PD_CELERY_QUEUE", "celery")
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False
app.conf.worker_prefetch_multiplier = 1
pagerduty = PagerDuty(app)


@app.task(name="tests.flaky", bind=True, max_retries=2, default_retry_delay=0)
def flaky(self: Task, fail: bool) -> str:
    if fail:
        raise self.retry(exc=ConnectionError("upstream down"), countdown=0)
    return "ok"


@app.task(name="tests.hang")
def hang(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


@app.task(name="tests.too_long", time_limit=1)
def too_long() -> None:
    time.sleep(600)


@app.task(name="tests.fails_together")
def fails_together(kind: str, barrier: str) -> None:
    """Fail only once another run of this task is running too: two processes at once."""
    client = redis.Redis.from_url(os.environ["PD_CELERY_BROKER"])
    client.incr(barrier)
    deadline = time.monotonic() + 60
    while int(client.get(barrier) or 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    if kind == "key":
        raise KeyError("missing")
    raise LookupError("missing")


@app.task(name="tests.fails")
def fails() -> None:
    raise ValueError("fails")
