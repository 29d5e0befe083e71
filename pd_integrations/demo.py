"""``pd-integrations demo``: the library at work against a local emulator, in seconds.

It starts the emulator in-process, points an :class:`~pd_integrations.AlertManager` at
it, raises the alerts a web app would raise, and shows what PagerDuty ended up with.
The traffic lives in :func:`generate_traffic`; anything with its signature (an example
app driven by a test client, say) can take its place through :func:`run_demo`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from . import signals
from .alerts import AlertManager
from .dispatch import DispatchStats
from .emulator import Emulator
from .events import Link

DESCRIPTION = (
    "Start the local PagerDuty emulator, send it the alerts a web app would raise "
    "(an unhandled error, an error storm, a slow request, a failing then recovering "
    "health check, a deploy), and show the alerts PagerDuty would have."
)
DEMO_ROUTING_KEY = "pdintegrationsdemo00000000000000"
DEMO_SOURCE = "checkout-service"
STORM_SIZE = 200
FLUSH_TIMEOUT = 10.0
SUMMARY_WIDTH = 64

Say = Callable[[str], None]
Traffic = Callable[[AlertManager, Say], None]
"""Raises alerts through the manager, reporting progress with ``say``."""


# -- the traffic ---------------------------------------------------------------------------


class _Database:
    """A stand-in dependency that fails the way real ones do."""

    def __init__(self) -> None:
        self.up = False

    def query(self, sql: str) -> list[dict[str, Any]]:
        if not self.up:
            raise TimeoutError(f"{sql.split()[0]} timed out after 30 s")
        return []

    def ping(self) -> bool:
        if not self.up:
            raise ConnectionRefusedError(111, "Connection refused")
        return True


def _checkout(total: float, items: int) -> float:
    return total / items


def _stack(exc: BaseException) -> list[str]:
    frames = traceback.extract_tb(exc.__traceback__)
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]


def _exception_details(exc: BaseException, method: str, route: str) -> dict[str, Any]:
    return {
        "exception": {"type": type(exc).__name__, "message": str(exc)},
        "stack": _stack(exc),
        "request": {"method": method, "route": route, "status": 500},
    }


def generate_traffic(manager: AlertManager, say: Say, *, storm_size: int = STORM_SIZE) -> None:
    """What a small web app would raise on a bad afternoon."""
    try:
        _checkout(49.99, 0)
    except ZeroDivisionError as exc:
        manager.critical(
            f"ZeroDivisionError in POST /checkout: {exc}",
            _exception_details(exc, "POST", "/checkout"),
            alert_type="unhandled_exception",
            identifier="ZeroDivisionError@_checkout",
        )
    say("unhandled error: ZeroDivisionError in POST /checkout -> critical alert")

    database = _Database()
    storm_key = ""
    for request_number in range(storm_size):
        try:
            database.query("SELECT * FROM inventory")
        except TimeoutError as exc:
            details = _exception_details(exc, "GET", "/inventory")
            details["request"]["id"] = f"req-{request_number:04d}"
            storm_key = manager.error(
                f"TimeoutError in GET /inventory: {exc}",
                details,
                alert_type="unhandled_exception",
                identifier="TimeoutError@query",
            )
    storm = manager.get_alert(storm_key)
    occurrences = storm.occurrences if storm else 0
    say(
        f"error storm: {storm_size} identical TimeoutErrors in GET /inventory -> one alert, "
        f"{occurrences} occurrences, {max(occurrences - 1, 0)} repeats not re-sent"
    )

    manager.warning(
        "Slow request: GET /reports/{report_id} took 7.4 s (limit 5 s)",
        {"method": "GET", "route": "/reports/{report_id}", "duration_ms": 7412},
        alert_type="slow_request",
        identifier="GET /reports/{report_id}",
    )
    say("slow request: GET /reports/{report_id} took 7.4 s -> warning alert")

    try:
        database.ping()
    except ConnectionRefusedError as exc:
        health_key = manager.alert(
            f"Health check failing: database ({exc.strerror})",
            "critical",
            alert_type="health_check",
            identifier="database",
            custom_details={"check": "database", "error": repr(exc), "consecutive_failures": 2},
        )
        say("health check 'database' failing -> critical alert")
        database.up = True
        if database.ping():
            manager.resolve(health_key)
            say("health check 'database' recovered -> resolve")

    manager.change(
        "Deployed checkout-service v1.4.2",
        custom_details={"version": "1.4.2", "previous_version": "1.4.1", "commit": "3f9c2e1"},
        links=[Link("https://github.com/example/checkout-service/releases/v1.4.2", "Release")],
    )
    say("deploy: checkout-service v1.4.2 -> change event")


# -- running it ----------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What the emulator received from one demo run, and the dispatcher's counts."""

    url: str
    console_url: str
    alerts: list[dict[str, Any]]
    change_events: list[dict[str, Any]]
    stats: DispatchStats
    suppressed: int
    flushed: bool
    occurrences: dict[str, int] = field(default_factory=dict)
    """Occurrences counted by the manager, per dedup key of an alert it still has open."""


def run_demo(
    emulator: Emulator,
    *,
    traffic: Traffic = generate_traffic,
    say: Say = print,
    routing_key: str = DEMO_ROUTING_KEY,
) -> DemoResult:
    """Send ``traffic`` through an AlertManager to a running ``emulator``; what it saw."""
    suppressed = 0

    def count_suppressed(sender: object, **extra: object) -> None:
        nonlocal suppressed
        suppressed += 1

    manager = AlertManager(
        routing_key,
        source=DEMO_SOURCE,
        dedup_key_prefix="demo",
        base_url=emulator.url,
        client_url=emulator.console_url,
    )
    try:
        with signals.event_suppressed.connected_to(count_suppressed, sender=manager):
            traffic(manager, say)
        flushed = manager.flush(FLUSH_TIMEOUT)
        occurrences = {alert.dedup_key: alert.occurrences for alert in manager.active_alerts()}
        stats = manager.stats()
    finally:
        manager.close()
    say(f"delivered: {stats.sent} events sent to the emulator")
    return DemoResult(
        url=emulator.url,
        console_url=emulator.console_url,
        alerts=emulator.alerts(routing_key=routing_key),
        change_events=[
            event
            for event in emulator.events()
            if event["type"] == "change" and event["body"].get("routing_key") == routing_key
        ],
        stats=stats,
        suppressed=suppressed,
        flushed=flushed,
        occurrences=occurrences,
    )


# -- output --------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def alerts_table(result: DemoResult) -> str:
    """The alerts as a fixed-width table for a terminal."""
    header = ("STATUS", "SEVERITY", "TRIGGERS", "OCCURRENCES", "SUMMARY", "DEDUP KEY")
    rows = [header]
    for alert in result.alerts:
        occurrences = result.occurrences.get(alert["dedup_key"])
        rows.append(
            (
                str(alert["status"]),
                str(alert["severity"]),
                str(alert["trigger_count"]),
                "-" if occurrences is None else str(occurrences),
                _clip(str(alert["summary"]), SUMMARY_WIDTH),
                str(alert["dedup_key"]),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    numeric = {2, 3}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric and row is not header else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def stats_line(result: DemoResult) -> str:
    stats = result.stats
    return (
        f"Dispatcher: {stats.sent} sent, {stats.retried} retried, {stats.failed} failed, "
        f"{stats.dropped} dropped, {stats.coalesced} coalesced in the queue, "
        f"{stats.queued} still queued; {result.suppressed} repeats of open alerts suppressed"
    )


def _alert_json(alert: dict[str, Any], occurrences: int | None) -> dict[str, Any]:
    keep = (
        "id",
        "status",
        "severity",
        "summary",
        "source",
        "component",
        "dedup_key",
        "trigger_count",
        "first_seen",
        "last_seen",
        "acknowledged_at",
        "resolved_at",
        "custom_details",
        "links",
    )
    return {**{name: alert.get(name) for name in keep}, "occurrences": occurrences}


def to_json(result: DemoResult) -> dict[str, Any]:
    return {
        "emulator": result.url,
        "console": result.console_url,
        "alerts": [
            _alert_json(alert, result.occurrences.get(alert["dedup_key"]))
            for alert in result.alerts
        ],
        "change_events": [
            {
                "summary": event["body"].get("payload", {}).get("summary"),
                "source": event["body"].get("payload", {}).get("source"),
                "received_at": event["received_at"],
            }
            for event in result.change_events
        ],
        "stats": {**asdict(result.stats), "suppressed": result.suppressed},
        "delivered": result.flushed,
    }


def print_report(result: DemoResult) -> None:
    print()
    print(f"PagerDuty now has these alerts ({result.url}):")
    print()
    print(alerts_table(result))
    print()
    for event in result.change_events:
        summary = event["body"].get("payload", {}).get("summary")
        print(f"Change event: {summary} (at {event['received_at']})")
    print(stats_line(result))


# -- the command ---------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="emulator interface (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="emulator port (default 0: any free port)"
    )
    parser.add_argument(
        "--storm",
        type=int,
        default=STORM_SIZE,
        metavar="N",
        help=f"how many identical errors the storm raises (default {STORM_SIZE})",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the emulator and its console up until Ctrl-C",
    )
    parser.add_argument("--json", action="store_true", help="print the alerts as JSON")


def run(args: argparse.Namespace) -> int:
    """The ``demo`` command with parsed arguments; returns the exit status."""
    if args.storm < 1:
        print("pd-integrations: error: --storm must be at least 1", file=sys.stderr)
        return 2
    # With --json, stdout carries only the JSON document.
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(f"  {line}", file=out, flush=True)

    def traffic(manager: AlertManager, say: Say) -> None:
        generate_traffic(manager, say, storm_size=args.storm)

    try:
        emulator = Emulator(args.host, args.port).start()
    except OSError as error:
        print(f"pd-integrations: error: cannot start the emulator: {error}", file=sys.stderr)
        return 1
    with emulator:
        print(f"Emulator running at {emulator.url}", file=out, flush=True)
        result = run_demo(emulator, traffic=traffic, say=say)
        if args.json:
            print(json.dumps(to_json(result), indent=2, ensure_ascii=False))
        else:
            print_report(result)
        if not result.flushed:
            print(
                "pd-integrations: error: some events were not delivered in time",
                file=sys.stderr,
            )
            return 1
        if args.keep_running:
            print(f"Console: {emulator.console_url} (press Ctrl-C to stop)", file=out, flush=True)
            _wait_for_interrupt()
    return 0


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    else:
        previous = {}
    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pd_integrations.demo``: the same as ``pd-integrations demo``."""
    parser = argparse.ArgumentParser(prog="pd-integrations demo", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
