from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pd_integrations.emulator import Emulator
from tests.clock import FakeClock

ROUTING_KEY = "emulatortestroutingkey0000000001"
OTHER_KEY = "emulatortestroutingkey0000000002"


def trigger_body(
    dedup_key: str | None = None,
    *,
    summary: str = "Disk full on db1",
    severity: str = "critical",
    routing_key: str = ROUTING_KEY,
    **payload: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {"summary": summary, "source": "db1", "severity": severity, **payload},
    }
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    return body


def action_body(action: str, dedup_key: str, routing_key: str = ROUTING_KEY) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}


def change_body(summary: str = "Deployed v42", **extra: Any) -> dict[str, Any]:
    return {"routing_key": ROUTING_KEY, "payload": {"summary": summary, **extra}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(port=0, seed=1234, clock=clock) as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=5.0) as http:
        yield http
