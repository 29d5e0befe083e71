"""RestClient and AsyncRestClient against a scripted PagerDuty (every test runs for both)."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from pd_integrations.errors import (
    ConfigurationError,
    DeliveryError,
    PagerDutyError,
    RateLimitedError,
    RestError,
    RestForbiddenError,
    RestInvalidRequestError,
    RestNotFoundError,
    RestRateLimitedError,
    RestServerError,
    RestUnauthorizedError,
)
from pd_integrations.rest import DEFAULT_REST_BASE_URL, AsyncRestClient, RestClient
from tests.rest_fake import API_KEY, FROM, FakePagerDuty, Harness, fail, ok

ENV_VARS = ("PAGERDUTY_API_KEY", "PAGERDUTY_DEFAULT_FROM_EMAIL", "PAGERDUTY_REST_BASE_URL")
START = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
END = START + timedelta(hours=2)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> FakePagerDuty:
    return FakePagerDuty()


@pytest.fixture
def pd(mode: str, fake: FakePagerDuty) -> Iterator[Harness]:
    harness = Harness(mode, fake)
    yield harness
    harness.close()


def make(mode: str, fake: FakePagerDuty, **kwargs: Any) -> Harness:
    return Harness(mode, fake, **kwargs)


# -- every method: the request it sends and what it returns -------------------------


@dataclass
class Case:
    call: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    answer: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    writes_as_user: bool = False


INCIDENT = {"id": "PINC1", "type": "incident", "status": "triggered"}
CASES = [
    Case(
        "list_incidents",
        (),
        {
            "statuses": ["triggered", "acknowledged"],
            "service_ids": ["PSVC1", "PSVC2"],
            "urgencies": "high",
            "since": START,
            "until": "2025-03-02T00:00:00Z",
            "limit": 5,
        },
        "GET",
        "/rest/incidents",
        [
            ("statuses[]", "triggered"),
            ("statuses[]", "acknowledged"),
            ("service_ids[]", "PSVC1"),
            ("service_ids[]", "PSVC2"),
            ("urgencies[]", "high"),
            ("since", "2025-03-01T22:00:00+00:00"),
            ("until", "2025-03-02T00:00:00Z"),
            ("limit", "5"),
        ],
        answer={"incidents": [INCIDENT], "more": False},
        result=[INCIDENT],
    ),
    Case(
        "get_incident",
        ("PINC1",),
        {},
        "GET",
        "/rest/incidents/PINC1",
        answer={"incident": INCIDENT},
        result=INCIDENT,
    ),
    Case(
        "create_incident",
        ("Disk full on db-1", "PSVC1"),
        {
            "urgency": "low",
            "body": "95% used",
            "escalation_policy_id": "PEP1",
            "incident_key": "disk-db-1",
            "priority_id": "PPRI1",
        },
        "POST",
        "/rest/incidents",
        body={
            "incident": {
                "type": "incident",
                "title": "Disk full on db-1",
                "service": {"id": "PSVC1", "type": "service_reference"},
                "urgency": "low",
                "body": {"type": "incident_body", "details": "95% used"},
                "escalation_policy": {"id": "PEP1", "type": "escalation_policy_reference"},
                "incident_key": "disk-db-1",
                "priority": {"id": "PPRI1", "type": "priority_reference"},
            }
        },
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "create_incident",
        ("Disk full", "PSVC1"),
        {},
        "POST",
        "/rest/incidents",
        body={
            "incident": {
                "type": "incident",
                "title": "Disk full",
                "service": {"id": "PSVC1", "type": "service_reference"},
            }
        },
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "acknowledge_incident",
        ("PINC1",),
        {},
        "PUT",
        "/rest/incidents/PINC1",
        body={"incident": {"type": "incident_reference", "status": "acknowledged"}},
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "resolve_incident",
        ("PINC1",),
        {"resolution": "Rotated the logs"},
        "PUT",
        "/rest/incidents/PINC1",
        body={
            "incident": {
                "type": "incident_reference",
                "status": "resolved",
                "resolution": "Rotated the logs",
            }
        },
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "add_note",
        ("PINC1", "Looking into it"),
        {},
        "POST",
        "/rest/incidents/PINC1/notes",
        body={"note": {"content": "Looking into it"}},
        answer={"note": {"id": "PNOTE1", "content": "Looking into it"}},
        result={"id": "PNOTE1", "content": "Looking into it"},
        writes_as_user=True,
    ),
    Case(
        "list_notes",
        ("PINC1",),
        {},
        "GET",
        "/rest/incidents/PINC1/notes",
        answer={"notes": [{"id": "PNOTE1"}, {"id": "PNOTE2"}]},
        result=[{"id": "PNOTE1"}, {"id": "PNOTE2"}],
    ),
    Case(
        "reassign_incident",
        ("PINC1",),
        {"user_ids": ["PUSR1", "PUSR2"]},
        "PUT",
        "/rest/incidents/PINC1",
        body={
            "incident": {
                "type": "incident_reference",
                "assignments": [
                    {"assignee": {"id": "PUSR1", "type": "user_reference"}},
                    {"assignee": {"id": "PUSR2", "type": "user_reference"}},
                ],
            }
        },
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "reassign_incident",
        ("PINC1",),
        {"escalation_policy_id": "PEP2"},
        "PUT",
        "/rest/incidents/PINC1",
        body={
            "incident": {
                "type": "incident_reference",
                "escalation_policy": {"id": "PEP2", "type": "escalation_policy_reference"},
            }
        },
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "merge_incidents",
        ("PINC1", ["PINC2", "PINC3"]),
        {},
        "PUT",
        "/rest/incidents/PINC1/merge",
        body={
            "source_incidents": [
                {"id": "PINC2", "type": "incident_reference"},
                {"id": "PINC3", "type": "incident_reference"},
            ]
        },
        answer={"incident": INCIDENT},
        result=INCIDENT,
        writes_as_user=True,
    ),
    Case(
        "list_services",
        (),
        {"team_ids": ["PTEAM1"], "query": "billing"},
        "GET",
        "/rest/services",
        [("team_ids[]", "PTEAM1"), ("query", "billing"), ("limit", "100")],
        answer={"services": [{"id": "PSVC1"}], "more": False},
        result=[{"id": "PSVC1"}],
    ),
    Case(
        "get_service",
        ("PSVC1",),
        {},
        "GET",
        "/rest/services/PSVC1",
        answer={"service": {"id": "PSVC1", "name": "Billing"}},
        result={"id": "PSVC1", "name": "Billing"},
    ),
    Case(
        "create_maintenance_window",
        (["PSVC1", "PSVC2"], START, END),
        {"description": "Database upgrade"},
        "POST",
        "/rest/maintenance_windows",
        body={
            "maintenance_window": {
                "type": "maintenance_window",
                "start_time": "2025-03-01T22:00:00+00:00",
                "end_time": "2025-03-02T00:00:00+00:00",
                "services": [
                    {"id": "PSVC1", "type": "service_reference"},
                    {"id": "PSVC2", "type": "service_reference"},
                ],
                "description": "Database upgrade",
            }
        },
        answer={"maintenance_window": {"id": "PMW1"}},
        result={"id": "PMW1"},
        writes_as_user=True,
    ),
    Case(
        "list_maintenance_windows",
        (),
        {"service_ids": "PSVC1", "filter": "ongoing"},
        "GET",
        "/rest/maintenance_windows",
        [("service_ids[]", "PSVC1"), ("filter", "ongoing"), ("limit", "100")],
        answer={"maintenance_windows": [{"id": "PMW1"}], "more": False},
        result=[{"id": "PMW1"}],
    ),
    Case(
        "end_maintenance_window",
        ("PMW1",),
        {},
        "DELETE",
        "/rest/maintenance_windows/PMW1",
        result=None,
    ),
    Case(
        "list_oncalls",
        (),
        {
            "schedule_ids": ["PSCH1"],
            "user_ids": ["PUSR1"],
            "escalation_policy_ids": ["PEP1"],
            "since": START,
            "until": END,
            "earliest": True,
        },
        "GET",
        "/rest/oncalls",
        [
            ("schedule_ids[]", "PSCH1"),
            ("user_ids[]", "PUSR1"),
            ("escalation_policy_ids[]", "PEP1"),
            ("since", "2025-03-01T22:00:00+00:00"),
            ("until", "2025-03-02T00:00:00+00:00"),
            ("earliest", "true"),
            ("limit", "100"),
        ],
        answer={"oncalls": [{"escalation_level": 1}], "more": False},
        result=[{"escalation_level": 1}],
    ),
    Case(
        "list_users",
        (),
        {"query": "ada", "team_ids": ["PTEAM1"], "limit": 1},
        "GET",
        "/rest/users",
        [("team_ids[]", "PTEAM1"), ("query", "ada"), ("limit", "1")],
        answer={"users": [{"id": "PUSR1"}], "more": True},
        result=[{"id": "PUSR1"}],
    ),
    Case(
        "get_user",
        ("PUSR1",),
        {},
        "GET",
        "/rest/users/PUSR1",
        answer={"user": {"id": "PUSR1", "email": "ada@example.com"}},
        result={"id": "PUSR1", "email": "ada@example.com"},
    ),
]


def case_id(case: Case) -> str:
    return f"{case.call}-{'-'.join(case.kwargs) or 'plain'}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_method_sends_its_request_and_unwraps_the_answer(
    pd: Harness, fake: FakePagerDuty, case: Case
) -> None:
    fake.respond = lambda request: (
        httpx.Response(204) if case.method == "DELETE" else ok(**case.answer)
    )

    result = pd.call(case.call, *case.args, **case.kwargs)

    assert result == case.result
    assert len(fake.requests) == 1
    request = fake.last
    assert (request.method, request.url.path) == (case.method, case.path)
    assert fake.params() == case.params
    assert fake.body() == case.body
    assert request.headers["Authorization"] == f"Token token={API_KEY}"
    assert request.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers.get("From") == (FROM if case.writes_as_user else None)


@pytest.mark.parametrize("case", [c for c in CASES if c.writes_as_user], ids=case_id)
def test_a_write_without_from_email_fails_before_sending(
    mode: str, fake: FakePagerDuty, case: Case
) -> None:
    harness = make(mode, fake, from_email=None)
    try:
        with pytest.raises(ConfigurationError, match="PAGERDUTY_DEFAULT_FROM_EMAIL"):
            harness.call(case.call, *case.args, **case.kwargs)
    finally:
        harness.close()
    assert fake.requests == []


def test_current_on_call_lists_each_user_once_lowest_level_first(
    pd: Harness, fake: FakePagerDuty
) -> None:
    ada, bob = {"id": "PUSR1", "name": "Ada"}, {"id": "PUSR2", "name": "Bob"}
    fake.respond = lambda request: ok(
        oncalls=[
            {"escalation_level": 2, "user": bob},
            {"escalation_level": 1, "user": ada},
            {"escalation_level": 3, "user": ada},
        ],
        more=False,
    )

    assert pd.call("current_on_call", "PSCH1") == [ada, bob]
    assert pd.call("get_current_oncall", "PSCH1") == [ada, bob]
    # No since/until: PagerDuty answers for "now" by its own clock.
    assert fake.params() == [("schedule_ids[]", "PSCH1"), ("limit", "100")]
    assert fake.last.url.path == "/rest/oncalls"


def test_current_on_call_is_empty_when_nobody_is_on_call(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: ok(oncalls=[], more=False)
    assert pd.call("current_on_call", "PSCH1") == []


def test_ids_are_quoted_into_a_single_path_segment(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: ok(incident=INCIDENT)
    pd.call("get_incident", "../users?x=1")
    assert fake.last.url.raw_path == b"/rest/incidents/..%2Fusers%3Fx%3D1"


# -- arguments refused before anything is sent --------------------------------------

NAIVE = datetime(2025, 3, 1, 22, 0)
BAD_CALLS = [
    ("get_incident", ("",), {}, "incident_id"),
    ("get_incident", (" PINC1",), {}, "incident_id"),
    ("list_incidents", (), {"statuses": ["open"]}, "statuses must be one of"),
    ("list_incidents", (), {"urgencies": "urgent"}, "urgencies must be one of"),
    ("list_incidents", (), {"since": NAIVE}, "timezone-aware"),
    ("list_incidents", (), {"limit": -1}, "limit"),
    ("list_users", (), {"limit": True}, "limit"),
    ("create_incident", ("", "PSVC1"), {}, "title"),
    ("create_incident", ("Down", "PSVC1"), {"urgency": "medium"}, "urgency"),
    ("reassign_incident", ("PINC1",), {}, "either user_ids or escalation_policy_id"),
    (
        "reassign_incident",
        ("PINC1",),
        {"user_ids": ["PUSR1"], "escalation_policy_id": "PEP1"},
        "not both",
    ),
    ("merge_incidents", ("PINC1", []), {}, "at least one source"),
    ("merge_incidents", ("PINC1", ["PINC1"]), {}, "into itself"),
    ("add_note", ("PINC1", "  "), {}, "content"),
    ("create_maintenance_window", ([], START, END), {}, "at least one service"),
    ("create_maintenance_window", (["PSVC1"], END, START), {}, "end after it starts"),
    ("create_maintenance_window", (["PSVC1"], NAIVE, END), {}, "timezone-aware"),
    ("create_maintenance_window", (["PSVC1"], "tomorrow", END), {}, "datetime"),
    ("list_maintenance_windows", (), {"filter": "soon"}, "filter must be one of"),
    ("iter_all", ("teams",), {}, "must start with '/'"),
    ("iter_all", ("/teams?limit=5",), {}, "no query"),
]


@pytest.mark.parametrize(("call", "args", "kwargs", "reason"), BAD_CALLS)
def test_bad_arguments_raise_before_any_request(
    pd: Harness,
    fake: FakePagerDuty,
    call: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    reason: str,
) -> None:
    with pytest.raises(RestInvalidRequestError, match=reason) as caught:
        pd.call(call, *args, **kwargs)
    assert caught.value.status_code is None
    assert fake.requests == []


def test_a_single_id_where_a_list_is_expected_is_one_id(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: ok(services=[], more=False)
    pd.call("list_services", team_ids="PTEAM1")
    assert fake.params() == [("team_ids[]", "PTEAM1"), ("limit", "100")]


def test_datetimes_keep_their_offset(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: ok(incidents=[], more=False)
    paris = timezone(timedelta(hours=1))
    pd.call("list_incidents", since=datetime(2025, 3, 1, 23, 0, tzinfo=paris))
    assert ("since", "2025-03-01T23:00:00+01:00") in fake.params()


# -- pagination -----------------------------------------------------------------------


def classic_pages(total: int) -> Any:
    """A classic-paginated /incidents holding ``total`` incidents."""

    def respond(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        limit = int(request.url.params["limit"])
        ids = range(offset, min(offset + limit, total))
        return ok(
            incidents=[{"id": f"P{i}"} for i in ids],
            limit=limit,
            offset=offset,
            more=offset + limit < total,
        )

    return respond


def paging(fake: FakePagerDuty) -> list[tuple[str | None, str | None, str | None]]:
    return [
        (
            request.url.params.get("limit"),
            request.url.params.get("offset"),
            request.url.params.get("cursor"),
        )
        for request in fake.requests
    ]


def test_classic_pagination_follows_more_across_pages(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = classic_pages(250)

    incidents = pd.call("list_incidents", statuses="triggered")

    assert [incident["id"] for incident in incidents] == [f"P{i}" for i in range(250)]
    assert paging(fake) == [("100", None, None), ("100", "100", None), ("100", "200", None)]
    # Filters ride along on every page.
    assert all(r.url.params.get_list("statuses[]") == ["triggered"] for r in fake.requests)


def test_limit_caps_items_overall_and_keeps_one_page_size(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = classic_pages(1000)

    incidents = pd.call("list_incidents", limit=150)

    assert len(incidents) == 150
    assert incidents[-1]["id"] == "P149"
    assert paging(fake) == [("100", None, None), ("100", "100", None)]


def test_limit_zero_sends_nothing(pd: Harness, fake: FakePagerDuty) -> None:
    assert pd.call("list_users", limit=0) == []
    assert fake.requests == []


def test_listing_is_lazy(fake: FakePagerDuty) -> None:
    fake.respond = classic_pages(250)
    with RestClient(API_KEY, transport=httpx.MockTransport(fake)) as client:
        incidents = client.list_incidents()
        assert fake.requests == []
        assert next(incidents)["id"] == "P0"
        assert len(fake.requests) == 1

    async def scenario() -> None:
        async with AsyncRestClient(API_KEY, transport=httpx.MockTransport(fake)) as client:
            incidents = client.list_incidents()
            assert len(fake.requests) == 1
            assert (await anext(incidents))["id"] == "P0"
            assert len(fake.requests) == 2

    asyncio.run(scenario())


def test_an_empty_page_claiming_more_ends_the_walk(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: ok(users=[], more=True)
    assert pd.call("list_users") == []
    assert len(fake.requests) == 1


def test_classic_pagination_stops_at_10000_and_says_so(
    pd: Harness, fake: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    fake.respond = classic_pages(25_000)

    with caplog.at_level(logging.WARNING, logger="pd_integrations.rest"):
        incidents = pd.call("list_incidents")

    assert len(incidents) == 10_000
    last = fake.requests[-1].url.params
    assert int(last["offset"]) + int(last["limit"]) == 10_000
    assert all(
        int(r.url.params.get("offset", "0")) + int(r.url.params["limit"]) <= 10_000
        for r in fake.requests
    )
    assert "no more than 10000" in caplog.text
    assert "narrow the query" in caplog.text


def test_cursor_pagination_follows_next_cursor(pd: Harness, fake: FakePagerDuty) -> None:
    pages = {
        None: ([{"id": "R1"}, {"id": "R2"}], "c2"),
        "c2": ([{"id": "R3"}], "c3"),
        "c3": ([{"id": "R4"}], None),
    }

    def respond(request: httpx.Request) -> httpx.Response:
        records, next_cursor = pages[request.url.params.get("cursor")]
        return ok(records=records, next_cursor=next_cursor, limit=100)

    fake.respond = respond

    records = pd.call(
        "iter_all", "/audit/records", params={"actions": ["create", "update"], "since": START}
    )

    assert [record["id"] for record in records] == ["R1", "R2", "R3", "R4"]
    assert paging(fake) == [("100", None, None), ("100", None, "c2"), ("100", None, "c3")]
    assert fake.params(0)[:3] == [
        ("actions[]", "create"),
        ("actions[]", "update"),
        ("since", "2025-03-01T22:00:00+00:00"),
    ]


def test_cursor_pagination_respects_the_limit(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: ok(records=[{"id": "R"}] * 3, next_cursor="more")
    assert len(pd.call("iter_all", "/audit/records", limit=7)) == 7
    assert len(fake.requests) == 3


def test_iter_all_takes_the_key_from_the_path_or_explicitly(
    pd: Harness, fake: FakePagerDuty
) -> None:
    fake.respond = lambda request: ok(teams=[{"id": "PTEAM1"}], schedules=[], more=False)
    assert pd.call("iter_all", "/teams") == [{"id": "PTEAM1"}]
    assert pd.call("iter_all", "/teams", key="schedules") == []


# -- retries --------------------------------------------------------------------------


def rate_limited(reset: str | None = None) -> httpx.Response:
    headers = {"ratelimit-limit": "960", "ratelimit-remaining": "0"}
    if reset is not None:
        headers["ratelimit-reset"] = reset
    return httpx.Response(
        429,
        headers=headers,
        json={"error": {"message": "Rate Limit Exceeded", "code": 2020}},
    )


def test_429_waits_for_ratelimit_reset(pd: Harness, fake: FakePagerDuty) -> None:
    fake.script = [rate_limited("7")]
    fake.respond = lambda request: ok(user={"id": "PUSR1"})

    assert pd.call("get_user", "PUSR1") == {"id": "PUSR1"}

    assert len(fake.requests) == 2
    [wait] = pd.time.sleeps
    assert 7 <= wait <= 8  # the reset plus at most a second of jitter


def test_429_without_reset_backs_off_exponentially(pd: Harness, fake: FakePagerDuty) -> None:
    fake.script = [rate_limited(), rate_limited(), rate_limited()]
    fake.respond = lambda request: ok(user={"id": "PUSR1"})

    pd.call("get_user", "PUSR1")

    first, second, third = pd.time.sleeps
    assert 0 <= first <= 2
    assert 0 <= second <= 4
    assert 0 <= third <= 8


def test_429_gives_up_after_max_attempts(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: rate_limited("1")

    with pytest.raises(RestRateLimitedError) as caught:
        pd.call("get_user", "PUSR1")

    error = caught.value
    assert len(fake.requests) == 4
    assert error.attempts == 4
    assert (error.status_code, error.code, error.message) == (429, 2020, "Rate Limit Exceeded")
    assert isinstance(error, RateLimitedError)


def test_429_asking_longer_than_max_wait_gives_up_at_once(mode: str, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: rate_limited("3600")
    harness = make(mode, fake, max_wait=30.0)
    try:
        with pytest.raises(RestRateLimitedError, match="asks to wait 3600 s"):
            harness.call("get_user", "PUSR1")
    finally:
        harness.close()
    assert len(fake.requests) == 1
    assert harness.time.sleeps == []


def test_waiting_never_exceeds_max_wait(mode: str, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: fail(503, "Service Unavailable")
    harness = make(mode, fake, max_attempts=50, max_wait=20.0)
    try:
        with pytest.raises(RestServerError, match="max_wait"):
            harness.call("get_user", "PUSR1")
    finally:
        harness.close()
    assert sum(harness.time.sleeps) <= 20.0
    assert len(fake.requests) < 50


def test_5xx_is_retried_then_succeeds(pd: Harness, fake: FakePagerDuty) -> None:
    fake.script = [fail(500, "Internal"), httpx.Response(502, text="<html>bad gateway</html>")]
    fake.respond = lambda request: ok(incident=INCIDENT)

    assert pd.call("acknowledge_incident", "PINC1") == INCIDENT
    assert len(fake.requests) == 3
    assert len(pd.time.sleeps) == 2
    assert all(0 <= wait <= 2 for wait in pd.time.sleeps)  # full jitter under the cap


def test_5xx_gives_up_with_a_server_error(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: fail(503, "Service Unavailable", 5003)

    with pytest.raises(RestServerError) as caught:
        pd.call("get_service", "PSVC1")

    assert caught.value.status_code == 503
    assert caught.value.attempts == 4
    assert isinstance(caught.value, DeliveryError)
    assert "Service Unavailable" in str(caught.value)


def test_network_errors_are_retried(pd: Harness, fake: FakePagerDuty) -> None:
    fake.script = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]
    fake.respond = lambda request: ok(service={"id": "PSVC1"})

    assert pd.call("get_service", "PSVC1") == {"id": "PSVC1"}
    assert len(fake.requests) == 3


def test_network_errors_give_up_without_a_status(pd: Harness, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: (_ for _ in ()).throw(httpx.ReadError("reset by peer"))

    with pytest.raises(RestServerError, match="ReadError: reset by peer") as caught:
        pd.call("get_service", "PSVC1")

    assert caught.value.status_code is None
    assert len(fake.requests) == 4


def test_a_post_is_not_resent_after_an_ambiguous_failure(pd: Harness, fake: FakePagerDuty) -> None:
    # The note may have been stored before the 502 or the timeout: sending it again
    # could post it twice.
    fake.script = [fail(502, "Bad Gateway"), httpx.ReadTimeout("no answer")]

    with pytest.raises(RestServerError, match="may or may not have been applied"):
        pd.call("add_note", "PINC1", "Looking")
    with pytest.raises(RestServerError, match="may or may not have been applied"):
        pd.call("add_note", "PINC1", "Looking")

    assert len(fake.requests) == 2


def test_a_post_is_resent_when_it_never_left(pd: Harness, fake: FakePagerDuty) -> None:
    fake.script = [httpx.ConnectError("refused"), rate_limited("1")]
    fake.respond = lambda request: ok(note={"id": "PNOTE1"})

    assert pd.call("add_note", "PINC1", "Looking") == {"id": "PNOTE1"}
    assert len(fake.requests) == 3


def test_a_keyed_create_is_retried_after_5xx(pd: Harness, fake: FakePagerDuty) -> None:
    fake.script = [fail(500, "Internal")]
    fake.respond = lambda request: ok(incident=INCIDENT)

    assert pd.call("create_incident", "Down", "PSVC1", incident_key="k1") == INCIDENT
    assert len(fake.requests) == 2
    assert fake.body(0) == fake.body(1)


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, RestInvalidRequestError),
        (401, RestUnauthorizedError),
        (403, RestForbiddenError),
        (404, RestNotFoundError),
        (409, RestError),
        (422, RestInvalidRequestError),
    ],
)
def test_4xx_maps_to_a_typed_error_and_is_never_retried(
    pd: Harness, fake: FakePagerDuty, status: int, kind: type[RestError]
) -> None:
    fake.respond = lambda request: fail(
        status, "Invalid Input Provided", 2001, "Title cannot be empty."
    )

    with pytest.raises(kind) as caught:
        pd.call("get_incident", "PINC1")

    error = caught.value
    assert type(error) is kind
    assert error.status_code == status
    assert (error.code, error.message) == (2001, "Invalid Input Provided")
    assert error.errors == ["Title cannot be empty."]
    assert error.attempts == 1
    assert str(error) == (
        f"PagerDuty answered GET /incidents/PINC1 with HTTP {status}: "
        "Invalid Input Provided (code 2001): Title cannot be empty."
    )
    assert len(fake.requests) == 1
    assert pd.time.sleeps == []


def test_an_error_without_pagerduty_details_uses_the_reason(
    pd: Harness, fake: FakePagerDuty
) -> None:
    fake.respond = lambda request: httpx.Response(404, text="not json")

    with pytest.raises(RestNotFoundError, match=r"HTTP 404: Not Found$") as caught:
        pd.call("get_user", "PNOBODY")

    assert (caught.value.code, caught.value.message, caught.value.errors) == (None, None, [])


@pytest.mark.parametrize(
    "answer",
    [
        {"text": "<html>login</html>"},
        {"json": ["not", "an", "object"]},
        {"json": {"something": "else"}},
        {"status_code": 302, "headers": {"location": "https://elsewhere"}},
    ],
)
def test_an_unexpected_answer_is_a_clear_error(
    pd: Harness, fake: FakePagerDuty, answer: dict[str, Any]
) -> None:
    fake.script = [httpx.Response(**{"status_code": 200, **answer})]
    with pytest.raises(RestError, match="unexpected answer from PagerDuty"):
        pd.call("get_incident", "PINC1")


# -- the API key stays secret ---------------------------------------------------------


def test_the_api_key_never_shows_in_repr_errors_or_logs(
    mode: str, fake: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = [
        httpx.ConnectError(f"proxy refused Token token={API_KEY}"),
        httpx.Response(429, json={"error": {"message": f"slow down {API_KEY}"}}),
    ]
    fake.respond = lambda request: fail(401, f"bad key {API_KEY}", 2006, f"key {API_KEY}")
    harness = make(mode, fake)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(RestUnauthorizedError) as caught:
            harness.call("get_incident", "PINC1")
        texts = [repr(harness.client), str(caught.value), caplog.text, *caught.value.errors]
        texts.append(caught.value.message or "")
    finally:
        harness.close()
    assert caplog.text  # the attempts and failures were logged
    for text in texts:
        assert API_KEY not in text
    assert "****6789" in repr(harness.client)
    assert "****6789" in str(caught.value)


def test_a_malformed_key_is_refused_masked() -> None:
    bad_key = "abcd efgh ijkl mnop"
    with pytest.raises(ConfigurationError) as caught:
        RestClient(bad_key)
    assert bad_key not in str(caught.value)
    assert "****mnop" in str(caught.value)


def test_a_toy_key_does_not_garble_messages(mode: str, fake: FakePagerDuty) -> None:
    fake.respond = lambda request: fail(404, "Unknown incident", 2100)
    harness = make(mode, fake, api_key="k")
    try:
        with pytest.raises(RestNotFoundError, match="Unknown incident"):
            harness.call("get_incident", "PINC1")
        assert "api_key=****" in repr(harness.client)
    finally:
        harness.close()


# -- configuration --------------------------------------------------------------------


def test_a_missing_api_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="PAGERDUTY_API_KEY"):
        RestClient()
    with pytest.raises(ConfigurationError, match="PAGERDUTY_API_KEY"):
        AsyncRestClient(from_email=FROM)


def test_settings_fall_back_to_the_environment(
    mode: str, fake: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_API_KEY", "envkey-0000000000000ABCD")
    monkeypatch.setenv("PAGERDUTY_DEFAULT_FROM_EMAIL", "oncall@example.com")
    monkeypatch.setenv("PAGERDUTY_REST_BASE_URL", "http://127.0.0.1:8080/pd/")
    fake.respond = lambda request: ok(incident=INCIDENT)
    harness = make(mode, fake, api_key=None, from_email=None, base_url=None)
    try:
        harness.call("acknowledge_incident", "PINC1")
    finally:
        harness.close()
    assert str(fake.last.url) == "http://127.0.0.1:8080/pd/incidents/PINC1"
    assert fake.last.headers["Authorization"] == "Token token=envkey-0000000000000ABCD"
    assert fake.last.headers["From"] == "oncall@example.com"


def test_the_default_base_url_is_pagerduty() -> None:
    with RestClient(API_KEY) as client:
        assert client.base_url == DEFAULT_REST_BASE_URL == "https://api.pagerduty.com"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"base_url": "api.pagerduty.com"}, "REST base URL"),
        ({"base_url": "https://api.pagerduty.com/?x=1"}, "REST base URL"),
        ({"from_email": "not an email"}, "from_email"),
        ({"timeout": 0}, "timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_wait": -1}, "max_wait"),
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        RestClient(API_KEY, **kwargs)


def test_a_closed_client_refuses_calls(fake: FakePagerDuty) -> None:
    with RestClient(API_KEY, transport=httpx.MockTransport(fake)) as client:
        pass
    assert client.closed
    with pytest.raises(PagerDutyError, match="RestClient is closed"):
        client.get_user("PUSR1")

    async def scenario() -> None:
        async with AsyncRestClient(API_KEY, transport=httpx.MockTransport(fake)) as client:
            pass
        assert client.closed
        with pytest.raises(PagerDutyError, match="AsyncRestClient is closed"):
            await client.get_user("PUSR1")

    asyncio.run(scenario())
    assert fake.requests == []


# -- the two clients offer the same API -----------------------------------------------


def public_methods(cls: type) -> list[str]:
    return sorted(
        name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))
    )


PUBLIC = public_methods(RestClient)


def test_both_clients_have_the_same_methods() -> None:
    assert public_methods(AsyncRestClient) == PUBLIC
    assert RestClient.get_current_oncall is RestClient.current_on_call


@pytest.mark.parametrize("name", PUBLIC)
def test_both_clients_take_the_same_arguments(name: str) -> None:
    sync = inspect.signature(getattr(RestClient, name))
    async_ = inspect.signature(getattr(AsyncRestClient, name))
    assert list(sync.parameters) == list(async_.parameters)
    for param in sync.parameters.values():
        other = async_.parameters[param.name]
        assert (param.kind, param.default) == (other.kind, other.default)


# -- over real HTTP: the example script against a loopback PagerDuty ------------------


class LoopbackPagerDuty(BaseHTTPRequestHandler):
    """Serves one page of open incidents and one on-call entry under the /rest prefix."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        url = httpx.URL(self.path)
        self.seen.append((self.path, self.headers.get("Authorization")))
        if url.path == "/rest/incidents":
            body: dict[str, Any] = {
                "incidents": [
                    {
                        "incident_number": 42,
                        "status": "triggered",
                        "urgency": "high",
                        "title": "Checkout is down",
                        "service": {"id": "PSVC1", "summary": "Checkout"},
                    }
                ],
                "more": False,
            }
        elif url.path == "/rest/oncalls":
            body = {
                "oncalls": [
                    {
                        "user": {"id": "PUSR1", "summary": "Ada Lovelace"},
                        "escalation_policy": {"summary": "Checkout on-call"},
                        "escalation_level": 1,
                        "schedule": {"summary": "Primary"},
                    }
                ],
                "more": False,
            }
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LoopbackPagerDuty)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    LoopbackPagerDuty.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rest"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_example_lists_open_incidents_and_who_is_on_call(
    loopback: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(__file__).parents[2] / "examples" / "rest_client.py"
    spec = importlib.util.spec_from_file_location("rest_client_example", path)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setenv("PAGERDUTY_API_KEY", API_KEY)
    monkeypatch.setenv("PAGERDUTY_REST_BASE_URL", loopback)

    assert example.main(["--limit", "10"]) == 0

    out = capsys.readouterr().out
    assert "#42 [triggered, high] Checkout is down (Checkout)" in out
    assert "Ada Lovelace: Checkout on-call, level 1, schedule Primary" in out
    paths = [path for path, _ in LoopbackPagerDuty.seen]
    assert paths == [
        "/rest/incidents?statuses%5B%5D=triggered&statuses%5B%5D=acknowledged&limit=10",
        "/rest/oncalls?earliest=true&limit=100",
    ]
    assert {auth for _, auth in LoopbackPagerDuty.seen} == {f"Token token={API_KEY}"}
