"""Django settings for tests/django: pytest-django loads them (DJANGO_SETTINGS_MODULE)."""

from __future__ import annotations

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django.urls"
INSTALLED_APPS = ["pd_integrations.django"]
MIDDLEWARE = [
    "pd_integrations.django.middleware.PagerDutyMiddleware",
    "tests.django.middleware.InnerExplodingMiddleware",
]
DATABASES: dict[str, object] = {}
USE_TZ = True
PAGERDUTY: dict[str, object] = {}
