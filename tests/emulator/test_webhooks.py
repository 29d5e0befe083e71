"""Signed v3 webhooks from the emulator, checked by a loopback receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from pd_integrations.emulator import Emulator
from pd_integrations.webhooks import verify_signature
from tests.transport import wait_until

from .conftest import action_body, trigger_body

SECRET = "emulator-webhook-test-secret"
OLD_SECRET = "the-previous-secret"
FAST_RETRIES = (0.01, 0.01, 0.01)


class Receiver:
    """A loopback HTTP server answering from a script of statuses (then 200).

    With ``hang`` set, each request waits for it (or 30 s) before answering.
    """

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.hang: threading.Event | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                    status = receiver.script.pop(0) if receiver.script else 200
                if receiver.hang is not None:
                    receiver.hang.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pagerduty/webhooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body)["event"] for _, body in self.received]

    def close(self) -> None:
        if self.hang is not None:
            self.hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def emulator_for(receiver: Receiver, **options: Any) -> Emulator:
    settings: dict[str, Any] = {
        "webhook_url": receiver.url,
        "webhook_secret": SECRET,
        "webhook_retry_delays": FAST_RETRIES,
        **options,
    }
    return Emulator(port=0, **settings)


def post(emulator: Emulator, body: dict[str, Any]) -> None:
    response = httpx.post(emulator.events_url, json=body, timeout=5)
    assert response.status_code == 202


def test_signed_deliveries_for_every_change_in_order(receiver: Receiver) -> None:
    with emulator_for(receiver) as emulator:
        post(emulator, trigger_body("disk", summary="Disk full"))
        post(emulator, trigger_body("disk", summary="Disk full"))  # deduplicated: no webhook
        (alert,) = emulator.alerts()
        rest = httpx.Client(
            base_url=emulator.rest_url,
            headers={"Authorization": "Token token=k", "From": "bob@example.com"},
            timeout=5,
        )
        with rest:
            acknowledged = {"incident": {"type": "incident", "status": "acknowledged"}}
            assert rest.put(f"/incidents/{alert['id']}", json=acknowledged).status_code == 200
            note = {"note": {"content": "Cleaning /var/log"}}
            assert rest.post(f"/incidents/{alert['id']}/notes", json=note).status_code == 201
        post(emulator, action_body("acknowledge", "disk"))  # already acknowledged: no webhook
        # The console's button, through the control API.
        resolved = httpx.post(f"{emulator.url}/api/alerts/{alert['id']}/resolve", timeout=5)
        assert resolved.status_code == 200
        deliveries = emulator.wait_for_webhooks(4, timeout=10)

    assert [d["event_type"] for d in deliveries] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.annotated",
        "incident.resolved",
    ]
    assert all(d["status"] == "delivered" and d["status_code"] == 200 for d in deliveries)
    assert len(receiver.received) == 4
    for headers, body in receiver.received:
        assert verify_signature(body, headers["X-PagerDuty-Signature"], [SECRET])
        assert not verify_signature(body, headers["X-PagerDuty-Signature"], ["another"])
        assert headers["User-Agent"] == "PagerDuty-Webhook/V3.0"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Webhook-Subscription"]
    ids = [headers["X-Webhook-Id"] for headers, _ in receiver.received]
    assert len(set(ids)) == 4
    assert ids == [d["webhook_id"] for d in deliveries]

    triggered, acknowledged_event, annotated, resolved_event = receiver.events()
    assert triggered["resource_type"] == "incident"
    assert triggered["data"]["id"] == alert["id"]
    assert triggered["data"]["title"] == "Disk full"
    assert triggered["data"]["status"] == "triggered"
    assert triggered["data"]["incident_key"] == "disk"
    assert triggered["data"]["urgency"] == "high"
    assert triggered["agent"]["type"] == "service_reference"
    assert acknowledged_event["data"]["status"] == "acknowledged"
    assert acknowledged_event["agent"]["id"] == "PUSR002"  # the From header's user
    assert annotated["data"]["type"] == "incident_note"
    assert annotated["data"]["incident"]["id"] == alert["id"]
    assert annotated["data"]["content"] == "Cleaning /var/log"
    assert resolved_event["data"]["status"] == "resolved"
    assert resolved_event["agent"]["id"] == "PUSR001"  # the console acts as Alice
    assert len({e["id"] for e in receiver.events()}) == 4


def test_rotation_signs_with_every_secret(receiver: Receiver) -> None:
    with emulator_for(receiver, webhook_secret=[SECRET, OLD_SECRET]) as emulator:
        post(emulator, trigger_body("disk"))
        emulator.wait_for_webhooks(1, timeout=10)
    ((headers, body),) = receiver.received
    assert headers["X-PagerDuty-Signature"].count("v1=") == 2
    assert verify_signature(body, headers["X-PagerDuty-Signature"], [OLD_SECRET])
    assert verify_signature(body, headers["X-PagerDuty-Signature"], [SECRET])


def test_redelivery_after_a_5xx_keeps_the_webhook_id(receiver: Receiver) -> None:
    receiver.script = [500, 503, 429]
    with emulator_for(receiver) as emulator:
        post(emulator, trigger_body("disk"))
        (delivery,) = emulator.wait_for_webhooks(1, timeout=10)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 4
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 429, 200]
    assert len({headers["X-Webhook-Id"] for headers, _ in receiver.received}) == 1
    assert len({body for _, body in receiver.received}) == 1  # byte for byte the same


def test_retries_are_bounded(receiver: Receiver) -> None:
    receiver.script = [502] * 10
    with emulator_for(receiver) as emulator:
        post(emulator, trigger_body("disk"))
        (delivery,) = emulator.wait_for_webhooks(1, timeout=10)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == len(FAST_RETRIES) + 1
    assert len(receiver.received) == len(FAST_RETRIES) + 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_other_4xx_drop_the_delivery(receiver: Receiver, status: int) -> None:
    receiver.script = [status]
    with emulator_for(receiver) as emulator:
        post(emulator, trigger_body("disk"))
        post(emulator, action_body("acknowledge", "disk"))
        first, second = emulator.wait_for_webhooks(2, timeout=10)
    assert (first["status"], first["status_code"], first["attempts"]) == ("dropped", status, 1)
    assert second["status"] == "delivered"  # the next one still goes out
    assert len(receiver.received) == 2


def test_a_hanging_receiver_never_blocks_the_emulator(receiver: Receiver) -> None:
    receiver.hang = threading.Event()
    with emulator_for(receiver, webhook_timeout=0.2, webhook_retry_delays=()) as emulator:
        post(emulator, trigger_body("disk"))
        assert wait_until(lambda: len(receiver.received) == 1)
        # While the delivery hangs, the Events API, the REST API and the console answer.
        post(emulator, trigger_body("other"))
        (alert,) = emulator.alerts(dedup_key="other")
        assert httpx.post(f"{emulator.url}/api/alerts/{alert['id']}/acknowledge").is_success
        assert httpx.get(f"{emulator.url}/api/webhooks", timeout=5).status_code == 200
        deliveries = emulator.wait_for_webhooks(1, timeout=10)
        assert deliveries[0]["status"] == "failed"
        assert "no answer within 0.2 s" in deliveries[0]["error"]
    receiver.hang.set()


def test_stopping_does_not_wait_for_a_hanging_receiver(receiver: Receiver) -> None:
    receiver.hang = threading.Event()
    emulator = emulator_for(receiver).start()
    post(emulator, trigger_body("disk"))
    post(emulator, trigger_body("second"))
    assert wait_until(lambda: len(receiver.received) == 1)
    stopper = threading.Thread(target=emulator.stop)
    stopper.start()
    stopper.join(20)  # well below the receiver's 30 s hang
    assert not stopper.is_alive()
    statuses = [d["status"] for d in emulator.webhook_deliveries()]
    assert statuses == ["abandoned", "abandoned"]


def test_no_receiver_listening() -> None:
    with Emulator(
        port=0,
        webhook_url="http://127.0.0.1:9/nothing",
        webhook_secret=SECRET,
        webhook_retry_delays=FAST_RETRIES,
    ) as emulator:
        post(emulator, trigger_body("disk"))
        (delivery,) = emulator.wait_for_webhooks(1, timeout=10)
        assert delivery["status"] == "failed"
        assert delivery["status_code"] is None
        assert delivery["error"]


def test_configured_later_and_shown_in_the_control_api(receiver: Receiver) -> None:
    with Emulator(port=0) as emulator:
        post(emulator, trigger_body("before"))
        assert emulator.webhook_deliveries() == []
        emulator.set_webhook(receiver.url, SECRET)
        post(emulator, trigger_body("after"))
        emulator.wait_for_webhooks(1, timeout=10)
        shown = httpx.get(f"{emulator.url}/api/webhooks", timeout=5).json()
        assert shown["url"] == receiver.url
        (delivery,) = shown["deliveries"]
        assert delivery["event_type"] == "incident.triggered"
        assert delivery["incident_id"] == emulator.alerts(dedup_key="after")[0]["id"]
        assert SECRET not in json.dumps(shown)
        emulator.set_webhook(None)
        post(emulator, trigger_body("off"))
        emulator.reset()
        assert emulator.webhook_deliveries() == []
    assert len(receiver.received) == 1


def test_a_note_from_the_control_api(receiver: Receiver) -> None:
    with emulator_for(receiver) as emulator:
        post(emulator, trigger_body("disk"))
        (alert,) = emulator.alerts()
        url = f"{emulator.url}/api/alerts/{alert['id']}/notes"
        assert httpx.post(url, json={"content": "Paged the DBA"}, timeout=5).status_code == 201
        assert httpx.post(url, json={"content": ""}, timeout=5).status_code == 400
        assert (
            httpx.post(url.replace(alert["id"], "A09999"), json={"content": "x"}).status_code == 404
        )
        emulator.wait_for_webhooks(2, timeout=10)
    assert [e["event_type"] for e in receiver.events()] == [
        "incident.triggered",
        "incident.annotated",
    ]
    assert emulator.alert(alert["id"])["notes"][0]["content"] == "Paged the DBA"


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("ftp://example.com/hook", SECRET, "absolute http"),
        ("/relative", SECRET, "absolute http"),
        ("http://127.0.0.1/hook", None, "needs a webhook_secret"),
        ("http://127.0.0.1/hook", [" "], "non-empty"),
    ],
)
def test_bad_webhook_settings(url: str, secret: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Emulator(port=0, webhook_url=url, webhook_secret=secret)
