"""Breadcrumbs: the failing request's last log records, bounded and scrubbed."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pd_integrations import AlertManager
from pd_integrations.context import breadcrumbs
from pd_integrations.logging import BreadcrumbHandler
from pd_integrations.monitor import RequestInfo, RequestMonitor
from pd_integrations.testing import CapturedEvents

log = logging.getLogger("tests.context.shop")


@pytest.fixture(autouse=True)
def verbose_shop_logger() -> Iterator[None]:
    level = log.level
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(level)


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", rate_limit=None)
    yield manager
    manager.close()


def _request(monitor: RequestMonitor, work: Any) -> None:
    """One request as an adapter runs it: begin, the app's work, the alert, end."""
    token = monitor.begin_request({})
    try:
        try:
            work()
        except Exception as exc:
            monitor.exception(exc, RequestInfo("POST", "/checkout"))
    finally:
        monitor.end_request(token)


def _crumbs(events: CapturedEvents) -> list[str]:
    (event,) = events.triggers
    found: list[str] = event["payload"]["custom_details"].get("breadcrumbs", [])
    return found


def _messages(crumbs: list[str]) -> list[str]:
    """The messages, without the time, level and logger in front."""
    return [crumb.split(": ", 1)[1] for crumb in crumbs]


def test_the_last_records_of_the_failing_request_are_in_its_alert(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts, breadcrumbs=3)

    def work() -> None:
        for step in range(5):
            log.info("step %d of the checkout", step)
        raise RuntimeError("payment failed")

    _request(monitor, work)
    crumbs = _crumbs(pagerduty_events)
    assert _messages(crumbs) == [
        "step 2 of the checkout",
        "step 3 of the checkout",
        "step 4 of the checkout",
    ]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO tests\.context\.shop: step 2 of the checkout", crumbs[0]
    )


def test_breadcrumbs_are_bounded_by_bytes_keeping_the_newest(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts, breadcrumbs=50, breadcrumb_bytes=600)

    def work() -> None:
        for step in range(40):
            log.warning("record %02d %s", step, "x" * 100)
        raise RuntimeError("boom")

    _request(monitor, work)
    crumbs = _crumbs(pagerduty_events)
    assert 1 <= len(crumbs) < 40
    assert _messages(crumbs)[-1].startswith("record 39 ")
    assert sum(len(crumb.encode()) for crumb in crumbs) <= 600


def test_one_huge_message_is_cut(alerts: AlertManager, pagerduty_events: CapturedEvents) -> None:
    monitor = RequestMonitor(alerts)

    def work() -> None:
        log.error("%s", "y" * 100_000)
        raise RuntimeError("boom")

    _request(monitor, work)
    (crumb,) = _messages(_crumbs(pagerduty_events))
    assert len(crumb) == breadcrumbs.MAX_MESSAGE


def test_breadcrumbs_are_scrubbed(alerts: AlertManager, pagerduty_events: CapturedEvents) -> None:
    monitor = RequestMonitor(alerts)

    def work() -> None:
        # Three records: a list of exactly two strings whose first mentions a secret is
        # read by the scrubber as a (name, value) pair, and the second hidden whole.
        log.info("starting checkout")
        log.info("calling https://bank.example.com/charge?api_key=s3cr3tvalue123")
        log.info("retrying with password=hunter2hunter2 for user 7")
        raise RuntimeError("boom")

    _request(monitor, work)
    text = json.dumps(_crumbs(pagerduty_events))
    assert "s3cr3tvalue123" not in text
    assert "hunter2hunter2" not in text
    assert "for user 7" in text


def test_zero_turns_breadcrumbs_off(alerts: AlertManager, pagerduty_events: CapturedEvents) -> None:
    monitor = RequestMonitor(alerts, breadcrumbs=0)
    assert monitor.begin_request({}) is None

    def work() -> None:
        log.warning("something odd")
        raise RuntimeError("boom")

    _request(monitor, work)
    assert _crumbs(pagerduty_events) == []


def test_records_of_another_request_are_not_shown(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts)
    _request(monitor, lambda: log.warning("healthy request A"))
    inside = threading.Event()
    done = threading.Event()

    def other_thread() -> None:
        token = monitor.begin_request({})
        log.warning("concurrent request B")
        inside.set()
        done.wait(30)
        monitor.end_request(token)

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert inside.wait(30)
    log.warning("outside any request")

    def work() -> None:
        log.warning("failing request C")
        raise RuntimeError("boom")

    try:
        _request(monitor, work)
    finally:
        done.set()
        thread.join(30)
    assert _messages(_crumbs(pagerduty_events)) == ["failing request C"]


def test_a_healthy_request_keeps_records_without_formatting_them(
    alerts: AlertManager,
) -> None:
    monitor = RequestMonitor(alerts)
    formatted: list[str] = []

    class Loud:
        def __str__(self) -> str:
            formatted.append("yes")
            return "loud"

    # A logger of its own, with only the breadcrumb handler: pytest's capture handler
    # on the root would format the record itself.
    quiet = logging.getLogger("tests.context.quiet")
    quiet.propagate = False
    quiet.setLevel(logging.INFO)
    handler = BreadcrumbHandler()
    quiet.addHandler(handler)
    token = monitor.begin_request({})
    try:
        quiet.info("value %s", Loud())
        trail = breadcrumbs.current()
        assert trail is not None
        assert len(trail) == 1
    finally:
        monitor.end_request(token)
        quiet.removeHandler(handler)
    assert formatted == []
    assert breadcrumbs.current() is None


@pytest.mark.parametrize("given", ["-1", "many", "2.5"])
def test_a_bad_breadcrumbs_count_is_a_clear_settings_error(given: str) -> None:
    from pd_integrations.settings import load

    settings = load(
        {}, origin="env", ref=lambda s: s.env_var, environ={"PAGERDUTY_BREADCRUMBS": given}
    )
    assert settings.breadcrumbs == breadcrumbs.DEFAULT_BREADCRUMBS
    (error,) = settings.errors
    assert error.code == "E032"
    assert "must be a whole number, 0 for off" in error.message


def test_the_next_request_of_a_context_starts_with_no_records(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts)
    for n in range(3):  # one context serving requests one after another, as a WSGI thread
        _request(monitor, lambda n=n: log.warning("healthy request %d", n))

    def work() -> None:
        log.warning("failing request")
        raise RuntimeError("boom")

    _request(monitor, work)
    assert _messages(_crumbs(pagerduty_events)) == ["failing request"]


def test_a_request_inside_another_of_the_same_context_keeps_its_own_records(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts)
    outer = monitor.begin_request({})
    try:
        log.warning("outer before")

        def work() -> None:
            log.warning("inner")
            raise RuntimeError("inner boom")

        _request(monitor, work)
        log.warning("outer after")
        trail = breadcrumbs.current()
        assert trail is not None
        assert [r.getMessage() for r in trail] == ["outer before", "outer after"]
    finally:
        monitor.end_request(outer)
    assert _messages(_crumbs(pagerduty_events)) == ["inner"]


def test_threads_serving_requests_in_copies_of_one_context_keep_their_own_records(
    alerts: AlertManager,
) -> None:
    monitor = RequestMonitor(alerts)
    # Every thread serves its requests in a copy of this one context.
    copies = [contextvars.copy_context() for _ in range(8)]
    barrier = threading.Barrier(len(copies))
    mixed: list[list[str]] = []
    served: list[int] = []

    def serve(n: int) -> None:
        barrier.wait(30)
        for i in range(300):
            mark = monitor.begin_request({})
            try:
                log.debug("thread %d request %d", n, i)
                log.debug("thread %d request %d again", n, i)
                trail = breadcrumbs.current()
                messages = [] if trail is None else [r.getMessage() for r in trail]
                if messages != [f"thread {n} request {i}", f"thread {n} request {i} again"]:
                    mixed.append(messages)
            finally:
                monitor.end_request(mark)
        served.append(n)

    threads = [threading.Thread(target=copy.run, args=(serve, n)) for n, copy in enumerate(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(served) == list(range(len(copies)))
    assert mixed == []


def test_concurrent_tasks_of_one_context_keep_their_own_records(alerts: AlertManager) -> None:
    monitor = RequestMonitor(alerts)
    seen: dict[int, list[str]] = {}

    async def serve(n: int) -> None:
        mark = monitor.begin_request({})
        try:
            for i in range(3):
                log.warning("task %d record %d", n, i)
                await asyncio.sleep(0)
            trail = breadcrumbs.current()
            assert trail is not None
            seen[n] = [r.getMessage() for r in trail]
        finally:
            monitor.end_request(mark)

    async def server() -> None:
        await asyncio.gather(*(serve(n) for n in range(5)))

    asyncio.run(server())
    assert seen == {n: [f"task {n} record {i}" for i in range(3)] for n in range(5)}
