"""App factories, several apps in one process, and the extension's bookkeeping."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest
from flask import Flask, got_request_exception

from pd_integrations import AlertManager
from pd_integrations.flask import EXTENSION_KEY, PagerDuty, PagerDutyState, get_state
from pd_integrations.monitor import RequestMonitor
from pd_integrations.testing import CapturedEvents
from tests.clock import FakeClock

from .conftest import build_app, json_of

MakeApp = Callable[..., Flask]


def test_direct_initialisation(pagerduty_events: CapturedEvents) -> None:
    app = build_app()
    ext = PagerDuty(app)
    try:
        state = app.extensions[EXTENSION_KEY]
        assert isinstance(state, PagerDutyState)
        assert ext.state(app) is state
        with app.app_context():
            assert ext.alerts is state.alerts
            assert ext.monitor is state.monitor
        assert not hasattr(ext, "app")
    finally:
        get_state(app).close(1.0)


def test_app_factory_with_checks_registered_before_any_app(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    ext = PagerDuty()
    healthy = {"cache": True, "queue": True}

    @ext.health.check("cache")
    def cache() -> bool:
        return healthy["cache"]

    first = make_app("first", ext=ext)
    second = make_app("second", ext=ext)

    @ext.health.check("queue")  # registered after init_app: both apps get it too
    def queue() -> bool:
        return healthy["queue"]

    for app in (first, second):
        assert get_state(app).health.names == ["cache", "queue"]
        assert json_of(app.test_client().get("/health"))["checks"].keys() == {"cache", "queue"}
    assert get_state(first) is not get_state(second)
    assert get_state(first).alerts is not get_state(second).alerts


def test_several_apps_keep_their_own_settings(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    shop = make_app("shop", PAGERDUTY_SOURCE="shop-web", PAGERDUTY_ENVIRONMENT="prod")
    admin = make_app("admin", PAGERDUTY_SOURCE="admin-web", PAGERDUTY_SLOW_REQUEST_MS=None)

    admin.test_client().get("/slow")  # no threshold for admin
    assert pagerduty_events.events == []

    shop.test_client().get("/orders/1")
    (event,) = pagerduty_events.triggers
    assert event["payload"]["source"] == "shop-web"
    assert event["dedup_key"].startswith("prod:exception:")
    # Only the shop's receiver saw the shop's exception.
    assert get_state(admin).alerts.active_alerts() == []

    pagerduty_events.clear()
    admin.test_client().get("/orders/1")
    (event,) = pagerduty_events.triggers
    assert event["payload"]["source"] == "admin-web"
    assert len(get_state(shop).alerts.active_alerts()) == 1


def test_shared_alert_manager_and_monitor(pagerduty_events: CapturedEvents) -> None:
    clock = FakeClock()
    with AlertManager(source="shared") as alerts:
        monitor = RequestMonitor(alerts, slow_request_ms=50, clock=clock)
        ext = PagerDuty(monitor=monitor)
        first, second = build_app("first", clock=clock), build_app("second", clock=clock)
        ext.init_app(first)
        ext.init_app(second)

        assert get_state(first).monitor is monitor is get_state(second).monitor
        first.test_client().get("/orders/1")
        second.test_client().get("/orders/2")

        (event,) = pagerduty_events.triggers  # one bug, one incident, across both apps
        assert event["payload"]["source"] == "shared"
        assert not get_state(first).owns_alerts

    with pytest.raises(ValueError, match="not the AlertManager of the monitor"):
        PagerDuty(alerts=AlertManager(), monitor=monitor)


def test_initialising_an_app_twice_is_an_error(make_app: MakeApp) -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="already registered"):
        PagerDuty(app)


def test_state_of_an_app_without_the_extension() -> None:
    with pytest.raises(RuntimeError, match="not initialised"):
        get_state(Flask("plain"))


def test_signal_receivers_do_not_pile_up_across_apps() -> None:
    gc.collect()
    before = len(got_request_exception.receivers)
    states: list[weakref.ref[PagerDutyState]] = []
    for n in range(20):
        app = build_app(f"app{n}")
        PagerDuty(app)
        states.append(weakref.ref(get_state(app)))
        del app
    gc.collect()

    assert len(got_request_exception.receivers) == before
    assert all(ref() is None for ref in states)  # nor do their AlertManagers stay alive


def test_receiver_lives_as_long_as_its_app(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app()
    gc.collect()

    app.test_client().get("/orders/1")

    assert len(pagerduty_events.triggers) == 1
