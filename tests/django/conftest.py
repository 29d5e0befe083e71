"""Django for this directory: configured once per process, applied per test.

Django can be configured only once per process, and another test directory (the
Django example project) may have done it first. So Django is configured here only if
nobody did, and every test runs under ``override_settings`` with the settings of
``tests/django/settings.py`` that differ from those in effect: whichever directory
configured Django, each one's tests see their own settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import AsyncClient, Client, override_settings

from pd_integrations import config
from pd_integrations.django import runtime
from pd_integrations.settings import SETTINGS
from pd_integrations.testing import CapturedEvents

from . import settings as test_settings

TEST_SETTINGS: dict[str, Any] = {
    name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()
}
# Variables the adapter reads: a developer's own must not leak into the tests.
ENV_VARS = (
    *config.ROUTING_KEY_VARS,
    config.EVENTS_BASE_URL_VAR,
    config.APP_NAME_VAR,
    config.APP_ENV_VAR,
    config.APP_URL_VAR,
    config.STATE_URL_VAR,
    config.SPOOL_VAR,
    config.FLUSH_TIMEOUT_VAR,
    *(var for setting in SETTINGS for var in setting.env_vars),
)
ROUTING_KEY = "djangoadaptertestroutingkey00001"

if not settings.configured:
    settings.configure(**TEST_SETTINGS)
    django.setup()


# Applied per test; DATABASES is not (Django fills in a dummy "default" at startup).
APPLIED = ("ALLOWED_HOSTS", "DEBUG", "INSTALLED_APPS", "MIDDLEWARE", "PAGERDUTY", "ROOT_URLCONF")


def _differing() -> dict[str, Any]:
    missing = object()
    wanted = {name: TEST_SETTINGS[name] for name in APPLIED}
    return {k: v for k, v in wanted.items() if getattr(settings, k, missing) != v}


@pytest.fixture(autouse=True)
def django_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(config.APP_NAME_VAR, "django-tests")
    with override_settings(**_differing()):
        runtime.reset()
        yield
        runtime.reset()


@pytest.fixture
def events(pagerduty_events: CapturedEvents) -> Iterator[CapturedEvents]:
    """``pagerduty_events``, with the runtime rebuilt inside it and closed before it ends."""
    runtime.reset()
    yield pagerduty_events
    runtime.reset()


@pytest.fixture
def client() -> Client:
    # The test client re-raises a view's exception by default; a server does not.
    return Client(raise_request_exception=False)


@pytest.fixture
def async_client() -> AsyncClient:
    """Drive it with ``asyncio.run(async_client.get(...))``: the request is served under ASGI."""
    return AsyncClient(raise_request_exception=False)


def pagerduty(**values: Any) -> override_settings:
    """``override_settings(PAGERDUTY=...)``: the runtime is rebuilt inside and after it."""
    return override_settings(PAGERDUTY=values)
