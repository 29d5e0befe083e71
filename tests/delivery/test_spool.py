from __future__ import annotations

import collections
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pd_integrations import signals
from pd_integrations.client import EventsClient
from pd_integrations.delivery.dispatcher import Dispatcher
from pd_integrations.delivery.spool import Spool, SpoolError
from pd_integrations.emulator import Emulator
from pd_integrations.events import ChangeEvent, ResolveEvent, TriggerEvent
from tests.processes.spool_child import ROUTING_KEY as CHILD_KEY
from tests.transport import FAST, ScriptedTransport, trigger, wait_until

KEY = "sp00ltestroutingkey0000000000001"
ROOT = Path(__file__).resolve().parents[2]
# Subprocess tests on a loaded 2-core machine: generous, never a timing assertion.
PROCESS_TIMEOUT = 120.0


def make(transport: ScriptedTransport, spool: Path | str, **kwargs: Any) -> Dispatcher:
    client = EventsClient(KEY, source="tests", retry=FAST, transport=transport)
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("handle_sigterm", False)
    return Dispatcher(client, spool=spool, **kwargs)


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "pagerduty.spool"


def rows(path: Path, routing_key: str = KEY) -> int:
    spool = Spool(path, routing_key=routing_key)
    try:
        return spool.pending_count()
    finally:
        spool.close()


# -- in one process ----------------------------------------------------------------------


def test_spooled_events_are_delivered_and_removed(spool_path: Path) -> None:
    transport = ScriptedTransport()
    dispatcher = make(transport, spool_path)
    assert dispatcher.spool is not None
    assert dispatcher.submit(trigger("a"))
    assert dispatcher.submit(ResolveEvent("a"))
    assert dispatcher.submit(ChangeEvent("deployed", custom_details={"version": "1.2"}))
    assert dispatcher.flush(30)
    assert [(b.get("event_action"), b.get("dedup_key")) for b in transport.bodies] == [
        ("trigger", "a"),
        ("resolve", "a"),
        (None, None),
    ]
    assert transport.bodies[2]["payload"]["custom_details"] == {"version": "1.2"}
    assert rows(spool_path) == 0
    assert dispatcher.stats().sent == 3
    assert dispatcher.close(5)


def test_what_is_on_disk_is_scrubbed_and_has_no_routing_key(
    spool_path: Path, gate: threading.Event
) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, spool_path)
    dispatcher.submit(trigger("blocker"))
    assert transport.arrived.wait(10)
    dispatcher.submit(
        TriggerEvent("s", "error", "tests", dedup_key="k", custom_details={"password": "hunter2"})
    )
    assert wait_until(lambda: rows(spool_path) == 2, 30)
    raw = spool_path.read_bytes() + Path(f"{spool_path}-wal").read_bytes()
    assert b"hunter2" not in raw
    assert KEY.encode() not in raw
    gate.set()
    assert dispatcher.flush(30)
    assert transport.bodies[1]["payload"]["custom_details"]["password"] != "hunter2"
    dispatcher.close(5)


def test_pending_events_survive_a_restart_and_are_sent_once(spool_path: Path) -> None:
    down = ScriptedTransport([503] * 100_000)
    first = make(down, spool_path)
    for i in range(20):
        first.submit(trigger(f"k{i}"))
    assert not first.flush(0.5)
    assert first.close(0.1) is False  # not delivered, but kept
    assert first.stats().dropped == 0
    assert rows(spool_path) == 20

    up = ScriptedTransport()
    second = make(up, spool_path)
    assert second.flush(30)
    sent = [b["dedup_key"] for b in up.bodies]
    # Each exactly once. Not necessarily in order: the first dispatcher may release its
    # claim on the event it was retrying only after the second one started.
    assert sorted(sent) == sorted(f"k{i}" for i in range(20))
    assert rows(spool_path) == 0
    second.close(5)


def test_a_400_is_removed_from_the_spool_and_recorded(spool_path: Path) -> None:
    transport = ScriptedTransport([400])
    dispatcher = make(transport, spool_path)
    dispatcher.submit(trigger("bad"))
    dispatcher.submit(trigger("good"))
    assert dispatcher.flush(30)
    spool = dispatcher.spool
    assert spool is not None
    assert spool.pending_count() == 0
    (failed,) = spool.failed()
    assert (failed.reason, failed.action, failed.dedup_key) == ("rejected", "trigger", "bad")
    assert "'payload.summary' is missing" in failed.error
    assert failed.body["payload"]["summary"] == "boom"
    stats = dispatcher.stats()
    assert (stats.sent, stats.failed) == (1, 1)
    dispatcher.close(5)


def test_the_failed_table_is_bounded(spool_path: Path) -> None:
    spool = Spool(spool_path, routing_key=KEY, max_failed=3)
    spool.put([(trigger(f"k{i}"), 1) for i in range(5)], max_rows=100)
    for _ in range(5):
        claimed = spool.claim()
        assert claimed is not None
        assert spool.fail(claimed, reason="rejected", error="no")
    assert [f.dedup_key for f in spool.failed()] == ["k2", "k3", "k4"]
    spool.close()


def test_give_up_after_moves_the_event_to_the_failed_table(spool_path: Path) -> None:
    transport = ScriptedTransport([503] * 100_000)
    dispatcher = make(transport, spool_path, give_up_after=0.2)
    dispatcher.submit(trigger("down"))
    assert dispatcher.flush(30)
    spool = dispatcher.spool
    assert spool is not None
    assert [(f.reason, f.dedup_key) for f in spool.failed()] == [("expired", "down")]
    assert spool.pending_count() == 0
    dispatcher.close(5)


def test_a_storm_coalesces_in_the_spool(spool_path: Path, gate: threading.Event) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, spool_path)
    dispatcher.submit(trigger("blocker"))
    assert transport.arrived.wait(10)
    for i in range(300):
        dispatcher.submit(trigger("storm", summary=f"again {i}"))
    assert wait_until(lambda: dispatcher.stats().queued == 2, 30)  # blocker + one row
    gate.set()
    assert dispatcher.flush(30)
    storm = transport.bodies[1]
    assert len(transport.bodies) == 2
    assert storm["payload"]["summary"] == "again 299"
    assert storm["payload"]["custom_details"]["occurrences"] == 300
    assert dispatcher.stats().coalesced == 299
    dispatcher.close(5)


def test_a_trigger_never_merges_across_a_resolve_in_the_spool(spool_path: Path) -> None:
    spool = Spool(spool_path, routing_key=KEY)
    spool.put([(trigger("k", summary="one"), 1), (ResolveEvent("k"), 1)], max_rows=100)
    result = spool.put([(trigger("k", summary="two"), 1)], max_rows=100)
    assert result.coalesced == []
    result = spool.put([(trigger("k", summary="three"), 1)], max_rows=100)
    assert [occurrences for _, occurrences in result.coalesced] == [2]
    events = spool.pending()
    assert [e.action for e in events] == ["trigger", "resolve", "trigger"]
    assert isinstance(events[2], TriggerEvent)
    assert events[2].summary == "three"
    spool.close()


def test_a_full_spool_drops_the_least_important_first(
    spool_path: Path, gate: threading.Event
) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, spool_path, max_queue=4)
    dropped: list[tuple[str | None, str]] = []

    def on_dropped(sender: object, **kw: Any) -> None:
        dropped.append((kw["event"].dedup_key, kw["reason"]))

    signals.event_dropped.connect(on_dropped)
    try:
        dispatcher.submit(trigger("inflight"))  # claimed: never a victim
        assert transport.arrived.wait(10)
        for key, severity in (("info", "info"), ("warning", "warning"), ("critical-1", "critical")):
            dispatcher.submit(trigger(key, severity))
        assert wait_until(lambda: rows(spool_path) == 4, 30)
        dispatcher.submit(trigger("critical-2", "critical"))  # evicts "info"
        assert wait_until(lambda: len(dropped) == 1, 30)
        dispatcher.submit(trigger("info-2", "info"))  # nothing ranks lower
        assert wait_until(lambda: len(dropped) == 2, 30)
    finally:
        signals.event_dropped.disconnect(on_dropped)
    assert dropped == [("info", "queue-full"), ("info-2", "queue-full")]
    gate.set()
    assert dispatcher.flush(30)
    sent = [b["dedup_key"] for b in transport.bodies]
    # The most important first once the endpoint answers again, oldest first within a rank.
    assert sent == ["inflight", "critical-1", "critical-2", "warning"]
    assert dispatcher.stats().dropped == 2
    dispatcher.close(5)


def test_a_live_claim_is_respected_and_a_dead_one_taken_over(spool_path: Path) -> None:
    now = 1_000_000.0
    crashed = Spool(spool_path, routing_key=KEY, lease=30)
    other = Spool(spool_path, routing_key=KEY, lease=30)
    crashed.put([(trigger("a"), 1), (trigger("b"), 1), (ResolveEvent("a"), 1)], max_rows=10)
    claimed = crashed.claim(now=now)
    assert claimed is not None
    assert claimed.event.dedup_key == "a"
    # "b" is free; the resolve of "a" must wait for its trigger, claimed or not.
    second = other.claim(now=now)
    assert second is not None
    assert second.event.dedup_key == "b"
    assert other.claim(now=now) is None
    # The first owner stopped renewing (it died): after its lease, "a" is taken over.
    taken = other.claim(now=now + 31)
    assert taken is not None
    assert taken.row_id == claimed.row_id
    assert not crashed.complete(claimed)  # a late answer cannot settle it twice
    assert other.complete(taken)
    assert other.complete(second)
    resolve = other.claim(now=now + 31)
    assert resolve is not None
    assert resolve.event.action == "resolve"
    crashed.close()
    other.close()


def test_an_unreadable_row_goes_to_the_failed_table(spool_path: Path) -> None:
    spool = Spool(spool_path, routing_key=KEY)
    spool.put([(trigger("broken"), 1), (trigger("fine"), 1)], max_rows=10)
    with sqlite3.connect(spool_path) as db:
        db.execute("UPDATE pending SET body = '{not json' WHERE dedup_key = 'broken'")
    claimed = spool.claim()
    assert claimed is not None
    assert claimed.event.dedup_key == "fine"
    assert [f.reason for f in spool.failed()] == ["unreadable"]
    spool.close()


def test_other_routing_keys_rows_are_left_alone(spool_path: Path) -> None:
    mine = Spool(spool_path, routing_key=KEY)
    theirs = Spool(spool_path, routing_key="0therroutingkey00000000000000001")
    theirs.put([(trigger("theirs"), 1)], max_rows=10)
    assert mine.claim() is None
    assert mine.pending_count() == 0
    assert theirs.pending_count() == 1
    mine.close()
    theirs.close()


def test_a_corrupt_spool_warns_and_delivery_goes_on_in_memory(
    spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_path.write_bytes(b"this is not an SQLite database, just garbage \x00\xff" * 200)
    transport = ScriptedTransport()
    with caplog.at_level(logging.WARNING, logger="pd_integrations"):
        dispatcher = make(transport, spool_path)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(spool_path) in warnings[0].getMessage()
    assert "in memory" in warnings[0].getMessage()
    assert dispatcher.spool is None
    dispatcher.submit(trigger("still-delivered"))
    assert dispatcher.flush(10)
    assert [b["dedup_key"] for b in transport.bodies] == ["still-delivered"]
    dispatcher.close(5)


def test_an_unopenable_spool_warns_and_delivery_goes_on_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport = ScriptedTransport()
    with caplog.at_level(logging.WARNING, logger="pd_integrations"):
        dispatcher = make(transport, tmp_path / "missing-directory" / "spool.db")
    assert dispatcher.spool is None
    assert "cannot open the PagerDuty spool" in caplog.text
    dispatcher.submit(trigger("still-delivered"))
    assert dispatcher.flush(10)
    assert len(transport.requests) == 1
    dispatcher.close(5)


def test_a_spool_failing_later_hands_its_events_to_memory(
    spool_path: Path, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    transport = ScriptedTransport(gate=gate)
    dispatcher = make(transport, spool_path)
    dispatcher.submit(trigger("first"))
    assert transport.arrived.wait(10)
    spool = dispatcher.spool
    assert spool is not None
    # The file breaks under the dispatcher (as a full or vanished disk would).
    with sqlite3.connect(spool_path) as db:
        db.execute("DROP TABLE pending")
    with caplog.at_level(logging.WARNING, logger="pd_integrations"):
        dispatcher.submit(trigger("second"))
        assert wait_until(lambda: dispatcher.spool is None, 30)
    gate.set()
    assert dispatcher.flush(30)
    assert "kept in memory only" in caplog.text
    assert [b["dedup_key"] for b in transport.bodies][-1] == "second"
    dispatcher.close(5)


def test_spool_arguments_are_checked(spool_path: Path) -> None:
    with pytest.raises(ValueError, match="lease"):
        Spool(spool_path, routing_key=KEY, lease=0)
    with pytest.raises(ValueError, match="spool_lease"):
        make(ScriptedTransport(), spool_path, spool_lease=-1)
    with pytest.raises(ValueError, match="empty"):
        make(ScriptedTransport(), "")
    spool = Spool(spool_path, routing_key=KEY)
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.pending_count()


def test_the_spool_path_comes_from_the_environment(
    spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_SPOOL", str(spool_path))
    dispatcher = make(ScriptedTransport(), None)  # type: ignore[arg-type]
    assert dispatcher.spool is not None
    assert dispatcher.spool.path == spool_path
    dispatcher.close(5)


# -- across processes --------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def child(spool: Path, base_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PAGERDUTY_SPOOL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.processes.spool_child", str(spool), base_url, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def accepted_keys(emulator: Emulator) -> collections.Counter[str]:
    return collections.Counter(
        r["body"]["dedup_key"] for r in emulator.requests() if r["status"] == 202
    )


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, rate_limit_per_minute=None, seed=6) as emulator:
        yield emulator


def test_sigkill_loses_nothing_and_the_next_process_sends_each_event_once(
    spool_path: Path, emulator: Emulator
) -> None:
    count = 200
    doomed = child(spool_path, closed_port_url(), "--submit", str(count), "--hang")
    try:
        assert wait_until(lambda: rows(spool_path, CHILD_KEY) == count, PROCESS_TIMEOUT)
    finally:
        doomed.kill()  # SIGKILL: no exit handler, no flush
        doomed.communicate(timeout=PROCESS_TIMEOUT)
    assert doomed.returncode == -9
    assert rows(spool_path, CHILD_KEY) == count
    assert emulator.requests() == []

    heir = child(spool_path, emulator.url)
    out, err = heir.communicate(timeout=PROCESS_TIMEOUT)
    assert heir.returncode == 0, err
    assert "FLUSHED True" in out
    assert rows(spool_path, CHILD_KEY) == 0
    expected = {f"event-{i}" for i in range(count)}
    assert {a["dedup_key"] for a in emulator.alerts()} == expected
    assert all(alert["trigger_count"] == 1 for alert in emulator.alerts())
    assert accepted_keys(emulator) == collections.Counter(expected)


def test_processes_sharing_a_spool_never_send_a_row_twice(
    spool_path: Path, emulator: Emulator
) -> None:
    # A backlog left by a process that could not reach PagerDuty...
    count = 150
    backlog = child(spool_path, closed_port_url(), "--submit", str(count), "--flush", "0.5")
    backlog.communicate(timeout=PROCESS_TIMEOUT)
    assert rows(spool_path, CHILD_KEY) == count
    # ...is drained by three processes at once, each adding events of its own.
    emulator.set_faults(latency=0.01)
    drainers = [
        child(spool_path, emulator.url, "--submit", "30", "--prefix", f"p{n}") for n in range(3)
    ]
    for process in drainers:
        _, err = process.communicate(timeout=PROCESS_TIMEOUT)
        assert process.returncode == 0, err
    expected = [f"event-{i}" for i in range(count)]
    expected += [f"p{n}-{i}" for n in range(3) for i in range(30)]
    assert accepted_keys(emulator) == collections.Counter(expected)
    assert rows(spool_path, CHILD_KEY) == 0


def test_a_spool_file_holds_valid_json_bodies(spool_path: Path) -> None:
    spool = Spool(spool_path, routing_key=KEY)
    spool.put([(trigger("k"), 1)], max_rows=10)
    spool.close()
    with sqlite3.connect(spool_path) as db:
        (body,) = db.execute("SELECT body FROM pending").fetchone()
    decoded = json.loads(body)
    assert decoded["dedup_key"] == "k"
    assert "routing_key" not in decoded
