"""``pd-integrations run``, ``watchdog`` and ``monitors``: heartbeats from the command line.

- ``run --monitor SLUG [--schedule CRON | --interval S] -- COMMAND ...`` wraps a cron
  line: an ``in_progress`` check-in, the command (its output passed through untouched),
  then ``ok`` or, for a non-zero exit, ``error`` with the exit code and the scrubbed tail
  of its output. The command's exit status is this command's (a signal N: 128 + N).
- ``watchdog`` checks every monitor's deadlines until stopped (one active per store).
- ``monitors`` lists every monitor: schedule, last check-in, next expected run, state.

Settings come from the environment (``PAGERDUTY_ROUTING_KEY``, ``PAGERDUTY_STATE_URL``,
``PAGERDUTY_HEARTBEAT_FILE``...). Everything heavy is imported when a command runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from pd_integrations.cli.common import UsageError, positive_float
from pd_integrations.scrub import DEFAULT_SCRUBBER

__all__ = ["add_commands"]

OUTPUT_TAIL_LINES = 30
OUTPUT_TAIL_CHARS = 4000
DEFAULT_FLUSH = 10.0


def add_commands(commands: Any) -> None:
    """Add the heartbeat commands to the ``pd-integrations`` sub-command parser."""

    run = commands.add_parser(
        "run",
        help="run a command as a monitored scheduled job (for crontab lines)",
        description="Check in to the heartbeat monitor SLUG around COMMAND: in progress, "
        "then ok, or error for a non-zero exit (with the scrubbed tail of its output). "
        "Exits with COMMAND's status.",
    )
    run.add_argument("--monitor", required=True, metavar="SLUG", help="the monitor's name")
    when = run.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="CRON", help="its cron expression (declares it)")
    when.add_argument(
        "--interval", type=positive_float, metavar="S", help="or: seconds between runs"
    )
    run.add_argument("--timezone", metavar="TZ", help="the cron expression's time zone")
    run.add_argument("--grace", type=positive_float, metavar="S", help="seconds late allowed")
    run.add_argument(
        "--max-runtime", type=positive_float, metavar="S", help="seconds a run may take"
    )
    run.add_argument("job", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    run.set_defaults(handler=_run)

    watchdog = commands.add_parser(
        "watchdog",
        help="watch every heartbeat monitor's deadlines and page missed runs",
        description="Check every monitor's deadlines until stopped; with several "
        "watchdogs on one store only one is active at a time.",
    )
    watchdog.add_argument(
        "--interval", type=positive_float, default=30.0, metavar="S", help="default 30"
    )
    watchdog.add_argument("--once", action="store_true", help="one round, then exit")
    watchdog.set_defaults(handler=_watchdog)

    monitors = commands.add_parser(
        "monitors",
        help="list the heartbeat monitors and their state",
        description="Every monitor of the store: schedule, last check-in, next expected "
        "run and state.",
    )
    monitors.add_argument("--json", action="store_true", help="one JSON object per line")
    monitors.set_defaults(handler=_monitors)


def _heartbeats() -> Any:
    from pd_integrations.heartbeats import Heartbeats

    return Heartbeats(watchdog=False)


def _run(args: argparse.Namespace) -> int:

    job = list(args.job)
    if job and job[0] == "--":
        job = job[1:]
    if not job:
        raise UsageError("run needs a command after -- (see 'pd-integrations run --help')")
    monitors = _heartbeats()
    try:
        if args.schedule is not None or args.interval is not None:
            try:
                monitors.add(
                    args.monitor,
                    args.schedule,
                    interval=args.interval,
                    timezone=args.timezone,
                    grace=args.grace,
                    max_runtime=args.max_runtime,
                )
            except (ValueError, ImportError) as error:
                raise UsageError(str(error)) from None
        try:
            monitors.check_in(args.monitor, "in_progress")
        except ValueError as error:
            raise UsageError(f"{error}; give --schedule or --interval") from None
        status, tail = _execute(job)
        if status == 0:
            monitors.check_in(args.monitor, "ok")
        else:
            details = {
                "exit_status": status,
                "command": DEFAULT_SCRUBBER.scrub_text(" ".join(job))[:500],
                "output_tail": DEFAULT_SCRUBBER.scrub_text(tail),
            }
            monitors.check_in(args.monitor, "error", details=details)
        if not monitors.alerts.flush(DEFAULT_FLUSH):
            print("pd-integrations: warning: an alert is still undelivered", file=sys.stderr)
        return status
    finally:
        monitors.close()
        monitors.alerts.close(DEFAULT_FLUSH)


def _execute(job: list[str]) -> tuple[int, str]:
    """Run ``job``, passing its output through; its exit status and its output's tail."""
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    lock = threading.Lock()
    try:
        # The command the user asked to run, as given on the command line.
        process = subprocess.Popen(job, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
    except OSError as error:
        return 127, f"could not start {job[0]!r}: {error}"

    def pump(source: IO[bytes], sink: IO[bytes]) -> None:
        for line in iter(source.readline, b""):
            sink.write(line)
            sink.flush()
            with lock:
                tail.append(line.decode("utf-8", "replace"))

    pumps = [
        threading.Thread(target=pump, args=(process.stdout, sys.stdout.buffer), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, sys.stderr.buffer), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    code = process.wait()
    for thread in pumps:
        thread.join()
    text = "".join(tail)[-OUTPUT_TAIL_CHARS:]
    # A command killed by signal N exits with 128 + N, as a shell reports it.
    return (128 - code if code < 0 else code), text


def _watchdog(args: argparse.Namespace) -> int:
    monitors = _heartbeats()
    monitors.watchdog_interval = args.interval
    try:
        while True:
            done = monitors.watch_once()
            if done is None:
                print("pd-integrations: another watchdog is active", file=sys.stderr)
            for slug, action in done or []:
                print(f"{slug}: {type(action).__name__.lower()} {getattr(action, 'reason', '')}")
            if args.once:
                monitors.alerts.flush(DEFAULT_FLUSH)
                return 0
            monitors.alerts.flush(0)
            threading.Event().wait(args.interval)
    finally:
        monitors.close()
        monitors.alerts.close(DEFAULT_FLUSH)


def _iso(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _monitors(args: argparse.Namespace) -> int:
    monitors = _heartbeats()
    try:
        found = monitors.monitors()
    finally:
        monitors.close()
        monitors.alerts.close(0)
    rows = [
        {
            "monitor": info.spec.slug,
            "schedule": info.spec.schedule.describe(),
            "last_check_in": _iso(info.state.last_check_in),
            "last_status": info.state.last_status or "-",
            "next_expected": _iso(info.state.expected),
            "state": info.status,
        }
        for info in found
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print(f"no monitors in {monitors.store.description}")
        return 0
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(row[h])) for row in rows)) for h in headers}
    print("  ".join(h.upper().replace("_", " ").ljust(widths[h]) for h in headers).rstrip())
    for row in rows:
        print("  ".join(str(row[h]).ljust(widths[h]) for h in headers).rstrip())
    return 0
