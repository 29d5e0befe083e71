from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pd_integrations import AlertManager
from pd_integrations.testing import CapturedEvents
from tests.spec import assert_valid_event

from .apps import FLAVOURS, Flavour


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", rate_limit=None)
    try:
        yield manager
    finally:
        manager.close()


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
