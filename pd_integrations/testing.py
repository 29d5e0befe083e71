"""Test your own alerting: capture every event the library would send, with no network.

Installed as a pytest plugin (entry point ``pytest11``), so in any project that has
pd_integrations installed a test can ask for the ``pagerduty_events`` fixture::

    def test_checkout_error_pages(client, pagerduty_events):
        client.get("/checkout")
        (event,) = pagerduty_events.triggers
        assert event["payload"]["severity"] == "critical"

While the fixture is active every :class:`~pd_integrations.AlertManager` captures what
it sends, whenever it was created and whether or not a routing key was configured, so
a test gives the same result on a laptop with ``PAGERDUTY_ROUTING_KEY`` in the shell
and in CI without it:

- every Events API client answers through :func:`~pd_integrations.client.route_events`
  with a local ``202``, so nothing reaches the network and the library's delivery path
  (dispatcher, retries, rate budget) runs as in production;
- a manager built without a routing key (disabled, such as a module-level
  ``AlertManager.from_env()`` imported where no key is set) reports each event it would
  have sent as dropped with reason ``"disabled"`` (:mod:`pd_integrations.signals`); the
  fixture records those as if they were sent with the test routing key;
- ``PAGERDUTY_ROUTING_KEY`` is set to a test key (unless one is set), so managers
  created during the test are enabled;
- the open alerts of every live manager are forgotten and every rate budget in the
  process is reset, so each test starts clean and a whole suite never waits for the
  120-events-per-minute budget (a single test that sends more than that to one key
  waits, as production would).

Outside pytest, :func:`capture_events` does the same as a context manager.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from pd_integrations import environment
from pd_integrations.delivery import dispatcher, ratelimit

from . import signals
from .alerts import live_managers
from .client import route_events
from .errors import PagerDutyError
from .events import ChangeEvent, Event, encode_event
from .scrub import DEFAULT_SCRUBBER

TEST_ROUTING_KEY = "pdintegrationstestroutingkey0001"
FLUSH_TIMEOUT = 5.0

_log = logging.getLogger("pd_integrations.testing")


class CapturedEvents:
    """The events sent while capturing, as the JSON bodies PagerDuty would receive.

    Reading any of the event lists first waits for background delivery to finish, so a
    test can assert right after the code under test returns.
    """

    routing_key = TEST_ROUTING_KEY

    def __init__(self, *, keyless_managers: bool = True) -> None:
        # Whether managers without a routing key count as sending with the test key.
        self._keyless_managers = keyless_managers
        self._bodies: list[dict[str, Any]] = []

    def _record(self, path: str, body: dict[str, Any]) -> None:
        self._bodies.append({**body, "_path": path})

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait for every dispatcher to deliver what is queued."""
        return all(d.flush(timeout) for d in list(dispatcher._live))

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


# Every capture in progress records every event (captures may nest).
_active: list[CapturedEvents] = []


def _record(path: str, body: bytes, *, keyless: bool = False) -> None:
    for captured in tuple(_active):
        if keyless and not captured._keyless_managers:
            continue
        # Decoded per capture, so one test's mutations cannot leak into another's copy.
        captured._record(path, json.loads(body))


def _answer(request: httpx.Request) -> httpx.Response:
    """Answer an Events API request as PagerDuty does when it accepts the event."""
    _record(request.url.path, request.content)
    if request.url.path == ChangeEvent.path:
        return httpx.Response(202, json={"status": "success", "message": "Change event processed"})
    body = json.loads(request.content)
    answer = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
    return httpx.Response(202, json=answer)


def _record_unsent(sender: object, event: Event, reason: str, **extra: Any) -> None:
    """Record what a manager without a routing key would have sent."""
    if reason != "disabled":
        return
    try:
        body = encode_event(event, TEST_ROUTING_KEY, scrubber=DEFAULT_SCRUBBER)
    except PagerDutyError as error:
        # An enabled manager would fail it the same way: nothing would be sent.
        _log.warning("a %s event would not be sent: %s", event.action, error)
        return
    _record(event.path, body, keyless=True)


def _reset_budgets() -> None:
    budgets = [d._budget for d in list(dispatcher._live)]
    budgets += list(ratelimit._shared.values())
    for budget in budgets:
        if budget is not None:
            budget.reset()


@contextmanager
def capture_events(*, set_routing_key: bool = True) -> Iterator[CapturedEvents]:
    """Capture the events of every manager and client in this process during the block.

    With ``set_routing_key=False`` the block studies the library without a key: managers
    without one stay disabled and what they drop is not captured.
    """
    captured = CapturedEvents(keyless_managers=set_routing_key)
    added_key = set_routing_key and environment.routing_key() is None
    if added_key:
        os.environ[environment.ROUTING_KEY_VARS[0]] = TEST_ROUTING_KEY
    for manager in live_managers():
        manager.forget_all()
    _reset_budgets()
    _active.append(captured)
    signals.event_dropped.connect(_record_unsent)
    try:
        with route_events(_answer):
            try:
                yield captured
            finally:
                # Inside the route: what is still queued must not reach the network.
                captured.flush()
    finally:
        _active.remove(captured)
        if not _active:
            signals.event_dropped.disconnect(_record_unsent)
        if added_key:
            os.environ.pop(environment.ROUTING_KEY_VARS[0], None)


@pytest.fixture
def pagerduty_events() -> Iterator[CapturedEvents]:
    """Every PagerDuty event sent during the test, captured instead of delivered."""
    with capture_events() as captured:
        yield captured
