"""A month of synthetic incidents, loaded into the emulator with a fixed clock.

May 2026 (the 1st is a Friday), two services, four alerts, every time chosen so the
expected figures can be worked out by hand (see ``test_emulator_dataset.py``):

* ``slow``: a slow_request alert for route /checkout on service A, every day at 12:00
  UTC, triggered twice, resolved by the integration after 1..5 minutes (day % 5 + 1),
  never acknowledged;
* ``health``: a health_check alert (check "db") on service A, May 1-10: triggered at
  02:00, resolved by the integration at 02:05, triggered again at 02:20 (flapping),
  acknowledged by Alice at 02:23 and resolved by her at 02:40;
* ``payments``: an exception alert (ValueError) on service B, May 1-20 at 20:00 UTC,
  acknowledged after 2 minutes by Bob (even days) or 6 minutes by Alice (odd days) and
  resolved by the same user 45 minutes after the trigger;
* ``disk``: not from the library, service A: May 27 10:00 acknowledged by Alice at 10:10
  and resolved at 12:00; May 28 10:00, still open.

Alice is in Europe/Paris (UTC+2 in May), Bob in America/New_York (UTC-4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pd_integrations.emulator import Emulator
from pd_integrations.emulator.roster import EscalationPolicy, Roster, Schedule, User

KEY_A = "insightsdatasetroutingkey0000aaa"
KEY_B = "insightsdatasetroutingkey0000bbb"
MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
ALICE = User("PALICE1", "Alice Paris", "alice@example.com", time_zone="Europe/Paris")
BOB = User("PBOB001", "Bob New York", "bob@example.com", time_zone="America/New_York")
ROSTER = Roster(
    users=(ALICE, BOB),
    schedules=(
        Schedule("PSCH001", "Primary", (ALICE.id,)),
        Schedule("PSCH002", "Secondary", (BOB.id,)),
    ),
    escalation_policy=EscalationPolicy("PESC001", "Default", ("PSCH001", "PSCH002")),
)


class MovableNow:
    """The emulator's wall clock, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Step:
    at: datetime
    order: int
    act: Callable[[Loader], None]


class Loader:
    def __init__(self, emulator: Emulator, now: MovableNow) -> None:
        self.emulator, self.now = emulator, now
        self.http = httpx.Client(base_url=emulator.url, timeout=10.0)
        self.open: dict[str, str] = {}  # dedup key -> incident id

    def event(self, key: str, action: str, dedup: str, **payload: Any) -> None:
        body: dict[str, Any] = {"routing_key": key, "event_action": action, "dedup_key": dedup}
        if action == "trigger":
            body["payload"] = {"source": "dataset", "severity": "error", **payload}
        answer = self.http.post("/v2/enqueue", json=body)
        assert answer.status_code == 202, answer.text
        if action == "trigger":
            self.open[dedup] = self.emulator.alerts(dedup_key=dedup, status="triggered")[-1]["id"]

    def rest(self, user: User, dedup: str, status: str) -> None:
        incident = self.open[dedup]
        answer = self.http.put(
            f"/rest/incidents/{incident}",
            json={"incident": {"type": "incident_reference", "status": status}},
            headers={"Authorization": "Token token=t", "From": user.email},
        )
        assert answer.status_code == 200, answer.text


def by(user: User, dedup: str, status: str) -> Callable[[Loader], None]:
    return lambda loader: loader.rest(user, dedup, status)


def _steps() -> list[Step]:
    steps: list[Step] = []

    def at(moment: datetime, act: Callable[[Loader], None]) -> None:
        steps.append(Step(moment, len(steps), act))

    slow = {
        "summary": "Slow requests on /checkout",
        "custom_details": {"alert_type": "slow_request", "route": "/checkout", "method": "GET"},
    }
    for day in range(30):
        start = MAY + timedelta(days=day, hours=12)
        at(start, lambda ld: ld.event(KEY_A, "trigger", "slow", **slow))
        at(start + timedelta(seconds=20), lambda ld: ld.event(KEY_A, "trigger", "slow", **slow))
        at(start + timedelta(minutes=day % 5 + 1), lambda ld: ld.event(KEY_A, "resolve", "slow"))
    health = {
        "summary": "Health check db failing",
        "custom_details": {"alert_type": "health_check", "check": "db"},
    }
    for day in range(10):
        start = MAY + timedelta(days=day, hours=2)
        at(start, lambda ld: ld.event(KEY_A, "trigger", "health", **health))
        at(start + timedelta(minutes=5), lambda ld: ld.event(KEY_A, "resolve", "health"))
        at(start + timedelta(minutes=20), lambda ld: ld.event(KEY_A, "trigger", "health", **health))
        at(start + timedelta(minutes=23), lambda ld: ld.rest(ALICE, "health", "acknowledged"))
        at(start + timedelta(minutes=40), lambda ld: ld.rest(ALICE, "health", "resolved"))
    payments = {
        "summary": "ValueError in /pay",
        "custom_details": {
            "alert_type": "exception",
            "exception_type": "ValueError",
            "route": "/pay",
        },
    }
    for day in range(20):
        start = MAY + timedelta(days=day, hours=20)
        user, ack = (BOB, 2) if day % 2 == 0 else (ALICE, 6)
        at(start, lambda ld: ld.event(KEY_B, "trigger", "payments", **payments))
        at(start + timedelta(minutes=ack), by(user, "payments", "acknowledged"))
        at(start + timedelta(minutes=45), by(user, "payments", "resolved"))
    disk = {"summary": "Disk 91% full on db3"}
    start = MAY + timedelta(days=26, hours=10)
    at(start, lambda ld: ld.event(KEY_A, "trigger", "disk", **disk))
    at(start + timedelta(minutes=10), lambda ld: ld.rest(ALICE, "disk", "acknowledged"))
    at(start + timedelta(hours=2), lambda ld: ld.rest(ALICE, "disk", "resolved"))
    at(start + timedelta(days=1), lambda ld: ld.event(KEY_A, "trigger", "disk", **disk))
    return sorted(steps, key=lambda step: (step.at, step.order))


def load(emulator: Emulator, now: MovableNow) -> None:
    """Play the month into ``emulator``; leaves the clock at June 1st, 00:00 UTC."""
    loader = Loader(emulator, now)
    with loader.http:
        for step in _steps():
            now.now = step.at
            step.act(loader)
    now.now = JUNE
