"""The demo, end to end against an in-process emulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pd_integrations import AlertManager
from pd_integrations.cli import main
from pd_integrations.demo import (
    DEMO_ROUTING_KEY,
    STORM_SIZE,
    DemoResult,
    Say,
    alerts_table,
    run_demo,
)
from pd_integrations.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
# Each test's own key: the rate budget is shared per key within the process.
KEY_A = "demotestroutingkey00000000000001"
KEY_B = "demotestroutingkey00000000000002"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def result(emulator: Emulator) -> DemoResult:
    lines: list[str] = []
    result = run_demo(emulator, say=lines.append, routing_key=KEY_A)
    assert any("error storm" in line for line in lines)
    return result


def by_type(result: DemoResult) -> dict[str, dict[str, object]]:
    return {str(alert["dedup_key"]).split(":")[1]: alert for alert in result.alerts}


def test_the_storm_is_one_alert_with_an_occurrence_count(
    result: DemoResult, emulator: Emulator
) -> None:
    storms = [a for a in emulator.alerts() if "TimeoutError" in str(a["summary"])]
    assert len(storms) == 1
    (storm,) = storms
    # 200 errors, one trigger on the wire; the rest counted, not sent.
    assert storm["trigger_count"] == 1
    assert storm["status"] == "triggered"
    assert storm["severity"] == "error"
    assert result.occurrences[storm["dedup_key"]] == STORM_SIZE
    assert result.suppressed == STORM_SIZE - 1


def test_every_kind_of_alert_arrives(result: DemoResult, emulator: Emulator) -> None:
    assert result.flushed
    assert result.alerts == emulator.alerts(routing_key=KEY_A)
    assert len(result.alerts) == 4
    critical = next(a for a in result.alerts if "ZeroDivisionError" in a["summary"])
    assert (critical["status"], critical["severity"]) == ("triggered", "critical")
    assert critical["custom_details"]["exception"]["type"] == "ZeroDivisionError"
    assert critical["client_url"] == emulator.console_url
    slow = next(a for a in result.alerts if a["summary"].startswith("Slow request"))
    assert (slow["status"], slow["severity"]) == ("triggered", "warning")
    health = next(a for a in result.alerts if a["dedup_key"] == "demo:health_check:database")
    assert health["status"] == "resolved"
    assert health["severity"] == "critical"
    assert [entry["action"] for entry in health["log"]] == ["trigger", "resolve"]
    (change,) = result.change_events
    assert change["body"]["payload"]["summary"] == "Deployed checkout-service v1.4.2"
    requests = emulator.requests()
    assert len(requests) == 6
    assert all(r["status"] == 202 for r in requests)


def test_dispatcher_stats(result: DemoResult) -> None:
    stats = result.stats
    # 3 triggers that stay open, the health trigger and its resolve, the change event.
    assert (stats.sent, stats.failed, stats.dropped, stats.queued) == (6, 0, 0, 0)


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
    storm = next(line for line in lines if "TimeoutError" in line)
    assert storm.split()[:4] == ["triggered", "error", "1", str(STORM_SIZE)]
    health = next(line for line in lines if "health_check" in line)
    assert health.split()[:4] == ["resolved", "critical", "1", "-"]


def test_the_traffic_is_swappable(emulator: Emulator) -> None:
    def traffic(manager: AlertManager, say: Say) -> None:
        manager.warning("Only this", alert_type="custom")
        say("sent one")

    lines: list[str] = []
    result = run_demo(emulator, traffic=traffic, say=lines.append, routing_key=KEY_B)
    assert [a["summary"] for a in result.alerts] == ["Only this"]
    assert result.change_events == []
    assert "sent one" in lines


def test_the_demo_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["demo"]) == 0
    assert time.monotonic() - started < 15
    out = capsys.readouterr().out
    assert out.startswith("Emulator running at http://127.0.0.1:")
    assert "error storm: 200 identical TimeoutErrors" in out
    assert "OCCURRENCES" in out
    assert "Change event: Deployed checkout-service v1.4.2" in out
    assert "Dispatcher: 6 sent, 0 retried, 0 failed" in out
    assert "199 repeats of open alerts suppressed" in out
    assert DEMO_ROUTING_KEY not in out


def test_the_demo_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--storm", "50"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "error storm: 50 identical" in captured.err  # progress stays off stdout
    assert report["delivered"] is True
    assert report["stats"]["sent"] == 6
    assert report["stats"]["suppressed"] == 49
    statuses = sorted((a["status"], a["severity"]) for a in report["alerts"])
    assert statuses == [
        ("resolved", "critical"),
        ("triggered", "critical"),
        ("triggered", "error"),
        ("triggered", "warning"),
    ]
    storm = next(a for a in report["alerts"] if "TimeoutError" in a["summary"])
    assert (storm["trigger_count"], storm["occurrences"]) == (1, 50)
    assert [c["summary"] for c in report["change_events"]] == ["Deployed checkout-service v1.4.2"]
    assert all("routing_key" not in alert for alert in report["alerts"])


def test_bad_storm_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--storm", "0"]) == 2
    assert capsys.readouterr().err == "pd-integrations: error: --storm must be at least 1\n"


def test_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pd-integrations: error: cannot start the emulator:")


def test_keep_running_until_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "pd_integrations", "demo", "--keep-running", "--storm", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        console = None
        for line in process.stdout:
            if line.startswith("Console: "):
                console = line.split()[1]
                break
        assert console is not None, process.stderr.read() if process.stderr else ""
        page = httpx.get(console, timeout=5)
        assert page.status_code == 200
        alerts = httpx.get(console + "api/alerts", timeout=5).json()
        assert len(alerts) == 4
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pd-integrations: error: argument --port: expected a port from 0")
