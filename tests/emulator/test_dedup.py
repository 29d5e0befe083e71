"""PagerDuty's dedup semantics and the per-key rate limit."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

from pd_integrations.emulator import Emulator
from tests.clock import FakeClock

from .conftest import OTHER_KEY, ROUTING_KEY, action_body, change_body, trigger_body

ENQUEUE = "/v2/enqueue"
RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def send(client: httpx.Client, body: dict[str, object], path: str = ENQUEUE) -> httpx.Response:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    return response


def test_trigger_opens_an_alert_with_the_full_payload(
    client: httpx.Client, emulator: Emulator
) -> None:
    body = trigger_body(
        "disk/db1",
        component="postgres",
        group="prod-db",
        timestamp="2024-05-01T10:00:00Z",
        custom_details={"free": "1%", "mounts": ["/", "/var"]},
        **{"class": "disk"},
    )
    body["links"] = [{"href": "https://runbooks.example/disk", "text": "Runbook"}]
    body["images"] = [{"src": "https://graphs.example/disk.png", "alt": "Disk"}]
    body["client"] = "Monitor"
    body["client_url"] = "https://monitor.example"
    answer = send(client, body).json()
    assert answer == {"status": "success", "message": "Event processed", "dedup_key": "disk/db1"}

    (alert,) = emulator.alerts()
    assert alert["routing_key"] == ROUTING_KEY
    assert alert["dedup_key"] == "disk/db1"
    assert alert["status"] == "triggered"
    assert alert["severity"] == "critical"
    assert alert["summary"] == "Disk full on db1"
    assert alert["source"] == "db1"
    assert alert["component"] == "postgres"
    assert alert["group"] == "prod-db"
    assert alert["class"] == "disk"
    assert alert["timestamp"] == "2024-05-01T10:00:00Z"
    assert alert["custom_details"] == {"free": "1%", "mounts": ["/", "/var"]}
    assert alert["links"] == body["links"]
    assert alert["images"] == body["images"]
    assert alert["client"] == "Monitor"
    assert alert["client_url"] == "https://monitor.example"
    assert alert["trigger_count"] == 1
    assert RFC3339_Z.fullmatch(alert["first_seen"])
    assert alert["first_seen"] == alert["last_seen"]
    assert [entry["action"] for entry in alert["log"]] == ["trigger"]
    assert emulator.alert(alert["id"]) == alert


def test_trigger_without_dedup_key_gets_one(client: httpx.Client, emulator: Emulator) -> None:
    first = send(client, trigger_body()).json()["dedup_key"]
    second = send(client, trigger_body()).json()["dedup_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second
    assert [a["dedup_key"] for a in emulator.alerts()] == [first, second]
    # The generated key works for the follow-up events, as PagerDuty's does.
    send(client, action_body("resolve", first))
    assert emulator.alerts(status="resolved")[0]["dedup_key"] == first


def test_repeated_trigger_updates_the_open_alert(client: httpx.Client, emulator: Emulator) -> None:
    send(client, trigger_body("k", summary="Disk 95%", severity="warning"))
    send(
        client, trigger_body("k", summary="Disk 99%", severity="critical", custom_details={"a": 1})
    )
    (alert,) = emulator.alerts()
    assert alert["trigger_count"] == 2
    assert alert["summary"] == "Disk 99%"
    assert alert["severity"] == "critical"
    assert alert["custom_details"] == {"a": 1}
    assert [(e["action"], e["summary"], e["severity"]) for e in alert["log"]] == [
        ("trigger", "Disk 95%", "warning"),
        ("trigger", "Disk 99%", "critical"),
    ]
    assert [e["outcome"] for e in emulator.events()] == ["created", "deduplicated"]


def test_acknowledge_then_resolve(client: httpx.Client, emulator: Emulator) -> None:
    send(client, trigger_body("k"))
    ack = send(client, action_body("acknowledge", "k")).json()
    assert ack == {"status": "success", "message": "Event processed", "dedup_key": "k"}
    (alert,) = emulator.alerts()
    assert alert["status"] == "acknowledged"
    assert alert["acknowledged_at"] is not None
    # A trigger for an acknowledged alert is deduplicated into it, not re-opened.
    send(client, trigger_body("k"))
    assert emulator.alerts()[0]["status"] == "acknowledged"
    send(client, action_body("resolve", "k"))
    (alert,) = emulator.alerts()
    assert alert["status"] == "resolved"
    assert alert["resolved_at"] is not None
    assert alert["trigger_count"] == 2
    assert [e["action"] for e in alert["log"]] == ["trigger", "acknowledge", "trigger", "resolve"]
    assert all(e["via"] == "events_api" for e in alert["log"])


def test_trigger_after_resolve_opens_a_new_alert(client: httpx.Client, emulator: Emulator) -> None:
    send(client, trigger_body("k", summary="first"))
    send(client, action_body("resolve", "k"))
    send(client, trigger_body("k", summary="second"))
    first, second = emulator.alerts()
    assert first["id"] != second["id"]
    assert (first["status"], first["summary"]) == ("resolved", "first")
    assert (second["status"], second["summary"], second["trigger_count"]) == (
        "triggered",
        "second",
        1,
    )
    # Follow-up events act on the open alert only.
    send(client, action_body("acknowledge", "k"))
    first, second = emulator.alerts()
    assert (first["status"], second["status"]) == ("resolved", "acknowledged")


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_events_for_unknown_or_resolved_keys_are_accepted_and_dropped(
    client: httpx.Client, emulator: Emulator, action: str
) -> None:
    send(client, action_body(action, "never-triggered"))
    send(client, trigger_body("done"))
    send(client, action_body("resolve", "done"))
    send(client, action_body(action, "done"))
    (alert,) = emulator.alerts()
    assert alert["status"] == "resolved"
    assert len(alert["log"]) == 2
    outcomes = [(e["type"], e["outcome"], e["alert_id"]) for e in emulator.events()]
    assert outcomes == [
        (action, "dropped", None),
        ("trigger", "created", alert["id"]),
        ("resolve", "resolved", alert["id"]),
        (action, "dropped", None),
    ]


def test_dedup_keys_are_scoped_by_routing_key(client: httpx.Client, emulator: Emulator) -> None:
    send(client, trigger_body("same"))
    send(client, trigger_body("same", routing_key=OTHER_KEY))
    send(client, action_body("resolve", "same", routing_key=OTHER_KEY))
    assert [(a["routing_key"], a["status"]) for a in emulator.alerts()] == [
        (ROUTING_KEY, "triggered"),
        (OTHER_KEY, "resolved"),
    ]
    assert len(emulator.alerts(routing_key=OTHER_KEY)) == 1
    assert len(emulator.alerts(dedup_key="same", status="triggered")) == 1


def test_events_log_keeps_bodies_in_order(client: httpx.Client, emulator: Emulator) -> None:
    bodies = [trigger_body("a"), change_body(), action_body("resolve", "a")]
    for body in bodies:
        send(client, body, "/v2/change/enqueue" if "event_action" not in body else ENQUEUE)
    events = emulator.events()
    assert [e["body"] for e in events] == bodies
    assert [e["status"] for e in events] == [202, 202, 202]
    assert [e["type"] for e in events] == ["trigger", "change", "resolve"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert emulator.events(since=seqs[0]) == events[1:]
    # What callers get is a copy: changing it changes nothing inside.
    events[0]["body"]["payload"]["summary"] = "tampered"
    emulator.alerts()[0]["custom_details"] = {"tampered": True}
    assert emulator.events()[0]["body"] == bodies[0]
    assert emulator.alerts()[0]["custom_details"] is None


# -- rate limit ---------------------------------------------------------------------------


@pytest.fixture
def limited(clock: FakeClock) -> Emulator:
    return Emulator(port=0, rate_limit_per_minute=5, clock=clock)


def test_rate_limit_is_a_sliding_window_per_key(limited: Emulator, clock: FakeClock) -> None:
    with limited, httpx.Client(base_url=limited.url) as client:

        def status(key: str = ROUTING_KEY) -> int:
            return client.post(ENQUEUE, json=trigger_body("k", routing_key=key)).status_code

        for _ in range(3):
            assert status() == 202
        clock.advance(30)
        assert [status() for _ in range(3)] == [202, 202, 429]
        throttled = client.post(ENQUEUE, json=trigger_body("k"))
        assert throttled.status_code == 429
        assert throttled.json()["status"] == "throttle event"
        assert status(OTHER_KEY) == 202  # other keys have their own budget
        clock.advance(30)  # the first three leave the window
        assert [status() for _ in range(4)] == [202, 202, 202, 429]
        clock.advance(30)  # the next two leave it
        assert [status() for _ in range(3)] == [202, 202, 429]
        assert limited.alerts()[0]["trigger_count"] == 10
        assert limited.stats()["by_status"] == {"202": 11, "429": 4}


def test_invalid_requests_count_and_throttled_ones_do_not(
    limited: Emulator, clock: FakeClock
) -> None:
    with limited, httpx.Client(base_url=limited.url) as client:
        invalid = {"routing_key": ROUTING_KEY, "event_action": "bogus"}
        assert [client.post(ENQUEUE, json=invalid).status_code for _ in range(5)] == [400] * 5
        # Over budget: 429 comes before validation, and refused requests are not counted.
        for _ in range(20):
            assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 429
        clock.advance(60)
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 202
        # Change events share the key's budget; bodies without a usable key are not counted.
        for _ in range(4):
            assert client.post("/v2/change/enqueue", json=change_body()).status_code == 202
        assert client.post("/v2/change/enqueue", json=change_body()).status_code == 429
        no_key = client.post(ENQUEUE, content=b"{", headers={"Content-Type": "application/json"})
        assert no_key.status_code == 400


def test_rate_limit_can_be_changed_or_disabled(limited: Emulator) -> None:
    with limited, httpx.Client(base_url=limited.url) as client:
        limited.rate_limit_per_minute = None
        codes = {client.post(ENQUEUE, json=trigger_body("k")).status_code for _ in range(30)}
        assert codes == {202}
        limited.rate_limit_per_minute = 1
        # Without a limit nothing was counted: the new budget starts empty.
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 202
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 429
        limited.rate_limit_per_minute = 3  # a larger budget applies at once
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 202
        with pytest.raises(ValueError, match="rate limit"):
            limited.rate_limit_per_minute = 0


def test_default_budget_is_120_per_minute(emulator: Emulator, client: httpx.Client) -> None:
    assert emulator.rate_limit_per_minute == 120
    codes = [client.post(ENQUEUE, json=trigger_body("k")).status_code for _ in range(121)]
    assert codes.count(202) == 120
    assert codes[-1] == 429


def test_concurrent_triggers_land_on_one_alert(emulator: Emulator) -> None:
    emulator.rate_limit_per_minute = None

    def burst() -> None:
        with httpx.Client(base_url=emulator.url) as client:
            for _ in range(25):
                assert client.post(ENQUEUE, json=trigger_body("storm")).status_code == 202

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (alert,) = emulator.alerts()
    assert alert["trigger_count"] == 200
    assert len(alert["log"]) == 200
    assert [e["outcome"] for e in emulator.events()].count("created") == 1
