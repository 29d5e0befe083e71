"""The got_request_exception and setting_changed receivers."""

from __future__ import annotations

import logging
import sys

import pytest
from django.core.signals import got_request_exception
from django.test import RequestFactory

from pd_integrations.django import receivers, runtime
from pd_integrations.django.describe import stashed_exception
from pd_integrations.monitor import reported_key
from pd_integrations.testing import CapturedEvents

from .conftest import pagerduty


def raise_and_signal(request: object) -> BaseException:
    try:
        raise OSError("disk on fire")
    except OSError as exc:
        got_request_exception.send(sender=None, request=request)
        return exc


def test_the_exception_is_reported_and_left_on_the_request(
    events: CapturedEvents, rf: RequestFactory
) -> None:
    request = rf.get("/orders/1/")

    exc = raise_and_signal(request)

    (event,) = events.triggers
    assert reported_key(exc) == event["dedup_key"]
    assert stashed_exception(request) is exc
    assert event["payload"]["custom_details"]["path"] == "/orders/1/"


def test_a_signal_without_a_request_still_alerts(events: CapturedEvents) -> None:
    raise_and_signal(None)
    (event,) = events.triggers
    assert event["payload"]["custom_details"]["method"] == "?"


def test_a_second_signal_for_the_same_exception_is_not_a_second_occurrence(
    events: CapturedEvents, rf: RequestFactory
) -> None:
    request = rf.get("/")
    try:
        raise OSError("once")
    except OSError:
        got_request_exception.send(sender=None, request=request)
        got_request_exception.send(sender=None, request=request)
    alerts = runtime.current().alerts
    assert alerts is not None
    assert [a.occurrences for a in alerts.active_alerts()] == [1]


def test_nothing_happens_outside_an_exception(events: CapturedEvents, rf: RequestFactory) -> None:
    assert sys.exc_info()[1] is None
    got_request_exception.send(sender=None, request=rf.get("/"))
    assert events.events == []


def test_the_receiver_never_raises(
    events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    rf: RequestFactory,
) -> None:
    def broken() -> runtime.Runtime:
        raise RuntimeError("broken runtime")

    monkeypatch.setattr(runtime, "current", broken)
    with caplog.at_level(logging.ERROR, logger="pd_integrations.django"):
        raise_and_signal(rf.get("/"))
    assert "could not report an exception" in caplog.text


def test_connect_is_idempotent() -> None:
    before = len(got_request_exception.receivers)
    receivers.connect()
    receivers.connect()
    assert len(got_request_exception.receivers) == before


def test_a_change_of_the_setting_rebuilds_the_runtime(events: CapturedEvents) -> None:
    first = runtime.current()
    with pagerduty(SLOW_REQUEST_MS=100):
        second = runtime.current()
        assert second is not first
        assert second.settings.slow_request_ms == 100
    assert runtime.current() is not second
    assert first.alerts is not None
    assert first.alerts.dispatcher is not None
    assert first.alerts.dispatcher.closed  # the old one was closed, its events delivered
