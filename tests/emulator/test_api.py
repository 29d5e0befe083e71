"""The emulator's own JSON API, the console's actions and the console page."""

from __future__ import annotations

import base64
import hashlib
import re
import threading

import httpx
import pytest

from pd_integrations.emulator import Emulator
from tests.clock import FakeClock

from .conftest import action_body, change_body, trigger_body

ENQUEUE = "/v2/enqueue"


def send(client: httpx.Client, body: dict[str, object], path: str = ENQUEUE) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text


def test_alerts_listing_and_filters(client: httpx.Client) -> None:
    send(client, trigger_body("a"))
    send(client, trigger_body("b"))
    send(client, action_body("acknowledge", "b"))
    alerts = client.get("/api/alerts").json()
    assert [a["dedup_key"] for a in alerts] == ["a", "b"]
    expected_fields = {
        "id", "routing_key", "dedup_key", "status", "severity", "summary", "source",
        "component", "group", "class", "custom_details", "timestamp", "links", "images",
        "client", "client_url", "trigger_count", "first_seen", "last_seen",
        "acknowledged_at", "resolved_at", "log", "incident_number", "resolution", "notes",
    }  # fmt: skip
    assert set(alerts[0]) == expected_fields
    acknowledged = client.get("/api/alerts", params={"status": "acknowledged"}).json()
    assert [a["dedup_key"] for a in acknowledged] == ["b"]
    by_key = client.get("/api/alerts", params={"dedup_key": "a"}).json()
    assert [a["id"] for a in by_key] == [alerts[0]["id"]]
    assert client.get("/api/alerts", params={"status": "open"}).status_code == 400


def test_one_alert(client: httpx.Client) -> None:
    send(client, trigger_body("a"))
    (alert,) = client.get("/api/alerts").json()
    assert client.get(f"/api/alerts/{alert['id']}").json() == alert
    missing = client.get("/api/alerts/A99999")
    assert missing.status_code == 404
    assert "A99999" in missing.json()["error"]


def test_console_actions_act_like_a_responder(client: httpx.Client, emulator: Emulator) -> None:
    send(client, trigger_body("a"))
    alert_id = emulator.alerts()[0]["id"]

    acked = client.post(f"/api/alerts/{alert_id}/acknowledge")
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    assert client.post(f"/api/alerts/{alert_id}/acknowledge").status_code == 200  # repeat: fine
    # The monitoring tool keeps sending triggers: still acknowledged.
    send(client, trigger_body("a"))
    assert emulator.alert(alert_id)["status"] == "acknowledged"

    resolved = client.post(f"/api/alerts/{alert_id}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert client.post(f"/api/alerts/{alert_id}/resolve").status_code == 200
    conflict = client.post(f"/api/alerts/{alert_id}/acknowledge")
    assert conflict.status_code == 409
    assert "resolved" in conflict.json()["error"]

    log = emulator.alert(alert_id)["log"]
    assert [(e["action"], e["via"]) for e in log] == [
        ("trigger", "events_api"),
        ("acknowledge", "console"),
        ("acknowledge", "console"),
        ("trigger", "events_api"),
        ("resolve", "console"),
    ]
    # The app's own resolve arrives later: the alert is closed, so it is dropped.
    send(client, action_body("resolve", "a"))
    assert emulator.events()[-1]["outcome"] == "dropped"
    # A new trigger opens a new alert.
    send(client, trigger_body("a"))
    assert [a["status"] for a in emulator.alerts()] == ["resolved", "triggered"]


def test_console_actions_errors(client: httpx.Client) -> None:
    assert client.post("/api/alerts/nope/resolve").status_code == 404
    assert client.post("/api/alerts/nope/acknowledge").status_code == 404
    wrong_method = client.get("/api/alerts/nope/resolve")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert client.post("/api/alerts/nope/snooze").status_code == 404


def test_python_responder_api(client: httpx.Client, emulator: Emulator) -> None:
    send(client, trigger_body("a"))
    alert_id = emulator.alerts()[0]["id"]
    assert emulator.acknowledge(alert_id)["status"] == "acknowledged"
    assert emulator.resolve(alert_id)["status"] == "resolved"
    with pytest.raises(KeyError):
        emulator.resolve("A99999")
    with pytest.raises(KeyError):
        emulator.alert("A99999")
    with pytest.raises(ValueError, match="resolved"):
        emulator.acknowledge(alert_id)


def test_events_and_requests_logs(client: httpx.Client) -> None:
    send(client, trigger_body("a"))
    assert client.post(ENQUEUE, json={"event_action": "trigger"}).status_code == 400
    send(client, change_body(), "/v2/change/enqueue")
    events = client.get("/api/events").json()
    assert [(e["type"], e["status"]) for e in events] == [("trigger", 202), ("change", 202)]
    since = client.get("/api/events", params={"since": events[0]["seq"]}).json()
    assert since == events[1:]
    assert client.get("/api/events", params={"since": "-1"}).status_code == 400
    assert client.get("/api/events", params={"since": "x"}).status_code == 400

    requests = client.get("/api/requests").json()
    assert [(r["path"], r["status"]) for r in requests] == [
        (ENQUEUE, 202),
        (ENQUEUE, 400),
        ("/v2/change/enqueue", 202),
    ]
    assert requests[1]["errors"]
    assert requests[1]["body"] == {"event_action": "trigger"}
    garbage = client.post(ENQUEUE, content=b"\x00garbage", headers={"Content-Type": "text/plain"})
    assert garbage.status_code == 400
    last = client.get("/api/requests").json()[-1]
    assert (last["body"], last["raw"]) == (None, "\x00garbage")


def test_stats(client: httpx.Client) -> None:
    send(client, trigger_body("a"))
    send(client, trigger_body("b"))
    send(client, action_body("resolve", "b"))
    client.post(ENQUEUE, json={})
    stats = client.get("/api/stats").json()
    assert stats["requests"] == 4
    assert stats["by_status"] == {"202": 3, "400": 1}
    assert stats["events_accepted"] == 3
    assert stats["alerts"] == {"triggered": 1, "acknowledged": 0, "resolved": 1}
    assert stats["rate_limit_per_minute"] == 120
    assert stats["faults"]["error_rate"] == 0.0


def test_reset_forgets_everything(clock: FakeClock) -> None:
    with (
        Emulator(port=0, rate_limit_per_minute=2, clock=clock) as emulator,
        httpx.Client(base_url=emulator.url) as client,
    ):
        send(client, trigger_body("a"))
        send(client, trigger_body("a"))
        assert client.post(ENQUEUE, json=trigger_body("a")).status_code == 429
        first_id = emulator.alerts()[0]["id"]
        last_seq = emulator.events()[-1]["seq"]
        emulator.set_faults(latency=0.01)

        assert client.post("/api/reset").json() == {"status": "ok"}
        assert emulator.alerts() == []
        assert emulator.events() == []
        assert emulator.requests() == []
        assert emulator.stats()["requests"] == 0
        assert emulator.faults()["latency"] == 0.0
        send(client, trigger_body("a"))  # the rate window was emptied too
        # Incident ids start again (a script can name A00001 after a reset); sequence
        # numbers keep growing, so old cursors never match new data.
        assert emulator.alerts()[0]["id"] == first_id == "A00001"
        assert emulator.alerts()[0]["incident_number"] == 1
        assert emulator.events()[0]["seq"] > last_seq
        emulator.reset()
        assert emulator.alerts() == []


def test_fault_settings_over_http(client: httpx.Client, emulator: Emulator) -> None:
    snapshot = client.get("/api/faults").json()
    assert snapshot == {
        "error_rate": 0.0,
        "rate_limit_429_rate": 0.0,
        "latency": 0.0,
        "drop_rate": 0.0,
        "outage": False,
        "outage_seconds": None,
        "outage_mode": "error",
        "outage_remaining": None,
        "slow_rate": 0.0,
        "slow_latency": 0.0,
        "seed": 1234,
    }
    put = client.put("/api/faults", json={"error_rate": 0.5, "latency": 0.25})
    assert put.status_code == 200
    assert (put.json()["error_rate"], put.json()["latency"]) == (0.5, 0.25)
    patched = client.patch("/api/faults", json={"drop_rate": 0.1}).json()
    assert (patched["error_rate"], patched["drop_rate"]) == (0.5, 0.1)
    replaced = client.put("/api/faults", json={"outage": True}).json()  # PUT replaces all
    assert (replaced["error_rate"], replaced["outage"]) == (0.0, True)
    # What GET returns can be PUT back unchanged.
    assert client.put("/api/faults", json=client.get("/api/faults").json()).status_code == 200
    assert emulator.faults()["outage"] is True
    cleared = client.delete("/api/faults").json()
    assert cleared["outage"] is False

    for bad in ({"error_rate": 2}, {"bogus": 1}, [1], "x"):
        response = client.put("/api/faults", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]
    not_json = client.put("/api/faults", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert client.get("/api/faults").json()["error_rate"] == 0.0


def test_routing_errors(client: httpx.Client) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.get("/nothing").status_code == 404
    assert client.get("/api/nothing").status_code == 404
    wrong = client.post("/api/alerts")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET"
    assert client.get("/api/reset").status_code == 405
    assert client.delete("/").status_code == 405
    assert client.get("/favicon.ico").status_code == 204


def test_wait_for_alerts(emulator: Emulator) -> None:
    def send_later() -> None:
        with httpx.Client(base_url=emulator.url) as client:
            for key in ("a", "b"):
                client.post(ENQUEUE, json=trigger_body(key))

    sender = threading.Timer(0.05, send_later)
    sender.start()
    alerts = emulator.wait_for_alerts(2, timeout=5)
    sender.join()
    assert [a["dedup_key"] for a in alerts] == ["a", "b"]
    assert len(emulator.wait_for_events(2, timeout=1)) == 2
    with pytest.raises(TimeoutError, match="expected 1 alert"):
        emulator.wait_for_alerts(1, timeout=0.05, status="resolved")
    with pytest.raises(TimeoutError):
        emulator.wait_for_events(3, timeout=0.05)


# -- the console page -----------------------------------------------------------------------


@pytest.fixture
def console(client: httpx.Client) -> httpx.Response:
    response = client.get("/")
    assert response.status_code == 200
    return response


def test_console_is_self_contained(console: httpx.Response) -> None:
    assert console.headers["Content-Type"] == "text/html; charset=utf-8"
    html = console.text
    # No external assets: the machine running it may have no internet access.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html
    assert "innerHTML" not in html
    assert "outerHTML" not in html
    assert "insertAdjacentHTML" not in html
    assert "document.write" not in html


def test_console_csp_allows_exactly_its_own_script_and_style(console: httpx.Response) -> None:
    policy = console.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy
    assert "default-src 'none'" in policy
    for tag in ("script", "style"):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", console.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_console_has_stable_test_ids(console: httpx.Response) -> None:
    for test_id in (
        "alerts-table",
        "alert-row",
        "alert-status",
        "alert-severity",
        "alert-summary",
        "alert-source",
        "alert-count",
        "ack-button",
        "resolve-button",
        "alert-details",
        "detail-custom-details",
        "detail-links",
        "detail-log",
        "log-entry",
        "status-filter",
        "reset-button",
        "change-row",
        "connection-status",
    ):
        assert test_id in console.text, test_id


def test_console_polls_the_api(console: httpx.Response) -> None:
    assert "/api/alerts" in console.text
    assert re.search(r"POLL_MS = \d{3,4};", console.text)


def test_head_request(client: httpx.Client, console: httpx.Response) -> None:
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(console.content)
