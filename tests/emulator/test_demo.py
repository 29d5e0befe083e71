"""The demo, end to end: the FastAPI example app served by uvicorn, alerting to the emulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from pd_integrations.cli.main import main
from pd_integrations.emulator import Emulator, demo
from pd_integrations.emulator.demo import (
    DEMO_ROUTING_KEY,
    JOB_GRACE,
    JOB_SLUG,
    TASK_NAME,
    TASK_RETRIES,
    Bookshop,
    DemoResult,
    alerts_table,
    load_example,
    run_demo,
)

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]
STORM = 4
INVOICE_ROUTE = "/orders/{order_id}/invoice"
# The extras a task queue or a cron schedule would need: the demo runs without them.
NOT_IN_THE_DEMO_EXTRA = ("celery", "kombu", "billiard", "rq", "redis", "cronsim")


WEBHOOK_ROUTES: list[str] = []
"""The example app's routes, filled by the shared run (for the webhook loop's test)."""


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[DemoResult, Emulator, list[str]]]:
    """One demo run, shared: each takes about four seconds (the slow report is one, the
    scheduled job's missed run one and a half)."""
    lines: list[str] = []
    with Emulator(port=0) as emulator:
        with Bookshop(emulator, create_app=load_example()) as shop:
            result = run_demo(emulator, shop, say=lines.append, storm=STORM)
            WEBHOOK_ROUTES[:] = [str(getattr(r, "path", "")) for r in shop.app.routes]
        assert emulator.webhook_url is None  # the shop's stop() turned its webhooks off
        assert (
            demo.WEBHOOK_SECRET_VAR not in os.environ
            or os.environ.get(demo.WEBHOOK_SECRET_VAR) != shop.webhook_secret
        )
        # Stopped through the lifespan: the server thread is gone, the manager closed.
        assert not any(t.name == "pd-demo-bookshop" for t in threading.enumerate())
        assert shop.manager.dispatcher is not None
        assert shop.manager.dispatcher.closed
        yield result, emulator, lines


@pytest.fixture
def result(run: tuple[DemoResult, Emulator, list[str]]) -> DemoResult:
    return run[0]


def alert_of(result: DemoResult, alert_type: str) -> dict[str, Any]:
    (alert,) = [a for a in result.alerts if a["custom_details"]["alert_type"] == alert_type]
    return alert


def actions(emulator: Emulator, dedup_key: str) -> list[str]:
    """Every event the emulator accepted for ``dedup_key``, by action, in order."""
    return [e["type"] for e in emulator.events() if e.get("dedup_key") == dedup_key]


def moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_exactly_the_expected_alerts(
    run: tuple[DemoResult, Emulator, list[str]],
) -> None:
    result, emulator, _ = run
    assert result.flushed
    assert result.alerts == emulator.alerts(routing_key=DEMO_ROUTING_KEY)
    kinds = sorted(a["custom_details"]["alert_type"] for a in result.alerts)
    assert kinds == ["exception", "health_check", "heartbeat", "slow_request", "task_failure"]
    assert all(a["source"] == "bookshop" for a in result.alerts)
    assert all(a["client_url"] == result.app_url for a in result.alerts)
    assert all(a["dedup_key"].startswith("demo:") for a in result.alerts)
    assert all(r["status"] == 202 for r in emulator.requests())


def test_the_invoice_bug_is_one_critical_alert_however_many_orders_hit_it(
    result: DemoResult,
) -> None:
    invoices = [r for r in result.requests if r[1].endswith("/invoice") and r[2] == 500]
    assert len(invoices) == STORM
    bug = alert_of(result, "exception")
    # Acknowledged by the demo's responder, in the console.
    assert (bug["status"], bug["severity"], bug["trigger_count"]) == (
        "acknowledged",
        "critical",
        1,
    )
    assert bug["summary"] == f"[500] KeyError: 'IS' - GET {INVOICE_ROUTE}"
    details = bug["custom_details"]
    assert details["exception_type"] == "KeyError"
    assert details["route"] == INVOICE_ROUTE
    assert details["status"] == 500
    assert details["environment"] == "demo"
    assert any("invoice" in frame for frame in map(str, details["stack"]))
    # Every hit counted by the manager, only the first sent.
    assert result.occurrences[bug["dedup_key"]] == STORM
    assert result.suppressed == STORM - 1


def test_the_slow_report_is_one_warning(result: DemoResult) -> None:
    slow = alert_of(result, "slow_request")
    assert (slow["status"], slow["severity"], slow["trigger_count"]) == ("triggered", "warning", 1)
    assert slow["custom_details"]["route"] == "/reports/sales"
    assert slow["custom_details"]["duration_ms"] >= demo.REPORT_SECONDS * 1000
    assert slow["custom_details"]["threshold_ms"] == demo.SLOW_REQUEST_MS
    assert slow["summary"].startswith("Slow request: GET /reports/sales took ")


def test_the_payments_outage_triggers_and_resolves(result: DemoResult) -> None:
    health = alert_of(result, "health_check")
    assert health["dedup_key"] == "demo:bookshop:health_check:payments"
    assert (health["status"], health["severity"], health["trigger_count"]) == (
        "resolved",
        "critical",
        1,
    )
    assert [entry["action"] for entry in health["log"]] == ["trigger", "resolve"]
    assert health["summary"].startswith("Health check failed: payments")
    # Healthy, then failing until the check's threshold (2 runs; a periodic run may have
    # counted too on a very slow machine), then healthy again.
    health_statuses = [status for _, path, status in result.requests if path == "/health"]
    assert health_statuses[0] == 200
    assert health_statuses[-1] == 200
    assert set(health_statuses[1:-1]) == {503}
    # The refused order during the outage is a handled 503: no alert of its own.
    assert ("POST", "/orders", 503) in result.requests


def test_not_found_pages_nobody(result: DemoResult) -> None:
    assert ("GET", "/books/999", 404) in result.requests
    assert ("GET", "/no/such/page", 404) in result.requests
    assert all(a["custom_details"].get("status") != 404 for a in result.alerts)
    assert not any("404" in a["summary"] or "/books" in a["summary"] for a in result.alerts)


def test_the_deploy_is_a_change_event(result: DemoResult) -> None:
    (change,) = result.change_events
    payload = change["body"]["payload"]
    assert payload["summary"] == "Deployed bookshop v1.4.2"
    assert payload["source"] == "bookshop"
    assert payload["custom_details"]["version"] == "1.4.2"


def test_the_task_is_retried_then_fails_for_good_once_and_its_next_success_resolves_it(
    run: tuple[DemoResult, Emulator, list[str]],
) -> None:
    result, emulator, _ = run
    assert result.jobs is not None
    assert result.jobs.task_attempts == TASK_RETRIES + 1
    key = result.jobs.task_alert
    assert key is not None
    # One incident in the emulator, triggered by the failure for good (the retries sent
    # nothing), then resolved by the task's next success.
    (task,) = emulator.alerts(routing_key=DEMO_ROUTING_KEY, dedup_key=key)
    assert task == alert_of(result, "task_failure")
    assert (task["status"], task["severity"], task["trigger_count"]) == ("resolved", "error", 1)
    assert [entry["action"] for entry in task["log"]] == ["trigger", "resolve"]
    assert actions(emulator, key) == ["trigger", "resolve"]
    assert task["summary"] == (
        f"Task {TASK_NAME} failed: ConnectionError: smtp.bookshop.example:587 refused the "
        "connection"
    )
    details = task["custom_details"]
    assert details["task"] == TASK_NAME
    assert (details["attempt"], details["max_retries"]) == (TASK_RETRIES + 1, TASK_RETRIES)
    assert details["exception_type"] == "ConnectionError"
    assert details["environment"] == "demo"
    # Named by the task's own code, not by the worker around it.
    assert details["fingerprint"].endswith("Mailer.send_receipt")
    assert key.startswith(f"demo:task_failure:{TASK_NAME}:")


def test_the_missed_run_opens_an_incident_that_the_jobs_next_run_resolves(
    run: tuple[DemoResult, Emulator, list[str]],
) -> None:
    result, emulator, _ = run
    assert result.jobs is not None
    key = result.jobs.missed_alert
    assert key == f"demo:heartbeat:{JOB_SLUG}"
    (missed,) = emulator.alerts(routing_key=DEMO_ROUTING_KEY, dedup_key=key)
    assert missed == alert_of(result, "heartbeat")
    assert (missed["status"], missed["severity"], missed["trigger_count"]) == (
        "resolved",
        "error",
        1,
    )
    assert [entry["action"] for entry in missed["log"]] == ["trigger", "resolve"]
    assert actions(emulator, key) == ["trigger", "resolve"]
    details = missed["custom_details"]
    assert (details["reason"], details["monitor"]) == ("missed", JOB_SLUG)
    assert details["last_check_in"] is None  # it never ran before the watchdog paged
    assert missed["summary"] == (
        f"Scheduled job {JOB_SLUG} missed its run due at {details['expected_start']}"
    )
    # Paged only once the grace after the expected start had passed (the emulator's
    # clock keeps milliseconds).
    expected = moment(details["expected_start"])
    assert moment(missed["first_seen"]) + 0.001 >= expected + JOB_GRACE
    assert moment(missed["resolved_at"]) >= moment(missed["first_seen"])


def test_dispatcher_stats(result: DemoResult) -> None:
    # Three triggers, the health alert's resolve, the change event, and a trigger and a
    # resolve each for the task and the scheduled job.
    stats = result.stats
    assert (stats.sent, stats.failed, stats.dropped, stats.queued) == (9, 0, 0, 0)


def test_every_incident_change_is_a_webhook_to_the_app(result: DemoResult) -> None:
    assert [d["event_type"] for d in result.webhooks] == [
        "incident.triggered",
        "incident.triggered",
        "incident.triggered",
        "incident.resolved",
        "incident.triggered",  # the task failed for good
        "incident.resolved",  # its next success
        "incident.triggered",  # the scheduled job's missed run
        "incident.resolved",  # its run
        "incident.acknowledged",
    ]
    assert all(d["url"].endswith("/pagerduty/webhooks") for d in result.webhooks)
    assert all(d["url"].startswith(result.app_url) for d in result.webhooks)
    assert result.acknowledged is not None
    assert result.acknowledged["incident_id"] == alert_of(result, "exception")["id"]


def test_the_app_received_incident_acknowledged(
    run: tuple[DemoResult, Emulator, list[str]],
) -> None:
    """The loop: the app raised, a responder acknowledged, the app got the webhook."""
    if "/pagerduty/webhooks" not in WEBHOOK_ROUTES:
        pytest.skip("the FastAPI example app has no /pagerduty/webhooks endpoint yet")
    result, _, lines = run
    assert result.acknowledged is not None
    assert result.acknowledged["status"] == "delivered"
    assert 200 <= result.acknowledged["status_code"] < 300
    # A 2xx from the app's endpoint means it verified the signature with its secret.
    assert all(d["status"] == "delivered" for d in result.webhooks)
    assert "the app received incident.acknowledged (HTTP 2" in lines[14]


def test_progress_lines(run: tuple[DemoResult, Emulator, list[str]]) -> None:
    lines = run[2]
    assert lines[0].startswith("healthy traffic: ")
    assert lines[0].endswith("-> no alert")
    assert lines[1].endswith("-> 500 -> critical alert")
    assert lines[2] == (
        f"same bug on {STORM - 1} more orders -> {STORM - 1} x 500 -> no new alert: "
        f"{STORM} occurrences, {STORM - 1} repeats not re-sent"
    )
    assert lines[3].endswith("-> warning alert")
    assert lines[4].startswith("payments down: POST /orders -> 503 (handled: no alert); ")
    assert lines[4].endswith("-> 503, 503 -> critical alert") or lines[4].endswith(
        "-> 503 -> critical alert"
    )
    assert lines[5] == "payments up: GET /health -> 200 -> alert resolved"
    assert lines[6].endswith("-> 404, 404 -> no alert")
    assert lines[7] == "deploy: bookshop v1.4.2 -> change event"
    incidents = {
        a["custom_details"]["alert_type"]: f"incident #{a['incident_number']}"
        for a in run[0].alerts
    }
    assert lines[8] == (
        f"task retried: {TASK_NAME}(7), mail server down -> ConnectionError on attempts 1, 2 "
        f"-> retried: no alert"
    )
    assert lines[9] == (
        f"task failed for good: attempt 3 -> ConnectionError -> error alert, "
        f"{incidents['task_failure']} triggered"
    )
    assert lines[10] == (
        f"task succeeds: {TASK_NAME}(8), mail server back -> {incidents['task_failure']} resolved"
    )
    assert lines[11].startswith(
        f"job missed: {JOB_SLUG}, due every 1 s (grace 0.5 s, short for the demo), never "
        f"starts -> watchdog: missed after "
    )
    assert lines[11].endswith(f" s -> error alert, {incidents['heartbeat']} triggered")
    assert lines[12] == f"job runs: {JOB_SLUG} checks in ok -> {incidents['heartbeat']} resolved"
    assert lines[13] == "delivered: 9 events sent to the emulator"
    assert lines[14].startswith("responder: acknowledged incident #")
    assert " in the console -> " in lines[14]
    assert len(lines) == 15


def test_the_table(result: DemoResult) -> None:
    lines = alerts_table(result).splitlines()
    assert lines[0].split() == [
        "STATUS",
        "SEVERITY",
        "TRIGGERS",
        "OCCURRENCES",
        "SUMMARY",
        "DEDUP",
        "KEY",
    ]
    bug = next(line for line in lines if "KeyError" in line)
    assert bug.split()[:4] == ["acknowledged", "critical", "1", str(STORM)]
    health = next(line for line in lines if "health_check" in line)
    assert health.split()[:4] == ["resolved", "critical", "1", "-"]
    task = next(line for line in lines if ":task_failure:" in line)
    assert task.split()[:4] == ["resolved", "error", "1", "-"]
    missed = next(line for line in lines if line.endswith(f":heartbeat:{JOB_SLUG}"))
    assert missed.split()[:4] == ["resolved", "error", "1", "-"]


# -- the command ---------------------------------------------------------------------------


def test_the_demo_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["demo", "--storm", "3"]) == 0
    assert time.monotonic() - started < 15
    out = capsys.readouterr().out
    assert out.startswith("Emulator running at http://127.0.0.1:")
    assert "Example app (example_projects/fastapi_app) running at http://127.0.0.1:" in out
    assert "same bug on 2 more orders -> 2 x 500" in out
    assert "OCCURRENCES" in out
    assert "[500] KeyError: 'IS' - GET /orders/{order_id}/invoice" in out
    assert "Change event: Deployed bookshop v1.4.2" in out
    assert "Dispatcher: 9 sent, 0 retried, 0 failed" in out
    assert "2 repeats of open alerts suppressed" in out
    assert "task failed for good: attempt 3 -> ConnectionError -> error alert, incident #" in out
    assert f"job runs: {JOB_SLUG} checks in ok -> incident #" in out
    assert "responder: acknowledged incident #" in out
    assert "Webhooks to the app: incident.triggered" in out
    assert DEMO_ROUTING_KEY not in out
    assert "Traceback" not in out


def test_the_demo_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--storm", "2"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "same bug on 1 more orders" in captured.err  # progress stays off stdout
    assert "Traceback" not in captured.err
    assert report["delivered"] is True
    assert report["app"].startswith("http://127.0.0.1:")
    assert report["stats"]["sent"] == 9
    assert report["stats"]["suppressed"] == 1
    statuses = sorted((a["status"], a["severity"]) for a in report["alerts"])
    assert statuses == [
        ("acknowledged", "critical"),
        ("resolved", "critical"),
        ("resolved", "error"),
        ("resolved", "error"),
        ("triggered", "warning"),
    ]
    assert_jobs_resolved(report["alerts"])
    assert [w["event_type"] for w in report["webhooks"]][-1] == "incident.acknowledged"
    bug = next(a for a in report["alerts"] if "KeyError" in a["summary"])
    assert (bug["trigger_count"], bug["occurrences"]) == (1, 2)
    slow = next(a for a in report["alerts"] if a["severity"] == "warning")
    assert slow["custom_details"]["route"] == "/reports/sales"
    assert [c["summary"] for c in report["change_events"]] == ["Deployed bookshop v1.4.2"]
    assert {"method": "GET", "path": "/books/999", "status": 404} in report["requests"]
    assert all("routing_key" not in alert for alert in report["alerts"])


def assert_jobs_resolved(alerts: list[dict[str, Any]]) -> None:
    """The task's and the scheduled job's incidents, as the emulator reported them: each
    triggered once, then resolved."""
    for alert_type in ("task_failure", "heartbeat"):
        (alert,) = [a for a in alerts if a["custom_details"]["alert_type"] == alert_type]
        assert (alert["status"], alert["trigger_count"]) == ("resolved", 1), alert
        assert moment(alert["resolved_at"]) >= moment(alert["first_seen"])


def test_the_demo_needs_neither_a_task_queue_nor_cronsim() -> None:
    """Only the demo extra installed: the jobs come from the library's task monitor and
    heartbeats, not from Celery or RQ."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
    env["PYTHONPATH"] = str(ROOT)
    script = (
        "import sys\n"
        f"for name in {NOT_IN_THE_DEMO_EXTRA!r}:\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "from pd_integrations.cli.main import main\n"
        "sys.exit(main(['demo', '--json', '--storm', '1']))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    report = json.loads(ran.stdout)
    assert_jobs_resolved(report["alerts"])
    assert report["stats"]["sent"] == 9


def test_without_a_source_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "EXAMPLE_DIR", tmp_path / "example_projects" / "fastapi_app")
    monkeypatch.setattr(demo, "PACKAGED_EXAMPLE", tmp_path / "site" / "demo_bookshop.py")
    assert main(["demo"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("pd-integrations: error: the demo runs the FastAPI example app")
    assert "source checkout" in line
    assert "reinstall" in line
    assert str(tmp_path / "example_projects" / "fastapi_app" / "fastapi_example_app.py") in line


def test_without_uvicorn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["demo"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("pd-integrations: error: the demo needs FastAPI and uvicorn")
    assert line.endswith("pip install 'pd-integrations[demo]'")


def test_the_import_ignores_the_shells_routing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing the example builds its module-level app from the environment: a malformed
    # key exported in the shell must neither break the demo nor leak into it.
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "not-a-valid-key")
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.delitem(sys.modules, "_pd_integrations_demo_bookshop", raising=False)
    assert callable(load_example())
    # The variables the import needed changed are back as they were.
    assert os.environ["PAGERDUTY_ROUTING_KEY"] == "not-a-valid-key"
    assert "APP_ENV" not in os.environ


def test_bad_storm_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--storm", "0"]) == 2
    assert capsys.readouterr().err == "pd-integrations: error: --storm must be at least 1\n"


@pytest.mark.parametrize("flag", ["--port", "--app-port"])
def test_port_in_use(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["demo", flag, str(port)]) == 1
    err = capsys.readouterr().err
    what = "emulator" if flag == "--port" else "example app"
    assert err.startswith(f"pd-integrations: error: cannot start the {what}:")


def test_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--app-port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pd-integrations: error: argument --app-port: expected a port from 0")


def test_keep_running_until_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "pd_integrations", "demo", "--keep-running", "--storm", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        urls: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith(("Console: ", "App: ")):
                name, url = line.split()[:2]
                urls[name] = url
            if line.startswith("Press Ctrl-C"):
                break
        assert set(urls) == {"Console:", "App:"}, process.stderr.read() if process.stderr else ""
        console, app = urls["Console:"], urls["App:"]
        assert httpx.get(console, timeout=5).status_code == 200
        alerts = httpx.get(console + "api/alerts", timeout=5).json()
        assert len(alerts) == 5
        # The background jobs' incidents, read through the console's API: each triggered,
        # then resolved.
        assert_jobs_resolved(alerts)
        for alert_type in ("task_failure", "heartbeat"):
            (job,) = [a for a in alerts if a["custom_details"]["alert_type"] == alert_type]
            assert [entry["action"] for entry in job["log"]] == ["trigger", "resolve"]
        # The app is still up and still alerting: a new bug would page.
        assert httpx.get(app + "books/1", timeout=5).json()["id"] == 1
        assert httpx.get(app + "health", timeout=5).status_code == 200
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
