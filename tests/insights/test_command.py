"""``pd-integrations report`` and ``timeline``, the option parsers and the REST pacing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pd_integrations.cli.main import main
from pd_integrations.emulator import Emulator
from pd_integrations.insights import PacedTransport, parse_duration, parse_sla, parse_when
from tests.clock import FakeClock

from .dataset import MovableNow


def _run(emulator: Emulator, *argv: str) -> list[str]:
    return [*argv, "--api-key", "token", "--base-url", emulator.rest_url]


def test_report_json_through_the_command(
    month: tuple[Emulator, MovableNow], capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, _ = month
    argv = [
        "report",
        "--since",
        "2026-05-01",
        "--until",
        "2026-06-01",
        "--sla",
        "30m",
        "--sla",
        "PNOSUCH=5m",
        "--format",
        "json",
    ]
    assert main(_run(emulator, *argv)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["incidents"] == 72
    assert report["settings"]["sla_by_service_seconds"] == {"PNOSUCH": 300.0}
    assert report["window"] == {"since": "2026-05-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}


def test_report_html_to_a_file(month: tuple[Emulator, MovableNow], tmp_path: Path) -> None:
    emulator, _ = month
    out = tmp_path / "report.html"
    argv = [
        "report",
        "--since",
        "2026-05-01",
        "--until",
        "2026-06-01",
        "--format",
        "html",
        "-o",
        str(out),
    ]
    assert main(_run(emulator, *argv)) == 0
    page = out.read_text("utf-8")
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_timeline_command(
    month: tuple[Emulator, MovableNow], capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, _ = month
    (first,) = emulator.alerts(dedup_key="disk")[:1]
    assert main(_run(emulator, "timeline", first["id"])) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Incident #{first['incident_number']} Disk 91% full on db3")
    assert "Acknowledged by Alice Paris" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--since", "yesterday"], "expected an ISO 8601 date"),
        (["report", "--sla", "fast"], "expected a duration such as 30m"),
        (["report", "--since", "1d", "--until", "2d"], "must come after --since"),
        (["report", "--time-zone", "Mars/Olympus"], "--time-zone must be an IANA zone"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--api-key", "token", "--base-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_unknown_incident_exits_1(
    month: tuple[Emulator, MovableNow], capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, _ = month
    assert main(_run(emulator, "timeline", "PNOPE00")) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_parsers() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_sla(["30m", "PABC=1h"]) == (timedelta(minutes=30), {"PABC": timedelta(hours=1)})
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert parse_when("7d", now) == datetime(2026, 5, 25, tzinfo=UTC)
    assert parse_when("2026-05-02T10:00", now) == datetime(2026, 5, 2, 10, tzinfo=UTC)
    for bad in ("", "0m", "10", "m5"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_pacing_waits_when_the_minute_is_full_and_says_so() -> None:
    clock = FakeClock()
    waits: list[float] = []
    notices: list[str] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    answers = iter([200, 200, 429, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), headers={"ratelimit-reset": "7"})

    transport = PacedTransport(
        httpx.MockTransport(answer), per_minute=2, notice=notices.append, clock=clock, sleep=sleep
    )
    with httpx.Client(transport=transport) as http:
        http.get("http://pd.test/a")
        clock.advance(10)
        http.get("http://pd.test/b")
        http.get("http://pd.test/c")  # the third within 60 s: waits for the first to age out
        http.get("http://pd.test/d")
    assert waits == [50.0, 10.0]
    assert notices == [
        "pausing 50s to stay within PagerDuty's REST limit of 2 requests/min",
        "PagerDuty is throttling this API key (HTTP 429); retrying in 7s as it asks",
        "pausing 10s to stay within PagerDuty's REST limit of 2 requests/min",
    ]
    assert transport.requests == 4
