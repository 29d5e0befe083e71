"""The ``pd-integrations`` command against the real emulator on a free local port."""

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
from typing import Any

import pytest

from pd_integrations import EventsClient
from pd_integrations.cli.main import main
from pd_integrations.delivery.dispatcher import Dispatcher
from pd_integrations.emulator import Emulator
from pd_integrations.events import TriggerEvent

KEY = "c1itestroutingkey000000000000001"
RULESET_KEY = "R1itestroutingkey000000000000001"
ROOT = Path(__file__).resolve().parents[2]
ENV_VARS = (
    "PAGERDUTY_ROUTING_KEY",
    "PAGERDUTY_INTEGRATION_KEY",
    "PAGERDUTY_EVENTS_BASE_URL",
    "APP_NAME",
    "APP_ENV",
    "APP_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def emulator(server: Emulator) -> Emulator:
    server.reset()
    return server


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    with Emulator(port=0, tls=True, ca_file=ca_file) as emulator:
        yield emulator


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Run:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err

    def json(self) -> Any:
        return json.loads(self.out)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return Run(status, captured.out, captured.err)


def to(emulator: Emulator, *argv: str) -> list[str]:
    """``argv`` plus the flags that aim a command at ``emulator`` with ``KEY``."""
    return [*argv, "--routing-key", KEY, "--base-url", emulator.url]


def assert_one_error_line(result: Run, status: int, *fragments: str) -> None:
    assert result.status == status, (result.out, result.err)
    assert result.err.startswith("pd-integrations: error: ")
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert KEY not in result.err
    for fragment in fragments:
        assert fragment in result.err


# -- trigger -------------------------------------------------------------------------------


def test_trigger_sends_every_field_and_prints_the_dedup_key(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    result = run(
        capsys,
        *to(
            emulator,
            "trigger",
            "Disk full on db1",
            "--severity",
            "CRITICAL",
            "--source",
            "db1.example.com",
            "--component",
            "postgres",
            "--group",
            "databases",
            "--class",
            "disk",
            "--dedup-key",
            "disk-db1",
            "--timestamp",
            "2026-01-02T03:04:05+01:00",
        ),
    )
    assert result.status == 0, result.err
    assert result.out == "disk-db1\n"
    assert result.err == ""
    (alert,) = emulator.alerts()
    assert alert["dedup_key"] == "disk-db1"
    assert alert["status"] == "triggered"
    assert alert["severity"] == "critical"
    assert alert["summary"] == "Disk full on db1"
    assert alert["source"] == "db1.example.com"
    assert (alert["component"], alert["group"], alert["class"]) == ("postgres", "databases", "disk")
    assert alert["timestamp"] == "2026-01-02T02:04:05.000Z"
    assert alert["routing_key"] == KEY


def test_trigger_without_dedup_key_prints_the_generated_one(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    result = run(capsys, *to(emulator, "trigger", "--summary", "Queue backed up"))
    assert result.status == 0, result.err
    key = result.out.strip()
    assert len(key) == 32
    (alert,) = emulator.alerts()
    assert alert["dedup_key"] == key
    assert alert["severity"] == "error"
    assert alert["summary"] == "Queue backed up"


def test_source_defaults_to_app_name(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_NAME", "billing")
    assert run(capsys, *to(emulator, "trigger", "Invoices stuck")).status == 0
    assert emulator.alerts()[0]["source"] == "billing"


def test_trigger_json_prints_pagerduty_answer(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    result = run(capsys, *to(emulator, "trigger", "Disk full", "--dedup-key", "k1", "--json"))
    assert result.status == 0
    assert result.json() == {"status": "success", "message": "Event processed", "dedup_key": "k1"}


def test_details_from_json_and_key_value_pairs(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    result = run(
        capsys,
        *to(
            emulator,
            "trigger",
            "Disk full",
            "--details",
            '{"region": "eu-west-1", "free_bytes": 0, "mounts": ["/", "/var"], "host": "old"}',
            "--detail",
            "host=db1",
            "--detail",
            "query=a=b",
            "--detail",
            "password=hunter2",
        ),
    )
    assert result.status == 0, result.err
    assert emulator.alerts()[0]["custom_details"] == {
        "region": "eu-west-1",
        "free_bytes": 0,
        "mounts": ["/", "/var"],
        "host": "db1",
        "query": "a=b",
        "password": "[Filtered]",
    }


def test_details_from_a_file(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "details.json"
    path.write_text('{"build": 42}', encoding="utf-8")
    assert run(capsys, *to(emulator, "trigger", "x", "--details", f"@{path}")).status == 0
    assert emulator.alerts()[0]["custom_details"] == {"build": 42}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--details", "{not json"], "--details is not valid JSON"),
        (["--details", "[1, 2]"], "--details must be a JSON object"),
        (["--details", "@/nonexistent/details.json"], "cannot read --details file"),
        (["--detail", "no-equals-sign"], "--detail takes KEY=VALUE"),
        (["--link", "/relative/path"], "--link needs an absolute http(s) URL"),
        (["--image", "http://example.com/graph.png"], "image src must be an https:// URL"),
        (["--timestamp", "yesterday"], "timestamp 'yesterday'"),
        (["--severity", "fatal"], "invalid choice: 'fatal'"),
        (["--timeout", "0"], "expected a positive number of seconds"),
        (["--retries", "-1"], "expected 0 or more"),
    ],
)
def test_bad_event_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, flags: list[str], message: str
) -> None:
    result = run(capsys, *to(emulator, "trigger", "Disk full", *flags))
    assert_one_error_line(result, 2, message)
    assert result.out == ""
    assert emulator.requests() == []


def test_links_and_images(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(
        capsys,
        *to(
            emulator,
            "trigger",
            "Disk full",
            "--link",
            "https://runbooks.example.com/disk=Runbook",
            "--link",
            "https://grafana.example.com/d/disk?var-host=db1&from=now-1h Dashboard",
            "--link",
            "https://status.example.com/?page=1",
            "--image",
            "https://grafana.example.com/render/disk.png",
        ),
    )
    assert result.status == 0, result.err
    (alert,) = emulator.alerts()
    assert alert["links"] == [
        {"href": "https://runbooks.example.com/disk", "text": "Runbook"},
        {
            "href": "https://grafana.example.com/d/disk?var-host=db1&from=now-1h",
            "text": "Dashboard",
        },
        {"href": "https://status.example.com/?page=1"},
    ]
    assert alert["images"] == [{"src": "https://grafana.example.com/render/disk.png"}]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trigger"], "a summary is required"),
        (["trigger", "  "], "a summary is required"),
        (["trigger", "one", "--summary", "two"], "give the summary once"),
        (["change"], "a summary is required"),
        (["acknowledge"], "acknowledge needs the dedup key"),
        (["resolve", "a", "--dedup-key", "b"], "give the dedup key once"),
        (["trigger", "x", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_missing_or_conflicting_arguments(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, argv: list[str], message: str
) -> None:
    assert_one_error_line(run(capsys, *to(emulator, *argv)), 2, message)


# -- configuration -------------------------------------------------------------------------


def test_routing_key_and_base_url_from_the_environment(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", KEY)
    monkeypatch.setenv("PAGERDUTY_EVENTS_BASE_URL", emulator.url)
    result = run(capsys, "trigger", "From the environment", "--dedup-key", "env")
    assert result.status == 0, result.err
    assert emulator.alerts(routing_key=KEY)[0]["dedup_key"] == "env"


def test_missing_routing_key(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(capsys, "trigger", "x", "--base-url", emulator.url)
    assert_one_error_line(result, 2, "no PagerDuty routing key", "PAGERDUTY_ROUTING_KEY")


def test_malformed_routing_key_is_masked(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    bad = KEY + "-extra"
    result = run(capsys, "trigger", "x", "--routing-key", bad, "--base-url", emulator.url)
    assert_one_error_line(result, 2, "malformed PagerDuty routing key", "****xtra")
    assert bad not in result.err
    assert emulator.requests() == []


def test_a_stray_key_in_the_arguments_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "trigger", "x", KEY)
    assert_one_error_line(result, 2, "unrecognized arguments: ****0001")


def test_invalid_base_url(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "trigger", "x", "--routing-key", KEY, "--base-url", "ftp://example.com")
    assert_one_error_line(result, 2, "base URL must be an http:// or https:// URL")


def test_unreadable_ca_file(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(capsys, *to(emulator, "trigger", "x", "--ca-file", "/nonexistent/ca.pem"))
    assert_one_error_line(result, 2, "cannot use --ca-file /nonexistent/ca.pem")


# -- failures --------------------------------------------------------------------------------


def test_server_errors_exit_1(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    emulator.set_faults(error_rate=1.0)
    result = run(capsys, *to(emulator, "trigger", "x", "--retries", "0"))
    assert_one_error_line(result, 1, "gave up on the trigger event after 1 attempt(s)", "HTTP 5")
    assert result.out == ""
    assert len(emulator.requests()) == 1
    assert emulator.alerts() == []


def test_retries_are_counted(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    emulator.set_faults(error_rate=1.0)
    result = run(capsys, *to(emulator, "resolve", "k", "--retries", "1"))
    assert_one_error_line(result, 1, "after 2 attempt(s)")
    assert len(emulator.requests()) == 2


def test_rate_limited_exits_1_with_json(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    emulator.set_faults(rate_limit_429_rate=1.0)
    result = run(capsys, *to(emulator, "acknowledge", "k", "--retries", "0", "--json"))
    assert_one_error_line(result, 1, "HTTP 429")
    body = result.json()
    assert body["status"] == "error"
    assert body["status_code"] == 429
    assert "rate-limited" in body["message"]


def test_pagerduty_refusal_exits_1_with_its_errors(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    # A global-ruleset key cannot take change events: PagerDuty answers 400.
    argv = ["change", "Deployed", "--routing-key", RULESET_KEY, "--base-url", emulator.url]
    result = run(capsys, *argv, "--json")
    assert_one_error_line(result, 1, "HTTP 400", "global ruleset")
    assert RULESET_KEY not in result.err + result.out
    body = result.json()
    assert body["status_code"] == 400
    assert any("global ruleset" in error for error in body["errors"])
    assert len(emulator.requests()) == 1


def test_unreachable_base_url_fails_fast(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    started = time.monotonic()
    result = run(
        capsys,
        "trigger",
        "x",
        "--routing-key",
        KEY,
        "--base-url",
        f"http://127.0.0.1:{closed_port}",
        "--retries",
        "0",
    )
    assert time.monotonic() - started < 5
    assert_one_error_line(result, 1, "could not reach PagerDuty", "Connection refused")


def test_verbose_logs_attempts_with_a_masked_key(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    result = run(capsys, *to(emulator, "trigger", "x", "--dedup-key", "v", "-v"))
    assert result.status == 0
    assert "attempt 1" in result.err
    assert "****0001" in result.err
    assert KEY not in result.err


# -- acknowledge, resolve, change --------------------------------------------------------------


def test_acknowledge_then_resolve(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    assert run(capsys, *to(emulator, "trigger", "Disk full", "--dedup-key", "disk")).status == 0
    result = run(capsys, *to(emulator, "acknowledge", "disk"))
    assert (result.status, result.out) == (0, "disk\n")
    assert emulator.alerts()[0]["status"] == "acknowledged"
    result = run(capsys, *to(emulator, "resolve", "--dedup-key", "disk", "--json"))
    assert result.status == 0
    assert result.json()["dedup_key"] == "disk"
    assert emulator.alerts()[0]["status"] == "resolved"


def test_change_event(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(
        capsys,
        *to(
            emulator,
            "change",
            "Deployed checkout v1.4.2",
            "--source",
            "ci",
            "--detail",
            "version=1.4.2",
            "--link",
            "https://ci.example.com/builds/42=Build 42",
            "--image",
            "https://ci.example.com/badge.png",
        ),
    )
    assert result.status == 0, result.err
    assert result.out == "Change event processed\n"
    assert emulator.alerts() == []
    (event,) = emulator.events()
    assert event["type"] == "change"
    body = event["body"]
    assert body["payload"]["summary"] == "Deployed checkout v1.4.2"
    assert body["payload"]["source"] == "ci"
    assert body["payload"]["custom_details"] == {"version": "1.4.2"}
    assert body["links"] == [{"href": "https://ci.example.com/builds/42", "text": "Build 42"}]
    assert body["images"] == [{"src": "https://ci.example.com/badge.png"}]


def test_change_json_has_no_dedup_key(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    result = run(capsys, *to(emulator, "change", "Config reloaded", "--json"))
    assert result.status == 0
    assert result.json() == {
        "status": "success",
        "message": "Change event processed",
        "dedup_key": None,
    }


# -- TLS -------------------------------------------------------------------------------------


def test_tls_with_the_emulator_ca(
    capsys: pytest.CaptureFixture[str], tls_emulator: Emulator
) -> None:
    ca_file = str(tls_emulator.ca_file)
    argv = ["trigger", "Over TLS", "--routing-key", KEY, "--base-url", tls_emulator.url]
    result = run(capsys, *argv, "--ca-file", ca_file, "--dedup-key", "tls")
    assert result.status == 0, result.err
    assert tls_emulator.alerts(dedup_key="tls")[0]["summary"] == "Over TLS"


def test_tls_without_the_ca_fails(
    capsys: pytest.CaptureFixture[str], tls_emulator: Emulator
) -> None:
    argv = ["trigger", "x", "--routing-key", KEY, "--base-url", tls_emulator.url]
    result = run(capsys, *argv, "--retries", "0")
    assert_one_error_line(result, 1, "CERTIFICATE_VERIFY_FAILED")


# -- check -------------------------------------------------------------------------------------


def test_check_all_good(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(capsys, *to(emulator, "check"))
    assert result.status == 0, result.out
    assert KEY not in result.out
    lines = result.out.splitlines()
    assert lines[0].startswith("OK    routing key  ****0001 (from --routing-key)")
    assert lines[1].startswith(f"OK    base URL     {emulator.url} (from --base-url)")
    assert lines[2] == f"OK    reachable    {emulator.url} answered HTTP 200"
    assert lines[-1] == "All checks passed."
    assert emulator.requests() == []  # checking sends no event


def test_check_json_from_the_environment(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", KEY)
    monkeypatch.setenv("PAGERDUTY_EVENTS_BASE_URL", emulator.url + "/")
    result = run(capsys, "check", "--json")
    assert result.status == 0
    report = result.json()
    assert KEY not in result.out
    assert report["ok"] is True
    assert report["routing_key"] == "****0001"
    assert [(c["name"], c["ok"]) for c in report["checks"]] == [
        ("routing key", True),
        ("base URL", True),
        ("reachable", True),
    ]
    assert "PAGERDUTY_ROUTING_KEY" in report["checks"][0]["detail"]
    assert "PAGERDUTY_EVENTS_BASE_URL" in report["checks"][1]["detail"]


def test_check_ruleset_key_note(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(capsys, "check", "--routing-key", RULESET_KEY, "--base-url", emulator.url)
    assert result.status == 0
    assert "global ruleset key" in result.out


def test_check_reports_every_problem(capsys: pytest.CaptureFixture[str], closed_port: int) -> None:
    started = time.monotonic()
    result = run(
        capsys, "check", "--routing-key", "short", "--base-url", f"http://127.0.0.1:{closed_port}"
    )
    assert time.monotonic() - started < 5
    assert result.status == 1
    lines = result.out.splitlines()
    assert lines[0].startswith("FAIL  routing key  routing key is malformed (****")
    assert lines[1].startswith("OK    base URL")
    assert lines[2].startswith(f"FAIL  reachable    cannot reach 127.0.0.1:{closed_port}")
    assert lines[-1] == "2 problem(s) found."


def test_check_missing_key_and_bad_url_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "check", "--base-url", "not a url", "--json")
    assert result.status == 1
    report = result.json()
    assert report["ok"] is False
    assert report["routing_key"] is None
    assert [(c["name"], c["ok"]) for c in report["checks"]] == [
        ("routing key", False),
        ("base URL", False),
        ("reachable", None),
    ]
    assert "missing" in report["checks"][0]["detail"]


def test_check_defaults_to_pagerduty(capsys: pytest.CaptureFixture[str]) -> None:
    # The real endpoint is not contacted: the invalid CA file stops the check before.
    result = run(capsys, "check", "--routing-key", KEY, "--ca-file", "/nonexistent.pem", "--json")
    report = result.json()
    assert result.status == 1
    assert report["base_url"] == "https://events.pagerduty.com"
    assert [(c["name"], c["ok"]) for c in report["checks"]] == [
        ("routing key", True),
        ("base URL", True),
        ("CA file", False),
        ("reachable", None),
    ]


def test_check_gives_up_on_a_silent_server(capsys: pytest.CaptureFixture[str]) -> None:
    # The kernel completes the connection from the backlog, but nothing ever answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = run(capsys, "check", "--routing-key", KEY, "--base-url", url, "--timeout", "0.3")
        assert time.monotonic() - started < 3
    assert result.status == 1
    assert f"FAIL  reachable    no answer from {url} within 0.3 s" in result.out


def test_check_tls(capsys: pytest.CaptureFixture[str], tls_emulator: Emulator) -> None:
    argv = ["check", "--routing-key", KEY, "--base-url", tls_emulator.url]
    good = run(capsys, *argv, "--ca-file", str(tls_emulator.ca_file))
    assert good.status == 0, good.out
    assert "OK    CA file" in good.out
    bad = run(capsys, *argv)
    assert bad.status == 1
    assert "CERTIFICATE_VERIFY_FAILED" in bad.out
    assert "pass --ca-file" in bad.out


# -- help, version, entry points ---------------------------------------------------------------


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "--help")
    assert result.status == 0
    for command in ("trigger", "acknowledge", "resolve", "change", "check", "emulator", "demo"):
        assert command in result.out
    assert run(capsys, "--version").out.startswith("pd-integrations ")
    assert_one_error_line(run(capsys), 2, "required: COMMAND")
    assert_one_error_line(run(capsys, "bogus"), 2, "invalid choice: 'bogus'")


def test_emulator_help_shows_the_emulator_flags(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "emulator", "--help")
    assert result.status == 0
    assert result.out.startswith("usage: pd-integrations emulator")
    for flag in ("--port", "--tls", "--rate-limit", "--error-rate", "--outage", "--seed"):
        assert flag in result.out


def test_emulator_ca_file_needs_tls(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_error_line(run(capsys, "emulator", "--ca-file", "ca.pem"), 2, "needs --tls")


def test_emulator_rejects_bad_fault_values(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "emulator", "--error-rate", "2")
    assert_one_error_line(result, 2, "argument --error-rate")


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_python_dash_m_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pd_integrations", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pd-integrations")
    assert "trigger" in done.stdout


def test_emulator_command_runs_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pd_integrations", "emulator", "--port", "0", "--rate-limit", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("PagerDuty emulator listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        with EventsClient(KEY, source="test", base_url=url) as client:
            assert client.trigger("Via the CLI's emulator", "info").status == "success"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_an_unexpected_error_is_still_one_line(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: EventsClient, event: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(EventsClient, "send", broken)
    result = run(capsys, *to(emulator, "trigger", "x"))
    assert_one_error_line(result, 1, "unexpected RuntimeError: boom")


def test_check_never_prints_a_password_from_the_base_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run(
        capsys,
        "check",
        "--routing-key",
        "R0123456789abcdef0123456789abcde",
        "--base-url",
        "https://user:hunter2@127.0.0.1:9",
        "--json",
    )
    assert "hunter2" not in result.out + result.err
    assert result.json()["base_url"] == "https://user:****@127.0.0.1:9"


def test_check_shows_the_delivery_alert_and_what_the_spool_holds_back(
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "pagerduty.spool"
    emulator.revoke(KEY)
    client = EventsClient(KEY, source="tests", base_url=emulator.url)
    dispatcher = Dispatcher(client, spool=spool, rate_limit=None, handle_sigterm=False)
    dispatcher.submit(TriggerEvent("lost page", "critical", "tests", dedup_key="lost"))
    assert dispatcher.flush(30)
    dispatcher.close(5)
    client.close()
    monkeypatch.setenv("PAGERDUTY_SPOOL", str(spool))
    monkeypatch.setenv("PAGERDUTY_DELIVERY_ALERT_ROUTING_KEY", "R" + "0" * 30 + "9")
    result = run(capsys, *to(emulator, "check"))
    lines = {line.split()[1] + line.split()[2]: line for line in result.out.splitlines()[:-1]}
    assert lines["deliveryalert"].startswith("OK")
    assert (
        "to ****0009 (from environment variable PAGERDUTY_DELIVERY_ALERT_ROUTING_KEY)"
        in (lines["deliveryalert"])
    )
    spool_line = next(line for line in result.out.splitlines() if " spool backlog " in line)
    assert spool_line.startswith("WARN")
    assert "0 event(s) waiting; 1 refused by PagerDuty" in spool_line
    assert "Invalid routing key" in spool_line
