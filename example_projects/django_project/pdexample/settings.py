"""Settings for the pdexample project: no database, PagerDuty from the environment.

The routing key and the events URL are not in this file: ``pd_integrations`` reads
``PAGERDUTY_ROUTING_KEY`` and ``PAGERDUTY_EVENTS_BASE_URL`` itself when
``PAGERDUTY`` has no ``ROUTING_KEY`` / ``EVENTS_BASE_URL``.
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "pdexample-development-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "pd_integrations.django",
    "pdexample.shop",
]

MIDDLEWARE = [
    # First, so the whole request is timed.
    "pd_integrations.django.middleware.PagerDutyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "pdexample.urls"
WSGI_APPLICATION = "pdexample.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
USE_TZ = True

PAGERDUTY = {
    "SOURCE": "pdexample-shop",
    "SLOW_REQUEST_MS": 1000,
    "SLOW_ROUTES": {
        # The CSV export is expected to take a while; it pages only past 10 s.
        "/export/orders.csv": 10_000,
    },
    "RUNBOOKS": {
        "exception": "https://runbooks.example.com/shop/errors",
        "slow_request": "https://runbooks.example.com/shop/latency",
    },
    "HEALTH_CHECKS": {
        "cache": "pdexample.shop.health.cache",
        "inventory": {
            "CHECK": "pdexample.shop.health.inventory",
            "TIMEOUT": 2,
            "RUNBOOK": "https://runbooks.example.com/shop/inventory",
        },
        "disk": {"CHECK": "pdexample.shop.health.disk", "SEVERITY": "warning"},
    },
}

# -- Celery (pdexample/celery.py reads every CELERY_* setting) ---------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Without a broker at hand, run the tasks in the caller: CELERY_TASK_ALWAYS_EAGER=1.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "") == "1"
CELERY_PAGERDUTY_SLOW_TASK_MS = 60_000
CELERY_PAGERDUTY_TASK_OVERRIDES = {
    # The sales report is expected to take a while; it warns only past 1 s here.
    "shop.build_sales_report": {"slow_task_ms": 1000},
    # A receipt that cannot be built means a customer is waiting: page urgently.
    "shop.email_receipt": {"severity": "critical"},
}
