"""Web pages cannot drive the emulator: foreign Host headers (DNS rebinding) and
cross-origin state-changing requests get 403 and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pd_integrations.emulator import Emulator
from pd_integrations.emulator.__main__ import build_parser
from pd_integrations.emulator.api import Request
from pd_integrations.emulator.guard import RequestGuard

from .conftest import change_body, trigger_body

EVIL = "http://evil.example"
REST_HEADERS = {"Authorization": "Token token=k", "From": "alice@example.com"}


@pytest.fixture
def alert_id(emulator: Emulator, client: httpx.Client) -> str:
    assert client.post("/v2/enqueue", json=trigger_body("disk")).status_code == 202
    return str(emulator.alerts()[0]["id"])


@pytest.fixture
def localhost(emulator: Emulator) -> Iterator[httpx.Client]:
    """A client that names the emulator ``localhost`` (the console opened that way)."""
    with httpx.Client(base_url=f"http://localhost:{emulator.port}", timeout=5.0) as http:
        yield http


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/reset", None),
        ("POST", "/api/alerts/{id}/acknowledge", None),
        ("POST", "/api/alerts/{id}/resolve", None),
        ("POST", "/api/alerts/{id}/notes", {"content": "pwned"}),
        ("PUT", "/api/faults", {"outage": True}),
        ("PATCH", "/api/faults", {"outage": True}),
        ("DELETE", "/api/faults", None),
    ],
)
@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1", "https://127.0.0.1"])
def test_cross_origin_control_requests_are_refused(
    emulator: Emulator,
    client: httpx.Client,
    alert_id: str,
    method: str,
    path: str,
    body: object,
    origin: str,
) -> None:
    emulator.set_faults(latency=0.001)
    answer = client.request(method, path.format(id=alert_id), json=body, headers={"Origin": origin})
    assert answer.status_code == 403
    assert "cross-origin" in answer.json()["error"]
    (alert,) = emulator.alerts()
    assert (alert["status"], alert["notes"]) == ("triggered", [])
    assert emulator.faults()["latency"] == 0.001
    assert emulator.faults()["outage"] is False


def test_the_emulators_own_origin_may_act(
    emulator: Emulator, client: httpx.Client, localhost: httpx.Client, alert_id: str
) -> None:
    own = {"Origin": emulator.url}
    answer = client.post(f"/api/alerts/{alert_id}/acknowledge", headers=own)
    assert answer.status_code == 200
    # The console opened as http://localhost:<port> sends that origin.
    as_localhost = {"Origin": f"http://localhost:{emulator.port}"}
    assert localhost.post(f"/api/alerts/{alert_id}/resolve", headers=as_localhost).is_success
    assert emulator.alerts()[0]["status"] == "resolved"
    # ...but not to an emulator reached under another name.
    assert client.post("/api/reset", headers=as_localhost).status_code == 403
    assert client.post("/api/reset", headers=own).status_code == 200
    assert emulator.alerts() == []


def test_requests_without_an_origin_and_reads_are_served(
    emulator: Emulator, client: httpx.Client, alert_id: str
) -> None:
    # Test code and curl send no Origin.
    assert client.post(f"/api/alerts/{alert_id}/acknowledge").status_code == 200
    # A cross-origin read is answered; the browser keeps the answer from the page.
    assert client.get("/api/alerts", headers={"Origin": EVIL}).status_code == 200


def test_events_and_rest_api_ignore_the_origin(
    emulator: Emulator, client: httpx.Client, alert_id: str
) -> None:
    evil = {"Origin": EVIL}
    answer = client.post("/v2/enqueue", json=trigger_body("cpu"), headers=evil)
    assert answer.status_code == 202
    answer = client.post("/v2/change/enqueue", json=change_body(), headers=evil)
    assert answer.status_code == 202
    answer = client.put(
        f"/rest/incidents/{alert_id}",
        json={"incident": {"type": "incident_reference", "status": "acknowledged"}},
        headers={**REST_HEADERS, **evil},
    )
    assert answer.status_code == 200
    assert emulator.alert(alert_id)["status"] == "acknowledged"


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",  # DNS rebinding: the attacker's name, our address
        "evil.example",
        "localhost.evil.example:{port}",
        "127.0.0.1:{other}",
        "localhost:{other}",
        "127.0.0.2:{port}",
        "[::1:{port}",
        "127.0.0.1:{port}:1",
        ":{port}",
    ],
)
def test_foreign_host_headers_are_refused(
    emulator: Emulator, client: httpx.Client, alert_id: str, host: str
) -> None:
    named = {"Host": host.format(port=emulator.port, other=emulator.port + 1)}
    for method, path in [
        ("GET", "/api/alerts"),
        ("GET", "/"),
        ("POST", "/api/reset"),
        ("POST", f"/api/alerts/{alert_id}/resolve"),
        ("GET", "/rest/incidents"),
    ]:
        answer = client.request(method, path, headers={**named, **REST_HEADERS})
        assert answer.status_code == 403, (method, path)
        assert "is not this emulator" in answer.json()["error"]
    answer = client.post("/v2/enqueue", json=trigger_body("rebound"), headers=named)
    assert answer.status_code == 403
    assert [alert["dedup_key"] for alert in emulator.alerts()] == ["disk"]
    assert emulator.alerts()[0]["status"] == "triggered"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"]
)
def test_loopback_host_headers_are_served(
    emulator: Emulator, client: httpx.Client, host: str
) -> None:
    named = {"Host": host.format(port=emulator.port)}
    assert client.get("/api/alerts", headers=named).status_code == 200
    assert client.post("/v2/enqueue", json=trigger_body("ok"), headers=named).status_code == 202


def test_allowed_hosts_add_names() -> None:
    with Emulator(port=0, allowed_hosts=["pd-emulator"]) as emulator:
        url = emulator.url
        named = {
            "Host": f"pd-emulator:{emulator.port}",
            "Origin": f"http://pd-emulator:{emulator.port}",
        }
        assert httpx.post(f"{url}/api/reset", headers=named).status_code == 200
        other = {"Host": f"other:{emulator.port}"}
        assert httpx.get(f"{url}/api/alerts", headers=other).status_code == 403
    args = build_parser().parse_args(["--allowed-host", "pd-emulator", "--allowed-host", "box"])
    assert args.allowed_host == ["pd-emulator", "box"]


def request(host: str, method: str = "GET", origin: str | None = None) -> Request:
    headers = {"host": host} | ({"origin": origin} if origin else {})
    return Request(method=method, path="/api/reset", headers=headers)


def status(guard: RequestGuard, checked: Request) -> int:
    """What the guard answers: its 403, or 200 for a request it lets through."""
    refused = guard.check(checked)
    return 200 if refused is None else refused.status


def test_bound_to_every_interface_any_address_but_no_foreign_name_is_served() -> None:
    guard = RequestGuard("0.0.0.0", lambda: 8765, "http")
    assert guard.check(request("192.0.2.10:8765")) is None
    assert guard.check(request("[2001:db8::1]:8765")) is None
    assert guard.check(request("localhost:8765")) is None
    assert status(guard, request("evil.example:8765")) == 403
    assert status(guard, request("192.0.2.10:8765", "POST", "http://192.0.2.11:8765")) == 403
    assert guard.check(request("192.0.2.10:8765", "POST", "http://192.0.2.10:8765")) is None


def test_bound_host_and_default_ports() -> None:
    guard = RequestGuard("pd.internal", lambda: 443, "https")
    assert guard.check(request("pd.internal")) is None
    assert guard.check(request("pd.internal:443", "POST", "https://pd.internal")) is None
    assert status(guard, request("pd.internal", "POST", "http://pd.internal")) == 403
    # HTTP/1.0 without a Host header: no browser sends that, so it passes.
    assert guard.check(Request(method="POST", path="/api/reset")) is None
