"""Test your own alerting: capture every event the library would send, with no network.

Installed as a pytest plugin (entry point ``pytest11``), so in any project that has
pd_integrations installed a test can ask for the ``pagerduty_events`` fixture::

    def test_checkout_error_pages(client, pagerduty_events):
        client.get("/checkout")
        (event,) = pagerduty_events.triggers
        assert event["payload"]["severity"] == "critical"

While the fixture is active every :class:`~pd_integrations.EventsClient` answers
locally instead of calling PagerDuty, ``PAGERDUTY_ROUTING_KEY`` is set to a test key
(unless the test already set one), and the open alerts of every live
:class:`~pd_integrations.AlertManager` are forgotten, so each test starts clean.
Outside pytest, :func:`capture_events` does the same as a context manager.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from . import client as client_module
from . import config, dispatch
from .alerts import live_managers

TEST_ROUTING_KEY = "pdintegrationstestroutingkey0001"
FLUSH_TIMEOUT = 5.0


class CapturedEvents:
    """The events sent while capturing, as the JSON bodies PagerDuty would receive.

    Reading any of the event lists first waits for background delivery to finish, so a
    test can assert right after the code under test returns.
    """

    routing_key = TEST_ROUTING_KEY

    def __init__(self) -> None:
        self._bodies: list[dict[str, Any]] = []

    def _record(self, path: str, body: dict[str, Any]) -> None:
        self._bodies.append({**body, "_path": path})

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait for every dispatcher to deliver what is queued."""
        return all(d.flush(timeout) for d in list(dispatch._live))

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event body, in the order it was sent (``_path`` tells the endpoint)."""
        self.flush()
        return [dict(body) for body in self._bodies]

    def _action(self, action: str) -> list[dict[str, Any]]:
        return [body for body in self.events if body.get("event_action") == action]

    @property
    def triggers(self) -> list[dict[str, Any]]:
        return self._action("trigger")

    @property
    def acknowledgements(self) -> list[dict[str, Any]]:
        return self._action("acknowledge")

    @property
    def resolves(self) -> list[dict[str, Any]]:
        return self._action("resolve")

    @property
    def changes(self) -> list[dict[str, Any]]:
        return [body for body in self.events if body["_path"] == "/v2/change/enqueue"]

    def for_dedup_key(self, dedup_key: str) -> list[dict[str, Any]]:
        return [body for body in self.events if body.get("dedup_key") == dedup_key]

    def summaries(self) -> list[str]:
        return [body["payload"]["summary"] for body in self.events if "payload" in body]

    def clear(self) -> None:
        self.flush()
        self._bodies.clear()

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.events[index]

    def __repr__(self) -> str:
        return f"<CapturedEvents {len(self._bodies)} events>"


@contextmanager
def capture_events(*, set_routing_key: bool = True) -> Iterator[CapturedEvents]:
    """Capture events sent by any client in this process for the duration of the block."""
    captured = CapturedEvents()
    added_key = set_routing_key and config.routing_key() is None
    if added_key:
        os.environ[config.ROUTING_KEY_VARS[0]] = TEST_ROUTING_KEY
    for manager in live_managers():
        manager.forget_all()
    client_module._capture_sinks.append(captured._record)
    try:
        yield captured
    finally:
        captured.flush()
        client_module._capture_sinks.remove(captured._record)
        if added_key:
            os.environ.pop(config.ROUTING_KEY_VARS[0], None)


@pytest.fixture
def pagerduty_events() -> Iterator[CapturedEvents]:
    """Every PagerDuty event sent during the test, captured instead of delivered."""
    with capture_events() as captured:
        yield captured
