"""Settings for mysite: SQLite, no Celery, PagerDuty through ``pd_integrations.django``.

The routing key is not in this file: ``pd_integrations`` reads ``PAGERDUTY_ROUTING_KEY``
from the environment (in tests, the ``pagerduty_events`` fixture sets a test key).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "mysite-development-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "pd_integrations.django",
    "orders",
]

MIDDLEWARE = [
    # First, so the whole request is timed.
    "pd_integrations.django.middleware.PagerDutyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

# pytest-django creates a separate test database (in memory for SQLite) for the tests
# marked django_db; this file is only used by runserver and migrate.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

PAGERDUTY = {
    "SOURCE": "mysite",
    "SLOW_REQUEST_MS": 2000,
    "RUNBOOKS": {"exception": "https://runbooks.example.com/mysite/errors"},
}
