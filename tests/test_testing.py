"""The pytest plugin: ``pagerduty_events`` captures whatever the app builds, anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pd_integrations import AlertManager, EventsClient, signals
from pd_integrations.delivery.dispatcher import Dispatcher
from pd_integrations.delivery.ratelimit import RateBudget, shared_budget
from pd_integrations.environment import ROUTING_KEY_VARS
from pd_integrations.events import Severity, TriggerEvent
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents, capture_events

from .spec import assert_valid_event

ROOT = Path(__file__).resolve().parent.parent
KEY = "R0123456789abcdef0123456789abcde"


@pytest.fixture
def no_routing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ROUTING_KEY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def disabled_manager(no_routing_key: None) -> Iterator[AlertManager]:
    """Built before any capture with no key: a module-level ``from_env()`` in CI."""
    manager = AlertManager.from_env(source="shop")
    assert not manager.enabled
    yield manager
    manager.close()


def test_a_manager_built_without_a_key_is_captured(disabled_manager: AlertManager) -> None:
    with capture_events() as captured:
        key = disabled_manager.critical("Payment provider down", {"provider": "acme"})
        disabled_manager.critical("Payment provider down", {"provider": "acme"})
        disabled_manager.change("Deployed")
        disabled_manager.resolve(key)
    (trigger,) = captured.triggers  # suppression works as with a key
    assert trigger["routing_key"] == TEST_ROUTING_KEY
    assert trigger["dedup_key"] == key
    assert trigger["payload"]["source"] == "shop"
    assert trigger["payload"]["custom_details"]["provider"] == "acme"
    assert [r["dedup_key"] for r in captured.resolves] == [key]
    assert captured.summaries() == ["Payment provider down", "Deployed"]
    for body in captured.events:
        body = dict(body)
        assert_valid_event(body.pop("_path"), body)


def test_a_disabled_manager_sends_nothing_outside_the_capture(
    disabled_manager: AlertManager,
) -> None:
    with capture_events() as captured:
        pass
    disabled_manager.critical("after the test")
    assert captured.events == []


def test_a_manager_built_with_a_key_before_the_capture_is_captured() -> None:
    manager = AlertManager(KEY, source="shop")
    try:
        with capture_events() as captured:
            manager.warning("Disk filling up")
        (trigger,) = captured.triggers
        assert trigger["routing_key"] == KEY
    finally:
        manager.close()


def test_nested_captures_both_record(disabled_manager: AlertManager) -> None:
    with capture_events() as outer:
        disabled_manager.critical("one")
        with capture_events() as inner:
            disabled_manager.critical("two")
    assert outer.summaries() == ["one", "two"]
    assert inner.summaries() == ["two"]


def test_the_rate_budget_applies_to_captured_sends() -> None:
    """The capture answers like a transport: the dispatcher spends its budget as usual."""
    now = [0.0]
    budget = RateBudget(1, clock=lambda: now[0])
    dispatcher = Dispatcher(EventsClient(KEY), budget=budget, handle_sigterm=False)
    first_sent = threading.Event()

    def on_sent(sender: object, **extra: Any) -> None:
        first_sent.set()

    signals.event_sent.connect(on_sent, sender=dispatcher)
    try:
        with capture_events() as captured:
            for name in ("first", "second"):
                dispatcher.submit(TriggerEvent(name, Severity.ERROR, "tests"))
            assert first_sent.wait(30)
            # The fake clock stands still: the second waits for the budget however long.
            assert not dispatcher.flush(0.2)
            assert dispatcher.stats().sent == 1
            now[0] += 61.0  # the window moves on; the sender rechecks within a second
            assert dispatcher.flush(30.0)
            assert captured.summaries() == ["first", "second"]
    finally:
        signals.event_sent.disconnect(on_sent)
        dispatcher.close()


def test_each_capture_starts_with_a_full_budget() -> None:
    manager = AlertManager(KEY, source="shop", rate_limit=5)
    budget = shared_budget(KEY, 5)
    try:
        while budget.try_acquire() == 0:
            pass  # an earlier test spent the whole minute
        with capture_events() as captured:
            manager.critical("still pages")
            assert manager.flush(30.0)
        assert captured.summaries() == ["still pages"]
    finally:
        manager.close()


APP = """
from pd_integrations import AlertManager

alerts = AlertManager.from_env(source="shop")


def checkout(amount: int) -> str:
    if amount < 0:
        alerts.critical("Negative amount at checkout", {"amount": amount})
        return "refused"
    return "ok"
"""

APP_TEST = """
import os

from app import alerts, checkout


def test_ci_has_no_routing_key():
    assert not any(name.startswith("PAGERDUTY_") for name in os.environ)
    assert not alerts.enabled


def test_a_refused_checkout_pages(pagerduty_events):
    assert checkout(-5) == "refused"
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"] == "Negative amount at checkout"
    assert event["payload"]["custom_details"]["amount"] == -5


def test_each_test_starts_clean(pagerduty_events):
    checkout(-5)  # the same alert as the previous test: forgotten in between
    assert len(pagerduty_events.triggers) == 1
"""


def test_a_module_level_manager_is_captured_in_ci_without_a_key(tmp_path: Path) -> None:
    """A user's project in CI: the plugin loads from its entry point, no PAGERDUTY_* set."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "test_app.py").write_text(textwrap.dedent(APP_TEST))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
    # This checkout's pd_integrations, wherever the running interpreter installed it.
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_fixture_is_the_capture(pagerduty_events: CapturedEvents) -> None:
    assert pagerduty_events.events == []


def test_without_setting_a_key_keyless_managers_stay_disabled(
    disabled_manager: AlertManager,
) -> None:
    with capture_events(set_routing_key=False) as captured:
        disabled_manager.critical("not sent: no key")
    assert captured.events == []
