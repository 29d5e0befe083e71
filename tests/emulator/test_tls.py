"""TLS with a throwaway CA, and PagerDuty's official Python client against the emulator."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pagerduty
import pytest

from pd_integrations.emulator import Emulator

from .conftest import ROUTING_KEY, trigger_body


@pytest.fixture
def tls_emulator(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(port=0, tls=True, ca_file=tmp_path / "ca.pem") as emulator:
        yield emulator


def test_https_with_the_ca_file(tls_emulator: Emulator, tmp_path: Path) -> None:
    assert tls_emulator.url.startswith("https://127.0.0.1:")
    assert tls_emulator.ca_file == tmp_path / "ca.pem"
    assert tls_emulator.ca_pem is not None
    assert tls_emulator.ca_file.read_bytes() == tls_emulator.ca_pem
    verify = ssl.create_default_context(cafile=str(tls_emulator.ca_file))
    with httpx.Client(base_url=tls_emulator.url, verify=verify) as client:
        for _ in range(3):  # keep-alive over TLS
            assert client.post("/v2/enqueue", json=trigger_body("tls")).status_code == 202
        assert client.get("/").status_code == 200
    assert tls_emulator.alerts()[0]["trigger_count"] == 3


def test_localhost_name_is_in_the_certificate(tls_emulator: Emulator) -> None:
    url = tls_emulator.url.replace("127.0.0.1", "localhost")
    response = httpx.get(f"{url}/api/health", verify=tls_emulator.client_ssl_context())
    assert response.status_code == 200


def test_unknown_ca_is_refused(tls_emulator: Emulator) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_emulator.url}/api/health")
    # A failed handshake does not disturb the server.
    verified = httpx.get(f"{tls_emulator.url}/api/health", verify=tls_emulator.client_ssl_context())
    assert verified.status_code == 200


def test_plain_http_to_the_tls_port_is_harmless(tls_emulator: Emulator) -> None:
    plain = tls_emulator.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/api/health")
    verified = httpx.get(f"{tls_emulator.url}/api/health", verify=tls_emulator.client_ssl_context())
    assert verified.status_code == 200


def test_temporary_ca_file_is_removed_on_stop() -> None:
    with Emulator(port=0, tls=True) as emulator:
        ca_file = emulator.ca_file
        assert ca_file is not None
        assert ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert not ca_file.exists()


def test_given_ca_file_is_kept(tmp_path: Path) -> None:
    with Emulator(port=0, tls=True, ca_file=str(tmp_path / "keep.pem")):
        pass
    assert (tmp_path / "keep.pem").exists()


# -- PagerDuty's official client (python-pagerduty 7.x), which nobody here wrote ------------


@pytest.fixture
def official(tls_emulator: Emulator) -> Iterator[Any]:
    # The official client only accepts https:// base URLs; verify= goes to its httpx2
    # client, which deprecates a CA path string in favour of an SSL context.
    verify = ssl.create_default_context(cafile=str(tls_emulator.ca_file))
    client = pagerduty.EventsApiV2Client(ROUTING_KEY, base_url=tls_emulator.url, verify=verify)
    try:
        yield client
    finally:
        client.close()


def test_official_client_trigger_acknowledge_resolve(official: Any, tls_emulator: Emulator) -> None:
    dedup_key = official.trigger(
        "Payment provider unreachable",
        "checkout-1",
        dedup_key="checkout/payments",
        severity="error",
        custom_details={"provider": "acme", "attempts": 3},
        links=[{"href": "https://runbooks.example/payments", "text": "Runbook"}],
        images=[{"src": "https://graphs.example/p.png", "alt": "errors"}],
    )
    assert dedup_key == "checkout/payments"
    (alert,) = tls_emulator.alerts()
    assert alert["status"] == "triggered"
    assert (alert["summary"], alert["source"], alert["severity"]) == (
        "Payment provider unreachable",
        "checkout-1",
        "error",
    )
    assert alert["custom_details"] == {"provider": "acme", "attempts": 3}
    assert alert["links"][0]["href"] == "https://runbooks.example/payments"
    assert alert["images"][0]["src"] == "https://graphs.example/p.png"
    assert alert["routing_key"] == ROUTING_KEY

    assert official.trigger("Payment provider unreachable", "checkout-1", dedup_key=dedup_key)
    assert tls_emulator.alerts()[0]["trigger_count"] == 2

    assert official.acknowledge(dedup_key) == dedup_key
    assert tls_emulator.alerts()[0]["status"] == "acknowledged"
    assert official.resolve(dedup_key) == dedup_key
    (alert,) = tls_emulator.alerts()
    assert alert["status"] == "resolved"
    assert [e["action"] for e in alert["log"]] == ["trigger", "trigger", "acknowledge", "resolve"]

    # Resolving again, or a key PagerDuty never saw: accepted, and nothing changes.
    assert official.resolve(dedup_key) == dedup_key
    assert official.acknowledge("never-seen") == "never-seen"
    assert [e["outcome"] for e in tls_emulator.events()[-2:]] == ["dropped", "dropped"]
    # The same key now opens a new alert.
    official.trigger("Payment provider unreachable again", "checkout-1", dedup_key=dedup_key)
    assert [a["status"] for a in tls_emulator.alerts()] == ["resolved", "triggered"]


def test_official_client_without_dedup_key(official: Any, tls_emulator: Emulator) -> None:
    dedup_key = official.trigger("Queue backlog", "worker-3")
    assert re.fullmatch(r"[0-9a-f]{32}", dedup_key)
    (alert,) = tls_emulator.alerts()
    assert alert["dedup_key"] == dedup_key
    assert alert["severity"] == "critical"  # the official client's default


def test_official_client_change_event(official: Any, tls_emulator: Emulator) -> None:
    official.send_change_event(
        payload={
            "summary": "Deployed checkout v2.4.1",
            "source": "ci",
            "timestamp": "2024-05-01T12:00:00Z",
            "custom_details": {"commit": "abc123"},
        },
        links=[{"href": "https://ci.example/builds/42", "text": "Build 42"}],
    )
    (event,) = tls_emulator.events()
    assert event["type"] == "change"
    assert event["body"]["payload"]["summary"] == "Deployed checkout v2.4.1"
    assert event["body"]["routing_key"] == ROUTING_KEY
    assert tls_emulator.alerts() == []  # change events never open alerts


def test_official_client_sees_the_400(official: Any, tls_emulator: Emulator) -> None:
    with pytest.raises(pagerduty.HttpError) as raised:
        official.trigger("Bad severity", "web-1", severity="fatal")
    response = raised.value.response
    assert response is not None
    assert response.status_code == 400
    assert "'payload.severity' is invalid" in response.text
    assert tls_emulator.alerts() == []
