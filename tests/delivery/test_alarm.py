"""An alert on a second integration when delivery to the main one fails, and recovers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pd_integrations import AlertManager
from pd_integrations.client import EventsClient, RetryPolicy
from pd_integrations.delivery.alarm import alarm_dedup_key
from pd_integrations.emulator import Emulator
from tests.transport import wait_until

MAIN = "deliverymainroutingkey0000000001"
ALARM = "deliveryalarmroutingkey000000001"
QUICK = RetryPolicy(base_delay=0.01, max_delay=0.05, rate_limited_base_delay=0.01)
WAIT = 60.0


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, rate_limit_per_minute=None) as running:
        yield running


def manager(emulator: Emulator, **kwargs: object) -> AlertManager:
    client = EventsClient(MAIN, source="tests", base_url=emulator.url, retry=QUICK)
    return AlertManager(
        client=client,
        base_url=emulator.url,
        rate_limit=None,
        delivery_alert_routing_key=ALARM,
        **kwargs,  # type: ignore[arg-type]
    )


def alarm_alerts(emulator: Emulator) -> list[dict[str, object]]:
    return emulator.alerts(routing_key=ALARM)


def test_a_revoked_routing_key_raises_one_delivery_alert_and_resolves_on_recovery(
    emulator: Emulator,
) -> None:
    emulator.revoke(MAIN)
    alerts = manager(emulator)
    try:
        for n in range(5):  # five pages lost, one delivery alert
            alerts.critical(f"Payments down {n}")
        assert wait_until(lambda: len(alarm_alerts(emulator)) == 1, WAIT)
        assert alerts.flush(WAIT)
        (alarm,) = alarm_alerts(emulator)
        assert alarm["dedup_key"] == alarm_dedup_key(MAIN)
        assert alarm["severity"] == "critical"
        assert "Invalid routing key" in str(alarm["summary"])
        assert MAIN not in str(alarm)  # the key is a secret: only its last characters
        health = alerts.health()
        assert health is not None
        assert health.rejected == 5
        assert health.problem is not None

        emulator.restore(MAIN)
        alerts.critical("Payments down again")
        assert wait_until(lambda: alarm_alerts(emulator)[0]["status"] == "resolved", WAIT)
        assert alerts.health() is not None
        assert alerts.health().ok  # type: ignore[union-attr]
        assert len(alarm_alerts(emulator)) == 1
    finally:
        alerts.close(5)


def test_events_waiting_too_long_raise_a_delivery_alert(emulator: Emulator) -> None:
    alerts = manager(emulator, delivery_stall_after=0.2)
    alarm = alerts.delivery_alarm
    assert alarm is not None
    emulator.set_faults(outage=True)
    try:
        alerts.critical("Queue backs up")
        assert emulator.wait_for_requests(1, timeout=WAIT)

        # The periodic check would find it within check_every; ask now instead of waiting.
        def stalled() -> bool:
            alarm.check()
            return alarm.open

        assert wait_until(stalled, WAIT)
        health = alerts.health()
        assert health is not None
        assert health.queued == 1
        assert "nothing delivered" in str(health.problem)
        assert alerts.flush(0) is False
        # The alarm's own integration is down too in this outage: it gets through after.
        emulator.clear_faults()
        assert alerts.flush(WAIT)
        assert wait_until(lambda: not alarm.open, WAIT)
        assert wait_until(
            lambda: [a["status"] for a in alarm_alerts(emulator)] == ["resolved"], WAIT
        )
    finally:
        alerts.close(5)


def test_the_delivery_alert_needs_a_routing_key_of_its_own(emulator: Emulator) -> None:
    client = EventsClient(MAIN, source="tests", base_url=emulator.url)
    with pytest.raises(ValueError, match="of its own"):
        AlertManager(client=client, delivery_alert_routing_key=MAIN)
    client.close()
