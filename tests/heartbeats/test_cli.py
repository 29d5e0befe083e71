"""``pd-integrations run/watchdog/monitors`` as real processes against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pd_integrations.emulator import Emulator

ROUTING_KEY = "heartbeatclitestroutingkey000001"
START_TIMEOUT = 60.0


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, seed=7) as running:
        yield running


@pytest.fixture
def env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
    environ.update(
        PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
        PAGERDUTY_EVENTS_BASE_URL=emulator.url,
        PAGERDUTY_HEARTBEAT_FILE=str(tmp_path / "heartbeats.sqlite3"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return environ


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pd_integrations", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def run(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return cli(
        env, "run", "--monitor", "backup", "--interval", "3600", "--",
        sys.executable, "-c", code,
    )  # fmt: skip


def test_run_passes_the_exit_status_through_and_checks_in(
    emulator: Emulator, env: dict[str, str]
) -> None:
    ok = run(env, "print('all good')")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "all good\n"
    assert emulator.events() == []  # a success with nothing open sends nothing

    failed = run(
        env,
        "import sys; print('password=hunter2 step 3 broke'); "
        "print('disk full', file=sys.stderr); sys.exit(1)",
    )
    assert failed.returncode == 1
    assert "disk full" in failed.stderr
    [event] = emulator.wait_for_events(1, timeout=START_TIMEOUT)
    payload = event["body"]["payload"]
    assert event["type"] == "trigger"
    assert payload["custom_details"]["exit_status"] == 1
    assert "disk full" in payload["custom_details"]["output_tail"]
    assert "hunter2" not in json.dumps(payload)

    killed = run(env, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == 137
    # The same monitor's alert is already open: no second page for a second failure.
    assert [e["type"] for e in emulator.events()] == ["trigger"]

    again = run(env, "pass")
    assert again.returncode == 0
    events = emulator.wait_for_events(2, timeout=START_TIMEOUT)
    assert [e["type"] for e in events] == ["trigger", "resolve"]
    assert events[1]["dedup_key"] == events[0]["dedup_key"]

    listing = cli(env, "monitors", "--json")
    assert listing.returncode == 0, listing.stderr
    [row] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert row["monitor"] == "backup"
    assert row["schedule"] == "every 3600s"
    assert row["last_status"] == "ok"
    assert row["state"] == "ok"


def test_watchdog_once_pages_a_missed_run(emulator: Emulator, env: dict[str, str]) -> None:
    declared = cli(env, "run", "--monitor", "tick", "--interval", "0.001", "--grace", "0.001",
                   "--", sys.executable, "-c", "pass")  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    watched = cli(env, "watchdog", "--once")
    assert watched.returncode == 0, watched.stderr
    assert "tick: trigger missed" in watched.stdout
    [event] = emulator.wait_for_events(1, timeout=START_TIMEOUT)
    assert event["body"]["payload"]["custom_details"]["reason"] == "missed"


def test_run_without_a_schedule_for_an_unknown_monitor_is_a_usage_error(
    env: dict[str, str],
) -> None:
    result = cli(env, "run", "--monitor", "nope", "--", "true")
    assert result.returncode == 2
    assert "no monitor named 'nope'" in result.stderr
