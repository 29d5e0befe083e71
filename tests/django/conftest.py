"""Fixtures for tests/django, which run under pytest-django.

pytest-django configures Django once per run from ``tests.django.settings``
(``DJANGO_SETTINGS_MODULE`` in pyproject.toml). A test changes settings with
pytest-django's ``settings`` fixture (``settings.PAGERDUTY = {...}``), or with
:func:`pagerduty` for part of a test; either way the adapter's runtime is rebuilt
(a ``setting_changed`` receiver). Here every test also gets an environment without the
developer's ``PAGERDUTY_*`` variables and a fresh runtime, and pytest-django's clients
are made to answer like a server: a view's exception becomes the 500 page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient, Client, override_settings

from pd_integrations import environment
from pd_integrations.django import runtime
from pd_integrations.settings import SETTINGS
from pd_integrations.testing import CapturedEvents

# Variables the adapter reads: a developer's own must not leak into the tests.
ENV_VARS = (
    *environment.ROUTING_KEY_VARS,
    environment.EVENTS_BASE_URL_VAR,
    environment.APP_NAME_VAR,
    environment.APP_ENV_VAR,
    environment.APP_URL_VAR,
    environment.STATE_URL_VAR,
    environment.SPOOL_VAR,
    environment.FLUSH_TIMEOUT_VAR,
    *(var for setting in SETTINGS for var in setting.env_vars),
)
ROUTING_KEY = "djangoadaptertestroutingkey00001"


@pytest.fixture(autouse=True)
def adapter_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(environment.APP_NAME_VAR, "django-tests")
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
def client(client: Client) -> Client:
    """pytest-django's ``client``; it re-raises a view's exception by default, a server does not."""
    client.raise_request_exception = False
    return client


@pytest.fixture
def async_client(async_client: AsyncClient) -> AsyncClient:
    """pytest-django's ``async_client``, answering like a server (see ``client``).

    Drive it with ``asyncio.run(async_client.get(...))``: the request is served under ASGI.
    """
    async_client.raise_request_exception = False
    return async_client


def pagerduty(**values: Any) -> override_settings:
    """``override_settings(PAGERDUTY=...)`` for part of a test; the runtime is rebuilt
    inside and after it. For a whole test, set ``settings.PAGERDUTY`` instead."""
    return override_settings(PAGERDUTY=values)
