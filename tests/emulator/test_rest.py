"""The emulator's REST API v2 subset, over HTTP and through the library's RestClient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pd_integrations.emulator import Emulator
from pd_integrations.emulator.roster import EscalationPolicy, Roster, Schedule, User
from pd_integrations.errors import (
    RestInvalidRequestError,
    RestNotFoundError,
    RestUnauthorizedError,
)
from pd_integrations.rest import RestClient

from .conftest import ROUTING_KEY, action_body, trigger_body

HEADERS = {
    "Authorization": "Token token=emulator-test-key",
    "Accept": "application/vnd.pagerduty+json;version=2",
}
ALICE = "alice@example.com"


@pytest.fixture
def rest(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.rest_url, headers=HEADERS, timeout=5.0) as http:
        yield http


def send(client: httpx.Client, body: dict[str, Any]) -> None:
    assert client.post("/v2/enqueue", json=body).status_code == 202


def open_incidents(client: httpx.Client, count: int) -> None:
    for n in range(count):
        severity = ("critical", "error", "warning", "info")[n % 4]
        send(client, trigger_body(f"key-{n}", summary=f"Problem {n}", severity=severity))


def test_an_alert_is_an_incident(client: httpx.Client, rest: httpx.Client) -> None:
    send(client, trigger_body("disk", summary="Disk full on db1", severity="critical"))
    response = rest.get("/incidents")
    assert response.status_code == 200
    listing = response.json()
    (incident,) = listing["incidents"]
    assert (listing["limit"], listing["offset"], listing["more"], listing["total"]) == (
        25,
        0,
        False,
        None,
    )
    assert incident["id"] == "A00001"
    assert incident["type"] == "incident"
    assert incident["incident_number"] == 1
    assert incident["title"] == "Disk full on db1"
    assert incident["summary"] == "[#1] Disk full on db1"
    assert (incident["status"], incident["urgency"]) == ("triggered", "high")
    assert incident["incident_key"] == "disk"
    assert incident["service"]["type"] == "service_reference"
    assert ROUTING_KEY not in str(incident)  # the key is a secret: only its end shows
    assert incident["html_url"].endswith("/#alert=A00001")
    assert incident["self"].endswith("/rest/incidents/A00001")
    assert [a["assignee"]["id"] for a in incident["assignments"]] == ["PUSR001"]
    assert rest.get("/incidents/A00001").json() == {"incident": incident}


def test_urgency_follows_severity(client: httpx.Client, rest: httpx.Client) -> None:
    open_incidents(client, 4)
    urgencies = [i["urgency"] for i in rest.get("/incidents").json()["incidents"]]
    assert urgencies == ["high", "high", "low", "low"]
    low = rest.get("/incidents", params={"urgencies[]": "low"}).json()["incidents"]
    assert [i["incident_key"] for i in low] == ["key-2", "key-3"]


def test_classic_pagination(client: httpx.Client, rest: httpx.Client) -> None:
    open_incidents(client, 7)
    seen: list[str] = []
    offset = 0
    while True:
        page = rest.get("/incidents", params={"limit": 3, "offset": offset, "total": "true"})
        body = page.json()
        assert body["total"] == 7
        assert body["limit"] == 3
        seen += [i["incident_key"] for i in body["incidents"]]
        if not body["more"]:
            break
        offset += 3
    assert seen == [f"key-{n}" for n in range(7)]
    clamped = rest.get("/incidents", params={"limit": 500}).json()
    assert clamped["limit"] == 100
    too_deep = rest.get("/incidents", params={"limit": 100, "offset": 9950})
    assert too_deep.status_code == 400
    assert too_deep.json()["error"]["code"] == 2001
    assert rest.get("/incidents", params={"limit": "ten"}).status_code == 400


def test_status_filter(client: httpx.Client, rest: httpx.Client) -> None:
    open_incidents(client, 3)
    send(client, action_body("acknowledge", "key-1"))
    send(client, action_body("resolve", "key-2"))
    params = {"statuses[]": ["triggered", "acknowledged"]}
    found = rest.get("/incidents", params=params).json()["incidents"]
    assert [(i["incident_key"], i["status"]) for i in found] == [
        ("key-0", "triggered"),
        ("key-1", "acknowledged"),
    ]
    bad = rest.get("/incidents", params={"statuses[]": "open"})
    assert bad.status_code == 400
    assert bad.json() == {
        "error": {
            "message": "Invalid Input Provided",
            "code": 2001,
            "errors": ["Status must be a list of triggered, acknowledged, or resolved."],
        }
    }


def test_acknowledge_and_resolve_need_from(
    client: httpx.Client, rest: httpx.Client, emulator: Emulator
) -> None:
    send(client, trigger_body("disk"))
    ack = {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    missing = rest.put("/incidents/A00001", json=ack)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == 2016
    assert "From" in missing.json()["error"]["message"]
    stranger = rest.put("/incidents/A00001", json=ack, headers={"From": "mallory@example.com"})
    assert stranger.status_code == 400
    assert stranger.json()["error"]["message"] == "Requester User Not Found"
    assert emulator.alert("A00001")["status"] == "triggered"

    acked = rest.put("/incidents/A00001", json=ack, headers={"From": "BOB@example.com"})
    assert acked.status_code == 200
    incident = acked.json()["incident"]
    assert incident["status"] == "acknowledged"
    assert incident["last_status_change_by"]["id"] == "PUSR002"
    assert [a["acknowledger"]["id"] for a in incident["acknowledgements"]] == ["PUSR002"]
    assert emulator.alert("A00001")["log"][-1] | {"at": None} == {
        "action": "acknowledge",
        "at": None,
        "via": "rest_api",
        "agent": "PUSR002",
        "summary": "Disk full on db1",
        "severity": "critical",
        "event_seq": None,
    }

    resolve = {"incident": {"type": "incident", "status": "resolved", "resolution": "Freed space"}}
    resolved = rest.put("/incidents/A00001", json=resolve, headers={"From": ALICE})
    assert resolved.json()["incident"]["status"] == "resolved"
    assert resolved.json()["incident"]["assignments"] == []
    assert emulator.alert("A00001")["resolution"] == "Freed space"
    # Same rules as the console: resolving again is fine, acknowledging is not.
    assert rest.put("/incidents/A00001", json=resolve, headers={"From": ALICE}).status_code == 200
    again = rest.put("/incidents/A00001", json=ack, headers={"From": ALICE})
    assert again.status_code == 400
    assert again.json()["error"]["errors"] == ["Incident Already Resolved"]
    # The Events API's next trigger opens a new incident.
    send(client, trigger_body("disk"))
    assert rest.get("/incidents/A00002").json()["incident"]["incident_number"] == 2


def test_bad_updates(client: httpx.Client, rest: httpx.Client) -> None:
    send(client, trigger_body("disk"))
    headers = {"From": ALICE}
    for body in (
        {"incident": {"type": "incident", "status": "snoozed"}},
        {"incident": {"type": "incident", "status": "acknowledged", "priority": {}}},
        {"incident": {"type": "user", "status": "acknowledged"}},
        {"status": "acknowledged"},
    ):
        answer = rest.put("/incidents/A00001", json=body, headers=headers)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == 2001
    not_json = rest.put("/incidents/A00001", content=b"{", headers=headers)
    assert not_json.status_code == 400
    missing = rest.put(
        "/incidents/A09999",
        json={"incident": {"type": "incident", "status": "resolved"}},
        headers=headers,
    )
    assert missing.status_code == 404


def test_notes(client: httpx.Client, rest: httpx.Client) -> None:
    send(client, trigger_body("disk"))
    body = {"note": {"content": "Looking into it"}}
    assert rest.post("/incidents/A00001/notes", json=body).json()["error"]["code"] == 2016
    added = rest.post("/incidents/A00001/notes", json=body, headers={"From": ALICE})
    assert added.status_code == 201
    note = added.json()["note"]
    assert note["content"] == "Looking into it"
    assert note["user"]["id"] == "PUSR001"
    assert rest.get("/incidents/A00001/notes").json() == {"notes": [note]}
    empty = rest.post(
        "/incidents/A00001/notes", json={"note": {"content": " "}}, headers={"From": ALICE}
    )
    assert empty.status_code == 400
    assert rest.get("/incidents/A00404/notes").status_code == 404


def test_oncalls_users_services(client: httpx.Client, rest: httpx.Client) -> None:
    oncalls = rest.get("/oncalls").json()["oncalls"]
    assert [(o["escalation_level"], o["schedule"]["id"], o["user"]["id"]) for o in oncalls] == [
        (1, "PSCH001", "PUSR001"),
        (2, "PSCH002", "PUSR002"),
    ]
    secondary = rest.get("/oncalls", params={"schedule_ids[]": "PSCH002"}).json()["oncalls"]
    assert [o["user"]["summary"] for o in secondary] == ["Bob Example"]
    assert rest.get("/oncalls", params={"schedule_ids[]": "PNOPE"}).json()["oncalls"] == []

    users = rest.get("/users").json()["users"]
    assert [u["email"] for u in users] == [ALICE, "bob@example.com", "carol@example.com"]
    assert rest.get("/users", params={"query": "carol"}).json()["users"][0]["id"] == "PUSR003"
    assert rest.get("/users/PUSR002").json()["user"]["name"] == "Bob Example"
    assert rest.get("/users/PNOPE").status_code == 404

    assert rest.get("/services").json()["services"] == []
    send(client, trigger_body("disk"))
    (service,) = rest.get("/services").json()["services"]
    assert service["status"] == "critical"
    assert service["name"].endswith(ROUTING_KEY[-4:])
    assert rest.get(f"/services/{service['id']}").json() == {"service": service}
    incident = rest.get("/incidents").json()["incidents"][0]
    assert incident["service"]["id"] == service["id"]
    by_service = rest.get("/incidents", params={"service_ids[]": "PNOPE"}).json()
    assert by_service["incidents"] == []
    assert rest.get("/services/PNOPE").status_code == 404


@pytest.mark.parametrize(
    "authorization", [None, "", "Token", "Token token=", "Basic dXNlcjpwYXNz", "token=abc"]
)
def test_requests_need_an_api_key(emulator: Emulator, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.get(f"{emulator.rest_url}/incidents", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 2006
    assert response.json()["error"]["message"] == "Unauthorized"


def test_bearer_tokens_work(emulator: Emulator) -> None:
    response = httpx.get(
        f"{emulator.rest_url}/users", headers={"Authorization": "Bearer abc"}, timeout=5
    )
    assert response.status_code == 200


def test_a_configured_token_is_the_only_one() -> None:
    with Emulator(port=0, api_token="the-right-key") as emulator:
        url = f"{emulator.rest_url}/users"
        wrong = httpx.get(url, headers={"Authorization": "Token token=another"}, timeout=5)
        assert wrong.status_code == 401
        right = httpx.get(url, headers={"Authorization": "Token token=the-right-key"}, timeout=5)
        assert right.status_code == 200


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/vnd.pagerduty+json;version=2", 200),
        ("application/vnd.pagerduty+json", 200),
        ("application/json", 200),
        ("*/*", 200),
        ("text/html, application/json;q=0.9", 200),
        ("application/vnd.pagerduty+json;version=1", 406),
        ("text/html", 406),
    ],
)
def test_accept_header(rest: httpx.Client, accept: str, status: int) -> None:
    response = rest.get("/users", headers={"Accept": accept})
    assert response.status_code == status
    if status == 406:
        assert response.json()["error"]["code"] == 2001


def test_unknown_routes_have_the_pagerduty_error_shape(rest: httpx.Client) -> None:
    for method, path in (("GET", "/teams"), ("DELETE", "/incidents/A00001"), ("GET", "/")):
        response = rest.request(method, path)
        assert response.status_code == 404
        error = response.json()["error"]
        assert (error["message"], error["code"]) == ("Not Found", 2100)
    missing = rest.get("/incidents/A00404").json()["error"]
    assert (missing["message"], missing["code"]) == ("Not Found", 2100)


def test_custom_roster() -> None:
    roster = Roster(
        users=(User("PDAN001", "Dana", "dana@example.org"),),
        schedules=(Schedule("PSCHDAN", "Dana's week", ("PDAN001",)),),
        escalation_policy=EscalationPolicy("PESCDAN", "Only Dana", ("PSCHDAN",)),
    )
    with (
        Emulator(port=0, roster=roster) as emulator,
        RestClient("k", from_email="dana@example.org", base_url=emulator.rest_url) as client,
    ):
        assert [u["id"] for u in client.current_on_call("PSCHDAN")] == ["PDAN001"]
    with pytest.raises(ValueError, match="unknown user"):
        Roster(
            users=roster.users,
            schedules=(Schedule("PSCH1", "x", ("PNOBODY",)),),
            escalation_policy=EscalationPolicy("PESC1", "x", ("PSCH1",)),
        )


# -- through the library's client ---------------------------------------------------------


def test_the_rest_client_round_trip(client: httpx.Client, emulator: Emulator) -> None:
    open_incidents(client, 30)  # more than one page of 25
    with RestClient("k", from_email=ALICE, base_url=emulator.rest_url) as rest:
        incidents = list(rest.list_incidents())
        assert [i["incident_number"] for i in incidents] == list(range(1, 31))
        assert len(list(rest.list_incidents(limit=5))) == 5
        assert rest.acknowledge_incident("A00002")["status"] == "acknowledged"
        resolved = rest.resolve_incident("A00003", resolution="Restarted")
        assert resolved["status"] == "resolved"
        open_ones = list(rest.list_incidents(statuses=["triggered", "acknowledged"]))
        assert len(open_ones) == 29
        assert rest.add_note("A00001", "On it")["content"] == "On it"
        assert [n["content"] for n in rest.list_notes("A00001")] == ["On it"]
        assert rest.get_incident("A00002")["status"] == "acknowledged"
        assert [u["id"] for u in rest.current_on_call("PSCH001")] == ["PUSR001"]
        assert rest.get_user("PUSR003")["email"] == "carol@example.com"
        assert len(list(rest.list_users())) == 3
        (service,) = list(rest.list_services())
        assert rest.get_service(service["id"])["id"] == service["id"]
        with pytest.raises(RestNotFoundError) as missing:
            rest.get_incident("A09999")
        assert missing.value.code == 2100
        with pytest.raises(RestInvalidRequestError):
            rest.acknowledge_incident("A00003")
    with (
        Emulator(port=0, api_token="right") as strict,
        RestClient("wrong", base_url=strict.rest_url) as wrong,
        pytest.raises(RestUnauthorizedError),
    ):
        list(wrong.list_users())
