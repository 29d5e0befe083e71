"""Fixtures for the Celery tests: an emulator, and eager Celery apps watched by PagerDuty."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery

from pd_integrations.celery import PagerDuty
from pd_integrations.emulator import Emulator
from pd_integrations.settings import SETTINGS

ROUTING_KEY = "celeryunittestroutingkey00000001"

MakeApp = Callable[..., tuple[Celery, PagerDuty]]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0) as running:
        yield running


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for setting in SETTINGS:
        for var in setting.env_vars:
            monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def make_app(emulator: Emulator, clean_env: pytest.MonkeyPatch) -> Iterator[MakeApp]:
    """An eager Celery app (tasks run in the caller) with PagerDuty, sending to the emulator."""
    made: list[PagerDuty] = []
    emulator.reset()

    def make(**settings: Any) -> tuple[Celery, PagerDuty]:
        app = Celery("pd-unit", set_as_current=False)
        app.conf.task_always_eager = True
        settings.setdefault("routing_key", ROUTING_KEY)
        settings.setdefault("events_base_url", emulator.url)
        pagerduty = PagerDuty(app, **settings)
        made.append(pagerduty)
        return app, pagerduty

    yield make
    for pagerduty in made:
        pagerduty.disconnect()
        if pagerduty.alerts is not None:
            pagerduty.alerts.close(5)


def sent(emulator: Emulator, pagerduty: PagerDuty, kind: str | None = None) -> list[dict[str, Any]]:
    """The events the emulator accepted, once everything queued was delivered."""
    assert pagerduty.alerts is not None
    assert pagerduty.alerts.flush(10)
    events = emulator.events()
    return [e for e in events if kind is None or e["type"] == kind]


def details(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = event["body"]["payload"]["custom_details"]
    return found
