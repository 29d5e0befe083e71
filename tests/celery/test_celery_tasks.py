"""Eager Celery tasks (run in the test's own process) through PagerDuty's signal receivers."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from celery import Task
from celery.exceptions import TimeLimitExceeded

from pd_integrations.celery import PagerDuty, timelimit
from pd_integrations.emulator import Emulator

from .conftest import MakeApp, details, sent


def test_a_task_that_fails_for_good_alerts_once_per_fingerprint(
    make_app: MakeApp, emulator: Emulator
) -> None:
    app, pagerduty = make_app()

    @app.task(name="billing.charge")
    def charge(order: int, *, api_key: str) -> None:
        raise ValueError(f"card declined for order {order}")

    for order in range(3):
        charge.apply((order,), {"api_key": "sk_live_0123456789abcdef"})

    (trigger,) = sent(emulator, pagerduty, "trigger")
    payload = trigger["body"]["payload"]
    assert payload["severity"] == "error"
    assert payload["summary"].startswith("Task billing.charge failed: ValueError: card declined")
    found = details(trigger)
    assert found["alert_type"] == "task_failure"
    assert found["task"] == "billing.charge"
    assert found["exception_type"] == "ValueError"
    assert "ValueError at " in found["fingerprint"]
    assert found["task_id"]
    assert found["attempt"] == 1
    assert found["max_retries"] == 3
    assert found["args"] == [0]
    # Scrubbed by key: a secret never leaves the process.
    assert "sk_live_0123456789abcdef" not in str(found["kwargs"])
    assert "runtime_ms" in found


def test_two_different_bugs_in_one_task_are_two_alerts(
    make_app: MakeApp, emulator: Emulator
) -> None:
    app, pagerduty = make_app()

    @app.task(name="reports.build")
    def build(kind: str) -> None:
        if kind == "a":
            raise KeyError(kind)
        raise ZeroDivisionError(kind)

    build.apply(("a",))
    build.apply(("b",))
    build.apply(("a",))

    triggers = sent(emulator, pagerduty, "trigger")
    assert sorted(details(t)["exception_type"] for t in triggers) == [
        "KeyError",
        "ZeroDivisionError",
    ]


def _flaky(app: Any, name: str, calls: list[int]) -> Task:
    @app.task(name=name, bind=True, max_retries=2, default_retry_delay=0)
    def flaky(self: Task, fail: bool) -> str:
        calls.append(self.request.retries)
        if fail:
            raise self.retry(exc=ConnectionError("upstream down"), countdown=0)
        return "ok"

    return flaky


def test_retries_send_nothing_and_the_final_failure_one_trigger(
    make_app: MakeApp, emulator: Emulator
) -> None:
    app, pagerduty = make_app()
    calls: list[int] = []
    flaky = _flaky(app, "sync.pull", calls)

    flaky.apply((True,))

    assert calls == [0, 1, 2]  # retried twice, then failed for good
    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert "will retry" not in trigger["body"]["payload"]["summary"]
    assert details(trigger)["exception_type"] == "ConnectionError"


def test_alert_on_attempt_alerts_from_that_attempt_on(
    make_app: MakeApp, emulator: Emulator
) -> None:
    app, pagerduty = make_app(alert_on_attempt=2)
    calls: list[int] = []
    flaky = _flaky(app, "sync.push", calls)

    flaky.apply((True,))

    # Attempt 2 failing (and retried) pages; the final failure is the same alert again.
    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert "will retry" in trigger["body"]["payload"]["summary"]
    assert details(trigger)["attempt"] == 2
    assert pagerduty.alerts is not None
    (alert,) = pagerduty.alerts.active_alerts()
    assert alert.occurrences == 2


def test_the_next_success_resolves_the_failure(make_app: MakeApp, emulator: Emulator) -> None:
    app, pagerduty = make_app()
    flaky = _flaky(app, "sync.fetch", [])

    flaky.apply((True,))
    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert sent(emulator, pagerduty, "resolve") == []

    flaky.apply((False,))

    (resolve,) = sent(emulator, pagerduty, "resolve")
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert emulator.alerts(status="resolved")[0]["dedup_key"] == trigger["dedup_key"]
    # A further success has nothing left to resolve.
    flaky.apply((False,))
    assert len(sent(emulator, pagerduty, "resolve")) == 1


def test_a_slow_task_raises_a_warning_per_task(make_app: MakeApp, emulator: Emulator) -> None:
    app, pagerduty = make_app(
        slow_task_ms=1, task_overrides={"fast.enough": {"slow_task_ms": 600_000}}
    )

    @app.task(name="slow.one")
    def slow() -> None:
        time.sleep(0.01)  # certainly longer than the 1 ms threshold

    @app.task(name="fast.enough")
    def fast() -> None:
        time.sleep(0.01)  # far below its own ten-minute threshold

    slow.apply()
    slow.apply()
    fast.apply()

    (trigger,) = sent(emulator, pagerduty, "trigger")
    payload = trigger["body"]["payload"]
    assert payload["severity"] == "warning"
    assert payload["summary"].startswith("Slow task: slow.one took ")
    assert details(trigger)["alert_type"] == "slow_task"
    assert details(trigger)["threshold_ms"] == 1.0
    assert details(trigger)["runtime_ms"] >= 10


def test_per_task_severity_overrides(make_app: MakeApp, emulator: Emulator) -> None:
    app, pagerduty = make_app(
        task_overrides={
            "payments.settle": {"severity": "critical"},
            "noise.ping": {"severity": None},
        }
    )

    @app.task(name="payments.settle")
    def settle() -> None:
        raise RuntimeError("ledger mismatch")

    @app.task(name="noise.ping")
    def ping() -> None:
        raise RuntimeError("nobody cares")

    settle.apply()
    ping.apply()

    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert trigger["body"]["payload"]["severity"] == "critical"
    assert details(trigger)["task"] == "payments.settle"


def test_task_arguments_can_be_left_out(make_app: MakeApp, emulator: Emulator) -> None:
    app, pagerduty = make_app(include_task_args=False)

    @app.task(name="users.delete")
    def delete(user_id: int, password: str) -> None:
        raise PermissionError("no")

    delete.apply((7,), {"password": "hunter2"})

    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert "args" not in details(trigger)
    assert "kwargs" not in details(trigger)


def test_arguments_are_scrubbed_by_key_and_bounded(make_app: MakeApp, emulator: Emulator) -> None:
    app, pagerduty = make_app()

    @app.task(name="users.login")
    def login(blob: str, items: list[int], password: str) -> None:
        raise PermissionError("no")

    login.apply(("x" * 10_000, list(range(1000))), {"password": "hunter2"})

    found = details(sent(emulator, pagerduty, "trigger")[0])
    assert "hunter2" not in str(found)
    assert 500 <= len(found["args"][0]) < 600
    assert len(found["args"][1]) <= 21


def test_settings_come_from_the_app_conf_then_the_environment(
    make_app: MakeApp, emulator: Emulator, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("PAGERDUTY_SLOW_TASK_MS", "250")
    clean_env.setenv("PAGERDUTY_TASK_SEVERITY", "warning")
    clean_env.setenv("PAGERDUTY_ALERT_ON_ATTEMPT", "3")
    from celery import Celery

    app = Celery("pd-conf", set_as_current=False)
    app.conf.pagerduty_routing_key = "celeryconftestroutingkey00000001"
    app.conf.pagerduty_events_base_url = emulator.url
    app.conf.pagerduty_task_severity = "critical"
    pagerduty = PagerDuty(app, alert_on_attempt=2)
    try:
        settings = pagerduty.settings
        assert settings.routing_key == "celeryconftestroutingkey00000001"
        assert settings.origin("routing_key") == "celery_app.conf"
        assert str(settings.task_severity) == "critical"
        assert settings.alert_on_attempt == 2
        assert settings.origin("alert_on_attempt") == "a PagerDuty(...) argument"
        assert settings.slow_task_ms == 250.0
        assert settings.origin("slow_task_ms") == "environment variable PAGERDUTY_SLOW_TASK_MS"
    finally:
        pagerduty.disconnect()
        assert pagerduty.alerts is not None
        pagerduty.alerts.close(5)


def test_an_invalid_setting_is_logged_and_nothing_is_watched(
    make_app: MakeApp, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "pd_integrations.celery"):
        app, pagerduty = make_app(task_overrides={"x": {"sevrity": "critical"}})

    assert pagerduty.error is not None
    assert "pagerduty" not in str(pagerduty.error).lower() or "task_overrides" in str(
        pagerduty.error
    )
    assert "task_overrides" in caplog.text

    @app.task(name="still.runs")
    def runs() -> int:
        raise ValueError("no alert")

    assert runs.apply().failed()
    assert emulator.events() == []


def test_an_unknown_keyword_is_a_type_error(make_app: MakeApp) -> None:
    with pytest.raises(TypeError, match="slow_task"):
        make_app(slow_task=5)


def test_without_a_routing_key_tasks_run_and_nothing_is_sent(
    clean_env: pytest.MonkeyPatch, emulator: Emulator
) -> None:
    from celery import Celery

    emulator.reset()
    app = Celery("pd-off", set_as_current=False)
    app.conf.task_always_eager = True
    pagerduty = PagerDuty(app)

    @app.task(name="off.fails")
    def fails() -> None:
        raise ValueError("x")

    try:
        assert fails.apply().failed()
        assert pagerduty.alerts is not None
        assert not pagerduty.alerts.enabled
        assert emulator.events() == []
    finally:
        pagerduty.disconnect()


def test_another_apps_tasks_are_not_watched(make_app: MakeApp, emulator: Emulator) -> None:
    from celery import Celery

    _, pagerduty = make_app()
    other = Celery("other", set_as_current=False)
    other.conf.task_always_eager = True

    @other.task(name="other.fails")
    def fails() -> None:
        raise ValueError("not ours")

    fails.apply()
    assert sent(emulator, pagerduty) == []


def test_a_second_integration_for_one_app_replaces_the_first(
    make_app: MakeApp, emulator: Emulator
) -> None:
    app, first = make_app()
    second = PagerDuty(app, routing_key=first.settings.routing_key, events_base_url=emulator.url)

    @app.task(name="twice.fails")
    def fails() -> None:
        raise ValueError("once")

    try:
        fails.apply()
        assert sent(emulator, first) == []
        assert len(sent(emulator, second, "trigger")) == 1
    finally:
        second.disconnect()
        assert second.alerts is not None
        second.alerts.close(5)


def test_monitor_beat_without_beat_support_logs_and_goes_on(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pd_integrations.celery.beat", None)  # not importable
    with caplog.at_level(logging.ERROR, "pd_integrations.celery"):
        _, pagerduty = make_app(monitor_beat=True)
    assert pagerduty.monitor is not None
    assert "beat monitoring is not available" in caplog.text


def test_monitor_beat_hands_the_app_and_manager_to_beat_support(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    seen: list[tuple[Any, Any]] = []
    beat = types.ModuleType("pd_integrations.celery.beat")
    beat.monitor_beat = lambda app, manager: seen.append((app, manager))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pd_integrations.celery.beat", beat)
    app, pagerduty = make_app(monitor_beat=True)
    assert seen == [(app, pagerduty.alerts)]


def test_a_hard_time_limit_logged_by_an_older_celery_alerts(
    make_app: MakeApp, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Celery 5.3-5.6 send no signal for a hard time limit; their main process logs it.
    monkeypatch.setattr(timelimit, "needed", lambda version=None: True)
    app, pagerduty = make_app()

    @app.task(name="etl.load", time_limit=5)
    def load() -> None:
        pass

    logging.getLogger(timelimit.LOGGER).error(timelimit.HARD_LIMIT_MESSAGE, 5, "etl.load", "id-1")

    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert trigger["body"]["payload"]["summary"].startswith(
        "Task etl.load failed: hard time limit: TimeLimitExceeded"
    )
    assert details(trigger)["task_id"] == "id-1"
    assert details(trigger)["lost"] == "hard time limit"


def test_the_time_limit_log_handler_is_only_needed_before_celery_5_7() -> None:
    assert timelimit.needed((5, 3))
    assert timelimit.needed((5, 6))
    assert not timelimit.needed((5, 7))


def test_a_hard_time_limit_signalled_by_celery_alerts_as_a_time_limit(
    make_app: MakeApp, emulator: Emulator
) -> None:
    # What Celery 5.7's main process sends when it kills a child for its time limit.
    from celery import signals

    app, pagerduty = make_app()

    @app.task(name="etl.transform")
    def transform() -> None:
        pass

    signals.task_failure.send(
        sender=transform, task_id="id-2", exception=TimeLimitExceeded(3.0), args=(1,), kwargs={}
    )
    (trigger,) = sent(emulator, pagerduty, "trigger")
    assert details(trigger)["lost"] == "hard time limit"
    assert details(trigger)["task_id"] == "id-2"
    assert details(trigger)["args"] == [1]
    assert "stack" not in details(trigger)
    assert isinstance(pagerduty, PagerDuty)


@pytest.mark.parametrize("pool", ["prefork", "celery.concurrency.prefork"])
def test_a_prefork_worker_without_shared_state_is_warned_about(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, pool: str
) -> None:
    from celery import signals

    class FakeWorker:  # what the receiver reads of Celery's WorkController
        hostname = "w1@host"
        concurrency = 4

    make_app()
    pool_cls: Any = pool if "." not in pool else type("TaskPool", (), {"__module__": pool})
    FakeWorker.pool_cls = pool_cls  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, "pd_integrations.celery"):
        signals.worker_init.send(sender=FakeWorker())
    assert "4 prefork children each keep their own alert state" in caplog.text
    assert "PAGERDUTY_STATE_URL" in caplog.text
