from __future__ import annotations

import logging
import logging.config
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pd_integrations import AlertManager, ConfigurationError, RequestInfo, RequestMonitor
from pd_integrations.logging import PagerDutyHandler
from pd_integrations.testing import CapturedEvents


@pytest.fixture
def logger(pagerduty_events: CapturedEvents) -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.orders")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = PagerDutyHandler(alerts=AlertManager(source="orders"))
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)
    handler.close()
    handler.alerts.close()


def test_error_records_become_alerts(logger: logging.Logger, pagerduty_events: Any) -> None:
    logger.info("all good")
    logger.warning("a bit slow")
    logger.error("payment %s failed", "p-1")
    logger.critical("ledger out of balance")
    # Delivery order is not logging order: the sender takes a critical before an error
    # that is ready at the same moment. Put them back in the order they were logged.
    logged = ["payment p-1 failed", "ledger out of balance"]
    bodies = sorted(
        pagerduty_events.triggers,
        key=lambda b: logged.index(b["payload"]["summary"].split(": ", 1)[1]),
    )
    assert [b["payload"]["severity"] for b in bodies] == ["error", "critical"]
    assert bodies[0]["payload"]["summary"] == "ERROR tests.orders: payment p-1 failed"
    details = bodies[0]["payload"]["custom_details"]
    assert details["logger"] == "tests.orders"
    assert details["level"] == "ERROR"


def test_grouped_by_message_template_not_formatted_text(
    logger: logging.Logger, pagerduty_events: Any
) -> None:
    for order in ("p-1", "p-2", "p-3"):
        logger.error("payment %s failed", order)
    logger.error("refund %s failed", "r-1")
    keys = [b["dedup_key"] for b in pagerduty_events.triggers]
    assert len(keys) == 2
    assert len(set(keys)) == 2


def test_exceptions_are_fingerprinted(logger: logging.Logger, pagerduty_events: Any) -> None:
    def charge(order: str) -> None:
        raise ConnectionError(f"provider down for {order}")

    for order in ("a", "b"):
        try:
            charge(order)
        except ConnectionError:
            logger.exception("charge failed for %s", order)
    (body,) = pagerduty_events.triggers
    assert body["dedup_key"].startswith("exception:")
    details = body["payload"]["custom_details"]
    assert details["exception_type"] == "ConnectionError"
    assert any("charge" in frame for frame in details["stack"])


def test_an_exception_an_adapter_reported_is_not_alerted_again(
    logger: logging.Logger, pagerduty_events: Any
) -> None:
    monitor = RequestMonitor(AlertManager(source="web"))
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        monitor.exception(exc, RequestInfo(method="GET", route="/orders/{id}"))
        logger.exception("request failed")
    assert len(pagerduty_events.triggers) == 1


def test_own_records_never_page_through_the_handler(pagerduty_events: Any) -> None:
    handler = PagerDutyHandler(alerts=AlertManager(source="x"))
    record = logging.LogRecord("pd_integrations.dispatch", logging.ERROR, "f", 1, "x", (), None)
    handler.handle(record)
    assert pagerduty_events.events == []
    handler.alerts.close()


def test_configured_with_dict_config(pagerduty_events: Any) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "pagerduty": {
                    "class": "pd_integrations.logging.PagerDutyHandler",
                    "level": "ERROR",
                    "source": "billing",
                    "component": "invoices",
                    "severities": {"ERROR": "warning", "CRITICAL": "critical"},
                }
            },
            "loggers": {"tests.billing": {"handlers": ["pagerduty"], "propagate": False}},
        }
    )
    log = logging.getLogger("tests.billing")
    handler = log.handlers[0]
    try:
        log.warning("not paged")
        log.error("invoice run failed")
        (body,) = pagerduty_events.triggers
        assert body["payload"]["severity"] == "warning"
        assert body["payload"]["source"] == "billing"
        assert body["payload"]["component"] == "invoices"
    finally:
        log.removeHandler(handler)
        assert isinstance(handler, PagerDutyHandler)
        handler.alerts.close()


def test_a_failing_manager_does_not_break_logging(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = logger.handlers[0]
    assert isinstance(handler, PagerDutyHandler)

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(handler.alerts, "alert", broken)
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger.error("still fine")  # handleError swallows it, as logging promises


def test_unknown_level_names_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        PagerDutyHandler(alerts=AlertManager(source="x"), severities={"LOUD": "critical"})


# -- the exception's own text: user code, never under the handler's lock ---------------------

WAIT = 30.0  # seconds a test waits for another thread: generous on a busy machine


@pytest.fixture
def lone(pagerduty_events: CapturedEvents) -> Iterator[tuple[logging.Logger, PagerDutyHandler]]:
    """A logger outside the logging tree with only the handler: no capture handler of
    pytest's reads the records too."""
    log = logging.Logger("tests.text", logging.DEBUG)
    handler = PagerDutyHandler(alerts=AlertManager(source="orders"))
    log.addHandler(handler)
    yield log, handler
    handler.close()
    handler.alerts.close()


def test_a_slow_exception_text_does_not_stall_other_threads(
    lone: tuple[logging.Logger, PagerDutyHandler], pagerduty_events: CapturedEvents
) -> None:
    logger, _ = lone
    reading = threading.Event()
    release = threading.Event()

    class SlowTextError(Exception):
        def __str__(self) -> str:
            reading.set()
            release.wait(WAIT)
            return "finally"

    def log_slow() -> None:
        try:
            raise SlowTextError()
        except SlowTextError:
            logger.exception("charge failed")

    stuck = threading.Thread(target=log_slow)
    stuck.start()
    try:
        assert reading.wait(WAIT)
        other = threading.Thread(target=logger.error, args=("ledger %s out of balance", "l-1"))
        other.start()
        other.join(WAIT)
        assert not other.is_alive(), "an error record waited for another record's __str__"
        assert stuck.is_alive()  # still inside __str__
        (event,) = pagerduty_events.triggers
        assert event["payload"]["summary"] == "ERROR tests.text: ledger l-1 out of balance"
    finally:
        release.set()
        stuck.join(WAIT)
    assert not stuck.is_alive()
    assert len(pagerduty_events.triggers) == 2


def test_the_exception_text_is_read_once_and_a_broken_one_is_a_placeholder(
    lone: tuple[logging.Logger, PagerDutyHandler], pagerduty_events: CapturedEvents
) -> None:
    logger, _ = lone
    reads: list[int] = []

    class CountedError(Exception):
        def __str__(self) -> str:
            reads.append(1)
            return "counted"

    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    for error in (CountedError(), UnprintableError()):
        try:
            raise error
        except Exception:
            logger.exception("job failed")
    assert reads == [1]
    counted, unprintable = (t["payload"]["custom_details"] for t in pagerduty_events.triggers)
    assert counted["exception_message"] == "counted"
    assert unprintable["exception_message"] == "<UnprintableError: unprintable message>"


def test_filters_still_apply(
    lone: tuple[logging.Logger, PagerDutyHandler], pagerduty_events: CapturedEvents
) -> None:
    logger, handler = lone
    handler.addFilter(lambda record: "noise" not in record.getMessage())
    logger.error("noise from a bot")
    logger.error("real trouble")
    (event,) = pagerduty_events.triggers
    assert event["payload"]["summary"] == "ERROR tests.text: real trouble"


# -- settings: the same model and environment variables as every framework -----------------


def test_a_handler_without_alerts_reads_the_shared_settings(
    monkeypatch: pytest.MonkeyPatch, pagerduty_events: CapturedEvents
) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "l0gg1ngsett1ngsk3y00000000000001")
    monkeypatch.setenv("PAGERDUTY_RELEASE", "v9.1")
    handler = PagerDutyHandler(source="billing")
    try:
        assert handler.alerts.source == "billing"
        assert handler.alerts.release == "v9.1"
    finally:
        handler.close()
        handler.alerts.close()


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="PAGERDUTY_TIMEOUT") as raised:
        PagerDutyHandler(routing_key="l0gg1ngsett1ngsk3y00000000000001")
    assert "soon" in str(raised.value)
