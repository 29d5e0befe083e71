"""Exact figures from a month of incidents in the emulator (see ``dataset.py``).

The report reads the emulator through its REST API, exactly as it reads PagerDuty, with
the emulator's clock and the report's clock both fixed, so every number is known.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from pd_integrations.emulator import Emulator
from pd_integrations.emulator.resources import service_id
from pd_integrations.insights import SCHEMA, build_report, render_json, render_text
from pd_integrations.rest import RestClient

from .dataset import JUNE, KEY_A, KEY_B, MAY, MovableNow

SERVICE_A, SERVICE_B = service_id(KEY_A), service_id(KEY_B)


@pytest.fixture(scope="module")
def report(month: tuple[Emulator, MovableNow]) -> dict[str, Any]:
    emulator, _ = month
    with RestClient("token", base_url=emulator.rest_url) as client:
        return build_report(
            client,
            since=MAY,
            until=JUNE,
            sla=timedelta(minutes=30),
            sla_by_service={SERVICE_B: timedelta(hours=1)},
            now=lambda: JUNE,
        )


def _alert(report: dict[str, Any], key: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [a for a in report["alerts"] if a["key"] == key]
    assert len(rows) == 1
    return rows[0]


def _spread(median: float | None, p90: float | None, count: int) -> dict[str, Any]:
    return {"count": count, "median_seconds": median, "p90_seconds": p90}


def test_totals(report: dict[str, Any]) -> None:
    totals = report["totals"]
    assert report["schema"] == SCHEMA
    assert totals["incidents"] == 72  # 30 slow + 20 health + 20 payments + 2 disk
    assert totals["triggers"] == 102  # each slow incident saw a repeated trigger
    assert totals["open"] == 1
    assert totals["mtta"] == _spread(180.0, 360.0, 31)
    assert totals["mttr"] == _spread(300.0, 2700.0, 71)
    assert totals["noise"] == {"unacknowledged": 40, "flapping": 10, "out_of_hours": 42}


def test_slow_request_alert_is_never_acknowledged(report: dict[str, Any]) -> None:
    slow = _alert(report, "slow")
    assert (slow["incidents"], slow["triggers"]) == (30, 60)
    assert slow["mtta"] == _spread(None, None, 0)
    # 1 to 5 minutes, six times each: the 15th/16th are 3 min, the 27th is 5 min.
    assert slow["mttr"] == _spread(180.0, 300.0, 30)
    # Noon UTC is 14:00 in Paris: out of hours only on May's nine weekend days.
    assert slow["noise"] == {"unacknowledged": 30, "flapping": 0, "out_of_hours": 9}
    assert slow["source"]["route"] == "/checkout"
    assert slow["suggestion"].startswith("raise slow_request_ms for route /checkout")


def test_health_check_flaps(report: dict[str, Any]) -> None:
    health = _alert(report, "health")
    assert health["incidents"] == 20
    assert health["mtta"] == _spread(180.0, 180.0, 10)
    assert health["mttr"] == _spread(750.0, 1200.0, 20)
    # The 02:20 trigger comes 15 minutes after the 02:05 resolve; 02:00 UTC is 04:00
    # in Paris.
    assert health["noise"] == {"unacknowledged": 10, "flapping": 10, "out_of_hours": 20}
    assert health["suggestion"] == (
        "raise the failure_threshold of health check 'db': it recovers on its own"
    )


def test_out_of_hours_in_each_responders_time_zone(report: dict[str, Any]) -> None:
    payments = _alert(report, "payments")
    assert payments["mtta"] == _spread(240.0, 360.0, 20)
    assert payments["mttr"] == _spread(2700.0, 2700.0, 20)
    # 20:00 UTC: 22:00 for Alice in Paris (10 pages, all out of hours), 16:00 for Bob in
    # New York (out of hours only on May 3rd, 9th and 17th, weekend days).
    assert payments["noise"] == {"unacknowledged": 0, "flapping": 0, "out_of_hours": 13}
    assert (
        payments["suggestion"] == "route ValueError for route /pay with a lower severity "
        "(an alerting rule)"
    )


def test_sla_breaches_per_service(
    report: dict[str, Any], month: tuple[Emulator, MovableNow]
) -> None:
    emulator, _ = month
    services = {row["id"]: row for row in report["services"]}
    a, b = services[SERVICE_A]["sla"], services[SERVICE_B]["sla"]
    assert a["target_seconds"] == 1800.0
    # The disk incident resolved after 2 h, and the one still open at June 1st.
    assert (a["evaluated"], a["within"], a["breached"]) == (52, 50, 2)
    assert a["share_within"] == round(50 / 52, 4)
    assert a["breaches"] == [alert["id"] for alert in emulator.alerts(dedup_key="disk")]
    assert b == {
        "target_seconds": 3600.0,
        "evaluated": 20,
        "within": 20,
        "breached": 0,
        "share_within": 1.0,
        "breaches": [],
    }
    assert report["totals"]["sla"]["share_within"] == round(70 / 72, 4)


def test_noisiest_first_and_daily_series(report: dict[str, Any]) -> None:
    assert report["noisiest"][:3] == ["health", "slow", "payments"]
    assert len(report["days"]) == 31
    may_first = report["days"][0]
    # slow + two health + payments; the MTTA median of Alice's 3 min and Bob's 2 min.
    assert may_first == {
        "date": "2026-05-01",
        "incidents": 4,
        "mtta_median_seconds": 150.0,
        "mttr_median_seconds": 750.0,
    }


def test_service_and_team_filters_are_sent(month: tuple[Emulator, MovableNow]) -> None:
    emulator, _ = month
    with RestClient("token", base_url=emulator.rest_url) as client:
        only_b = build_report(
            client, since=MAY, until=JUNE, service_ids=[SERVICE_B], now=lambda: JUNE
        )
        team = build_report(client, since=MAY, until=JUNE, team_ids=["PTEAM01"], now=lambda: JUNE)
    assert only_b["totals"]["incidents"] == 20
    assert [s["id"] for s in only_b["services"]] == [SERVICE_B]
    # Emulated services belong to no team.
    assert team["totals"]["incidents"] == 0


def test_text_and_json_renderings(report: dict[str, Any]) -> None:
    text = render_text(report)
    assert "Noisiest alerts" in text
    assert "raise slow_request_ms for route /checkout" in text
    assert "SLA (time to resolve)" in text
    assert "96.2%" in text
    assert json.loads(render_json(report)) == report


def test_log_entries_served_like_pagerduty(month: tuple[Emulator, MovableNow]) -> None:
    emulator, _ = month
    (first_health,) = [a for a in emulator.alerts(dedup_key="health")][1:2]
    with httpx.Client(
        base_url=emulator.rest_url, headers={"Authorization": "Token token=t"}
    ) as http:
        page = http.get(
            f"/incidents/{first_health['id']}/log_entries", params={"limit": 2, "offset": 1}
        ).json()
        overview = http.get(
            f"/incidents/{first_health['id']}/log_entries", params={"is_overview": "true"}
        ).json()
    assert (page["limit"], page["offset"], page["more"]) == (2, 1, True)
    assert [e["type"] for e in overview["log_entries"]] == [
        "resolve_log_entry",
        "acknowledge_log_entry",
        "trigger_log_entry",
    ]
    ack = overview["log_entries"][1]
    assert ack["agent"]["type"] == "user_reference"
    assert ack["agent"]["id"] == "PALICE1"
    assert ack["created_at"] == "2026-05-01T02:23:00.000Z"
    trigger = overview["log_entries"][2]
    assert trigger["channel"]["details"] == {"alert_type": "health_check", "check": "db"}
