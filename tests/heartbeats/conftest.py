from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pd_integrations import AlertManager
from pd_integrations.heartbeats import Heartbeats, MemoryStore
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents, capture_events
from tests.clock import FakeClock

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    with capture_events() as captured:
        yield captured


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def alerts(events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(TEST_ROUTING_KEY, source="tests", state_url="memory://")
    yield manager
    manager.close()


@pytest.fixture
def monitors(alerts: AlertManager, clock: FakeClock) -> Iterator[Heartbeats]:
    heartbeats = Heartbeats(alerts, store=MemoryStore(), watchdog=False, clock=clock)
    yield heartbeats
    heartbeats.close()
