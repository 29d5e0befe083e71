"""The report and the timeline against REST answers shaped like PagerDuty's own.

See ``recorded.py``: pagination with ``more``/``offset``, every common log entry type,
an incident with no acknowledgement and one still open, a responder in America/Lima.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pd_integrations.insights import build_report, fold_incident, timeline
from pd_integrations.rest import RestClient

from .recorded import API, INCIDENTS, LOG_ENTRIES, RecordedPagerDuty

SINCE = datetime(2015, 10, 6, tzinfo=UTC)
UNTIL = datetime(2015, 10, 8, tzinfo=UTC)


@pytest.fixture
def recorded() -> RecordedPagerDuty:
    return RecordedPagerDuty()


@pytest.fixture
def client(recorded: RecordedPagerDuty) -> Iterator[RestClient]:
    with RestClient("recorded", base_url=API, transport=httpx.MockTransport(recorded)) as rest:
        yield rest


@pytest.fixture
def report(client: RestClient) -> dict[str, Any]:
    return build_report(
        client, since=SINCE, until=UNTIL, sla=timedelta(minutes=30), now=lambda: UNTIL
    )


def test_figures(report: dict[str, Any]) -> None:
    totals = report["totals"]
    assert (totals["incidents"], totals["triggers"], totals["open"]) == (3, 3, 1)
    assert totals["mtta"] == {"count": 1, "median_seconds": 480.0, "p90_seconds": 480.0}
    assert totals["mttr"] == {"count": 2, "median_seconds": 1920.0, "p90_seconds": 3600.0}
    # 03:00Z is 22:00 in Lima, 13:00Z is 08:00: both before or after working hours.
    assert totals["noise"] == {"unacknowledged": 1, "flapping": 0, "out_of_hours": 2}
    assert totals["sla"]["breaches"] == ["PT4KHLK", "PT4KHLM"]
    assert totals["sla"]["share_within"] == round(1 / 3, 4)


def test_alerts_by_dedup_key_else_normalised_title(report: dict[str, Any]) -> None:
    keys = {row["key"]: row for row in report["alerts"]}
    assert set(keys) == {
        "baf7cf21b1da41b4b0db2524e6e4a7e6",
        "prod:web:slow_request:GET /checkout",
        "title:disk <n>% full on db<n>",
    }
    slow = keys["prod:web:slow_request:GET /checkout"]
    assert slow["source"]["alert_type"] == "slow_request"
    assert slow["suggestion"].startswith("raise slow_request_ms for route /checkout")
    disk = keys["title:disk <n>% full on db<n>"]
    assert disk["open"] == 1
    assert disk["suggestion"].startswith("not sent by pd_integrations")


def test_pages_are_followed_and_users_asked_once(
    report: dict[str, Any], recorded: RecordedPagerDuty
) -> None:
    asked = [(r.url.path, r.url.params.get("offset")) for r in recorded.requests]
    assert asked.count(("/incidents/PT4KHLK/log_entries", "2")) == 1
    assert asked.count(("/incidents/PT4KHLK/log_entries", "4")) == 1
    assert [path for path, _ in asked].count("/users/PXPGF42") == 1
    incidents = [r for r in recorded.requests if r.url.path == "/incidents"]
    # One listing per UTC day of the window, each in UTC.
    assert [r.url.params["since"] for r in incidents] == [
        "2015-10-06T00:00:00+00:00",
        "2015-10-07T00:00:00+00:00",
    ]


def test_fold_reads_entries_in_any_order() -> None:
    fire = INCIDENTS[0]
    newest_first = fold_incident(fire, LOG_ENTRIES[fire["id"]])
    oldest_first = fold_incident(fire, list(reversed(LOG_ENTRIES[fire["id"]])))
    assert newest_first == oldest_first
    assert newest_first.responder_id == "PXPGF42"
    assert newest_first.resolved_by == "user"


def test_timeline_markdown(client: RestClient) -> None:
    fire = timeline(client, "PT4KHLK")
    assert fire.startswith("# Incident #1234 The server is on fire.\n")
    assert "- **Time to acknowledge:** 8m00s" in fire
    rows = [line for line in fire.splitlines() if line.startswith("| 2015")]
    assert rows == [
        "| 2015-10-06 21:30:42 | +0s | Triggered by Events API v2 |",
        "| 2015-10-06 21:30:43 | +1s | Notified Earline Greenholt by sms |",
        "| 2015-10-06 21:38:42 | +8m00s | Acknowledged by Earline Greenholt |",
        "| 2015-10-06 22:10:00 | +39m18s | Note: Rolled back the deploy |",
        "| 2015-10-06 22:30:42 | +1h00m | Resolved by Earline Greenholt |",
    ]
    slow = timeline(client, "PT4KHLL")
    assert "## Alert details (pd_integrations)" in slow
    assert "- **route:** /checkout" in slow
    assert "- **release:** web@1.4.2" in slow
    disk = timeline(client, "PT4KHLM")
    assert "Escalated" in disk
    assert "Snoozed by Earline Greenholt" in disk
    assert "Time to resolve" not in disk
