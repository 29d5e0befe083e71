"""``flask pagerduty test`` and ``flask pagerduty check`` through Flask's CLI test runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from pd_integrations.emulator import Emulator
from pd_integrations.flask import PagerDuty, get_state
from pd_integrations.testing import TEST_ROUTING_KEY, CapturedEvents
from tests.spec import assert_valid_event

MakeApp = Callable[..., Flask]


def test_test_command_sends_a_trigger_and_its_resolve(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app(PAGERDUTY_ENVIRONMENT="staging")

    result = app.test_cli_runner().invoke(args=["pagerduty", "test"])

    assert result.exit_code == 0, result.output
    (trigger,) = pagerduty_events.triggers
    (resolve,) = pagerduty_events.resolves
    assert f"Dedup key: {trigger['dedup_key']}" in result.output
    assert trigger["dedup_key"].startswith("staging:cli_test:")
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert trigger["payload"]["severity"] == "info"
    assert_valid_event(trigger.pop("_path"), trigger)
    assert "Sent the test trigger and resolve" in result.output


def test_test_command_options(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    app = make_app()

    result = app.test_cli_runner().invoke(
        args=["pagerduty", "test", "--severity", "critical", "--summary", "Drill", "--no-resolve"]
    )

    assert result.exit_code == 0, result.output
    (trigger,) = pagerduty_events.triggers
    assert (trigger["payload"]["summary"], trigger["payload"]["severity"]) == ("Drill", "critical")
    assert pagerduty_events.resolves == []


def test_test_command_without_routing_key_fails(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    app = make_app()

    result = app.test_cli_runner().invoke(args=["pagerduty", "test"])

    assert result.exit_code == 1
    assert "no routing key" in result.output


def test_test_command_reports_undelivered_events(make_app: MakeApp) -> None:
    with Emulator(port=0, outage=True) as emulator:
        app = make_app(
            PAGERDUTY_ROUTING_KEY=TEST_ROUTING_KEY, PAGERDUTY_EVENTS_BASE_URL=emulator.url
        )

        result = app.test_cli_runner().invoke(args=["pagerduty", "test", "--timeout", "0.5"])

        assert result.exit_code == 1
        assert f"not delivered to {emulator.url} within 0.5 s" in result.output
        get_state(app).close(0)


def test_test_command_delivers_to_the_emulator(make_app: MakeApp) -> None:
    with Emulator(port=0) as emulator:
        app = make_app(
            PAGERDUTY_ROUTING_KEY=TEST_ROUTING_KEY, PAGERDUTY_EVENTS_BASE_URL=emulator.url
        )

        result = app.test_cli_runner().invoke(args=["pagerduty", "test"])

        assert result.exit_code == 0, result.output
        (alert,) = emulator.alerts()
        assert alert["status"] == "resolved"


def test_check_command(make_app: MakeApp, pagerduty_events: CapturedEvents) -> None:
    ext = PagerDuty()
    ext.health.register("db", lambda: True)
    ext.health.register("cache", lambda: True, severity="warning")
    app = make_app(ext=ext, PAGERDUTY_SLOW_ROUTES={"/reports": 5000})

    result = app.test_cli_runner().invoke(args=["pagerduty", "check"])

    assert result.exit_code == 0, result.output
    assert "****0001 (from environment variable PAGERDUTY_ROUTING_KEY)" in result.output
    assert TEST_ROUTING_KEY not in result.output
    assert "https://events.pagerduty.com (from default)" in result.output
    assert "50 ms (1 route override(s))" in result.output
    assert "/health (2 check(s))" in result.output
    assert "OK    db" in result.output
    assert "All checks passed." in result.output


def test_check_command_shows_state_spool_and_flush_timeout(
    make_app: MakeApp, pagerduty_events: CapturedEvents, tmp_path: Path
) -> None:
    spool = tmp_path / "pagerduty.spool"
    app = make_app(
        PAGERDUTY_STATE_URL="memory://",
        PAGERDUTY_SPOOL=str(spool),
        PAGERDUTY_FLUSH_TIMEOUT="7.5",
    )

    result = app.test_cli_runner().invoke(args=["pagerduty", "check"])

    assert result.exit_code == 0, result.output
    assert "shared state     memory" in result.output
    assert f"spool            {spool} (flush at exit and on SIGTERM: up to 7.5 s)" in result.output


def test_check_command_fails_on_unhealthy_checks_without_paging(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    ext = PagerDuty()
    ext.health.register("db", lambda: False, failure_threshold=1)
    app = make_app(ext=ext)

    result = app.test_cli_runner().invoke(args=["pagerduty", "check"])

    assert result.exit_code == 1
    assert "FAIL  db" in result.output
    assert "check returned False" in result.output
    assert pagerduty_events.events == []  # a diagnosis, not an incident
    assert get_state(app).health.alerts is get_state(app).alerts  # unmuted again


def test_check_command_runs_checks_registered_on_the_apps_monitor(
    make_app: MakeApp, pagerduty_events: CapturedEvents
) -> None:
    app = make_app()
    get_state(app).health.register("payments", lambda: False, failure_threshold=1)

    result = app.test_cli_runner().invoke(args=["pagerduty", "check"])

    assert result.exit_code == 1
    assert "FAIL  payments" in result.output
    assert pagerduty_events.events == []


def test_check_command_without_routing_key(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    app = make_app()

    result = app.test_cli_runner().invoke(args=["pagerduty", "check"])

    assert result.exit_code == 1
    assert "missing: set PAGERDUTY_ROUTING_KEY" in result.output
    assert "1 problem(s) found" in result.output


def test_check_command_probe(make_app: MakeApp) -> None:
    with Emulator(port=0) as emulator:
        app = make_app(
            PAGERDUTY_ROUTING_KEY=TEST_ROUTING_KEY, PAGERDUTY_EVENTS_BASE_URL=emulator.url
        )

        result = app.test_cli_runner().invoke(args=["pagerduty", "check", "--probe"])

        assert result.exit_code == 0, result.output
        assert f"{emulator.url} (from app.config)" in result.output
        assert "OK    reachable" in result.output


def test_check_on_an_app_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    # A bad environment value makes init_app fail the app's start-up, as it should; the
    # check command exists anyway (a flask.commands entry point) and names the setting.
    (tmp_path / "badapp.py").write_text(
        "from flask import Flask\n"
        "from pd_integrations.flask import PagerDuty\n\n\n"
        "def create_app():\n"
        "    app = Flask(__name__)\n"
        "    PagerDuty(app)\n"
        "    return app\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "FLASK_"))}
    env.update(
        PAGERDUTY_ROUTING_KEY="flaskcheckroutingkey000000000001",
        PAGERDUTY_SLOW_REQUEST_MS="5s",
        PYTHONPATH=str(tmp_path),
    )
    flask = Path(sys.executable).with_name("flask")
    ran = subprocess.run(
        [str(flask), "--app", "badapp:create_app", "pagerduty", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode == 1, output
    assert "Traceback" not in output
    (fail,) = [line for line in ran.stdout.splitlines() if line.startswith("FAIL")]
    assert "PAGERDUTY_SLOW_REQUEST_MS" in fail
    assert "'5s'" in fail
    assert "did not start" in ran.stderr
