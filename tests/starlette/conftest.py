from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pd_integrations import AlertManager
from pd_integrations.testing import CapturedEvents
from tests.clock import FakeClock
from tests.spec import assert_valid_event

from .apps import FLAVOURS, Flavour


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", rate_limit=None)
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture(autouse=True)
def no_slow_threshold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A middleware given no threshold has none, whatever the shell running the tests set."""
    monkeypatch.delenv("PAGERDUTY_SLOW_REQUEST_MS", raising=False)


@pytest.fixture
def clock() -> FakeClock:
    """The clock the middleware times requests by, moved only by the app's slow views."""
    return FakeClock()


@pytest.fixture(params=FLAVOURS, ids=[f.name for f in FLAVOURS])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    result: Flavour = request.param
    return result


def valid_triggers(events: CapturedEvents) -> list[dict[str, Any]]:
    """Every trigger sent, each checked against PagerDuty's schema and limits."""
    triggers = events.triggers
    for event in triggers:
        assert_valid_event(event.pop("_path"), event)
    return triggers
