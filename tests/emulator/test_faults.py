"""Injected faults: 5xx, 429, latency, dropped connections and outages."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from pd_integrations.emulator import Emulator, FaultConfig
from tests.clock import FakeClock

from .conftest import trigger_body

ENQUEUE = "/v2/enqueue"
N = 200


def statuses(emulator: Emulator, count: int = N) -> list[int]:
    with httpx.Client(base_url=emulator.url) as client:
        return [
            client.post(ENQUEUE, json=trigger_body(f"k{i % 7}")).status_code for i in range(count)
        ]


def test_error_rate() -> None:
    with Emulator(port=0, error_rate=0.3, seed=7, rate_limit_per_minute=None) as emulator:
        codes = Counter(statuses(emulator))
        failed = codes[500] + codes[502] + codes[503]
        assert set(codes) == {202, 500, 502, 503}
        assert 0.2 * N <= failed <= 0.4 * N
        assert codes[202] == N - failed
        assert len(emulator.events()) == codes[202]
        faulted = [r for r in emulator.requests() if r["fault"]]
        assert len(faulted) == failed
        assert {r["fault"] for r in faulted} == {"error_rate"}


def test_same_seed_same_faults() -> None:
    runs = []
    for _ in range(2):
        with Emulator(port=0, error_rate=0.5, drop_rate=0.1, seed=42) as emulator:
            emulator.rate_limit_per_minute = None
            with httpx.Client(base_url=emulator.url) as client:
                outcome = []
                for i in range(60):
                    try:
                        outcome.append(client.post(ENQUEUE, json=trigger_body(str(i))).status_code)
                    except httpx.TransportError:
                        outcome.append(0)
            runs.append(outcome)
    assert runs[0] == runs[1]
    assert 0 in runs[0]
    assert 202 in runs[0]


def test_injected_429s_do_not_use_the_budget() -> None:
    with Emulator(port=0, rate_limit_429_rate=0.5, seed=3, rate_limit_per_minute=1000) as emulator:
        with httpx.Client(base_url=emulator.url) as client:
            responses = [client.post(ENQUEUE, json=trigger_body("k")) for _ in range(N)]
        throttled = [r for r in responses if r.status_code == 429]
        assert 0.4 * N <= len(throttled) <= 0.6 * N
        assert {r.headers["X-Emulator-Fault"] for r in throttled} == {"rate_limit_429_rate"}
        assert throttled[0].json()["status"] == "throttle event"
        assert emulator.alerts()[0]["trigger_count"] == N - len(throttled)


def test_dropped_connections_are_real_connection_errors() -> None:
    with Emulator(port=0, drop_rate=0.5, seed=11) as emulator:
        dropped = 0
        answered = 0
        for i in range(40):
            # A fresh connection each time: a dropped one is gone.
            try:
                response = httpx.post(f"{emulator.url}{ENQUEUE}", json=trigger_body(str(i)))
            except httpx.TransportError:
                dropped += 1
            else:
                assert response.status_code == 202
                answered += 1
        assert 10 <= dropped <= 30
        assert len(emulator.events()) == answered
        stats = emulator.stats()
        assert stats["by_status"] == {"202": answered, "dropped": dropped}


def test_drop_on_a_keep_alive_connection() -> None:
    with Emulator(port=0) as emulator, httpx.Client(base_url=emulator.url) as client:
        assert client.post(ENQUEUE, json=trigger_body("a")).status_code == 202
        emulator.set_faults(drop_rate=1.0)
        with pytest.raises(httpx.TransportError):
            client.post(ENQUEUE, json=trigger_body("b"))
        emulator.clear_faults()
        # The client opens a new connection and carries on.
        assert client.post(ENQUEUE, json=trigger_body("c")).status_code == 202


def test_latency() -> None:
    with Emulator(port=0, latency=0.2) as emulator, httpx.Client(base_url=emulator.url) as client:
        started = time.monotonic()
        assert client.post(ENQUEUE, json=trigger_body("slow")).status_code == 202
        assert time.monotonic() - started >= 0.2
        emulator.set_faults(latency=0.0)
        assert emulator.faults()["latency"] == 0.0


def test_stop_does_not_wait_for_injected_latency() -> None:
    emulator = Emulator(port=0, latency=60).start()
    failures: list[BaseException] = []

    def slow_request() -> None:
        try:
            httpx.post(f"{emulator.url}{ENQUEUE}", json=trigger_body("x"), timeout=30)
        except httpx.TransportError as error:
            failures.append(error)

    thread = threading.Thread(target=slow_request)
    thread.start()
    emulator.wait_for_requests(1)  # logged before the injected wait begins
    started = time.monotonic()
    emulator.stop()
    thread.join(5)
    assert time.monotonic() - started < 3
    assert len(failures) == 1


def test_outage_until_cleared() -> None:
    with Emulator(port=0) as emulator, httpx.Client(base_url=emulator.url) as client:
        emulator.set_faults(outage=True)
        codes = {client.post(ENQUEUE, json=trigger_body("k")).status_code for _ in range(10)}
        assert codes == {503}
        assert emulator.alerts() == []
        emulator.clear_faults()
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 202


def test_timed_outage_ends_by_itself(clock: FakeClock) -> None:
    with Emulator(port=0, clock=clock) as emulator, httpx.Client(base_url=emulator.url) as client:
        emulator.set_faults(outage=True, outage_seconds=30)
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 503
        clock.advance(10)
        assert emulator.faults()["outage_remaining"] == 20
        # Changing another setting does not restart the outage's clock.
        emulator.set_faults(latency=0.0)
        clock.advance(19.9)
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 503
        clock.advance(0.1)
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 202
        faults = emulator.faults()
        assert faults["outage"] is False
        assert faults["outage_remaining"] is None


def test_outage_that_drops_connections() -> None:
    with Emulator(port=0, outage=True, outage_mode="drop") as emulator:
        for _ in range(3):
            with pytest.raises(httpx.TransportError):
                httpx.post(f"{emulator.url}{ENQUEUE}", json=trigger_body("k"))
        assert emulator.stats()["by_status"] == {"dropped": 3}


def test_faults_never_touch_the_control_api_or_console() -> None:
    with (
        Emulator(port=0, error_rate=1.0, drop_rate=1.0, outage=True, latency=5) as emulator,
        httpx.Client(base_url=emulator.url, timeout=2) as client,
    ):
        assert client.get("/").status_code == 200
        assert client.get("/api/alerts").status_code == 200
        assert client.get("/api/faults").json()["outage"] is True
        assert client.delete("/api/faults").status_code == 200
        assert client.post(ENQUEUE, json=trigger_body("k")).status_code == 202


def test_faults_also_apply_to_change_events_and_unknown_v2_paths() -> None:
    with Emulator(port=0, outage=True) as emulator, httpx.Client(base_url=emulator.url) as client:
        change = {"routing_key": "k" * 32, "payload": {"summary": "deploy"}}
        assert client.post("/v2/change/enqueue", json=change).status_code == 503
        assert client.get("/v2/nothing").status_code == 503
        emulator.clear_faults()
        assert client.get("/v2/nothing").status_code == 404
        assert client.get(ENQUEUE).status_code == 405


@pytest.mark.parametrize(
    "settings",
    [
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"rate_limit_429_rate": "half"},
        {"latency": -1},
        {"latency": 10_000},
        {"outage": "yes"},
        {"outage_seconds": 0},
        {"outage_mode": "explode"},
        {"error_rate": True},
        {"error_rate": float("nan")},
    ],
)
def test_invalid_fault_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(settings))):
        FaultConfig.from_mapping(settings)
    with pytest.raises(ValueError, match=next(iter(settings))):
        Emulator(**settings)  # type: ignore[arg-type]


def test_unknown_fault_setting() -> None:
    with Emulator(port=0) as emulator, pytest.raises(ValueError, match="unknown fault"):
        emulator.set_faults(explode=True)
