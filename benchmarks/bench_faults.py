"""Delivery under faults: how long alerts take to reach a failing PagerDuty (issue 10).

    .venv/bin/python benchmarks/bench_faults.py                     # all three modes, minutes
    .venv/bin/python benchmarks/bench_faults.py --quick             # 20 alerts / 10 failing
    .venv/bin/python benchmarks/bench_faults.py --modes memory --json faults.json

Everything goes through the public :class:`~pd_integrations.AlertManager`, configured as
in production (default retry policy, queue and rate budget of 120 events per minute),
against the bundled emulator run in its own process with PagerDuty's real limit of 120
events per minute per routing key. Two scenarios, each in three modes: in memory (the
default), with a spool (``spool=`` a fresh SQLite file) and with Redis state
(``state_url=``; ``--redis-url``, else a throwaway ``redis-server`` on loopback, else the
mode is skipped with a note). Each scenario of each mode uses a routing key of its own,
so no budget, alert or window carries over from one to the next.

1. **Fault mix.** The emulator answers 20% of requests 500 or 502, 10% 503, 10% 429 and
   drops 5% of connections (shares of all requests; the fault decisions come from a
   fixed seed, restarted before each mode). 100 ``alert()`` calls with distinct dedup
   keys and mixed severities. Measured: the time from the first call until the last
   alert is accepted (``event_sent``), and the attempts the emulator saw. Target: that
   time at most 1.5 times the budget's lower bound, attempts ÷ 120 per minute (i.e.
   attempts ÷ 2 seconds); and every alert delivered exactly once: one incident per
   dedup key, none missing, none failed or dropped.
2. **A critical behind failing events.** 50 warnings are raised while the emulator is in
   an outage (every request answered 503), so they fail and back off; once each has
   failed and the outage has lasted ``--outage-seconds``, the outage ends and a critical
   is raised at once. Measured: the time from the end of the outage (when the emulator
   has confirmed it, the first moment an attempt could succeed) to the critical's
   acceptance. Target: at most 1 second. Then every warning must be delivered exactly
   once too.

The exit status is 1 when a target is missed (``--no-targets``: only when an alert is
lost or duplicated, which is what the smoke test uses).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apps import emulator_process

from pd_integrations import AlertManager, signals
from pd_integrations.delivery.ratelimit import DEFAULT_PER_MINUTE

MODES = ("memory", "spool", "redis")
SEVERITIES = ("critical", "error", "warning", "info")
# Shares of all Events API requests, as the issue states the mix.
DROP_SHARE, ERROR_SHARE, THROTTLE_SHARE = 0.05, 0.30, 0.10
SEED = 10
TARGET_RATIO = 1.5
TARGET_CRITICAL_SECONDS = 1.0
# Generous: the default policy retries for up to 15 minutes; a run that needs this long
# has gone wrong and is reported as such rather than waited for.
DELIVERY_TIMEOUT = 600.0
REDIS_BINARY = "/usr/bin/redis-server"


def fault_mix() -> dict[str, float]:
    """The emulator's settings for the mix: its rates are conditional (a connection is
    dropped first, then a 5xx is drawn, then a 429), so they are scaled to give the
    issue's shares of all requests."""
    error_rate = ERROR_SHARE / (1 - DROP_SHARE)
    throttle_rate = THROTTLE_SHARE / ((1 - DROP_SHARE) * (1 - error_rate))
    return {
        "drop_rate": DROP_SHARE,
        "error_rate": round(error_rate, 4),
        "rate_limit_429_rate": round(throttle_rate, 4),
    }


@dataclass(frozen=True)
class Plan:
    alerts: int = 100
    failing: int = 50
    outage_seconds: float = 3.0
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.alerts < 1 or self.failing < 1:
            raise ValueError("--alerts and --failing must be at least 1")
        if not self.outage_seconds > 0:
            raise ValueError("--outage-seconds must be positive")


QUICK = Plan(alerts=20, failing=10, outage_seconds=2.0)


# -- the emulator's JSON API -----------------------------------------------------------------


class EmulatorAPI:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    def last_request(self) -> int:
        """The sequence number of the latest Events API request (0: none yet)."""
        return max((r["seq"] for r in self.call("GET", "/api/requests")), default=0)

    def requests_since(self, seq: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"/api/requests?since={seq}")
        return result

    def alerts(self, routing_key: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"/api/alerts?routing_key={routing_key}")
        return result

    def faults(self, **settings: object) -> None:
        """Replace the fault settings; the seeded decisions restart from the seed."""
        self.call("DELETE", "/api/faults")
        if settings:
            self.call("PATCH", "/api/faults", settings)


def answers(requests: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Requests by answer: ``202``, ``503``, ``dropped``..."""
    counted = Counter("dropped" if r["status"] is None else str(r["status"]) for r in requests)
    return dict(sorted(counted.items()))


# -- watching the library ------------------------------------------------------------------


class Deliveries:
    """What one manager's dispatcher reports, with the time of each acceptance."""

    def __init__(self, manager: AlertManager) -> None:
        self._dispatcher = manager.dispatcher
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.sent: dict[str, list[float]] = {}
        self.retried: Counter[str] = Counter()
        self.lost: list[str] = []

    def __enter__(self) -> Deliveries:
        signals.event_sent.connect(self._sent, weak=False)
        signals.event_retried.connect(self._retried, weak=False)
        signals.event_failed.connect(self._lost, weak=False)
        signals.event_dropped.connect(self._lost, weak=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signal, receiver in (
            (signals.event_sent, self._sent),
            (signals.event_retried, self._retried),
            (signals.event_failed, self._lost),
            (signals.event_dropped, self._lost),
        ):
            signal.disconnect(receiver)

    def _sent(self, sender: object, *, event: Any, **extra: object) -> None:
        now = time.perf_counter()
        if sender is self._dispatcher:
            with self._changed:
                self.sent.setdefault(event.dedup_key, []).append(now)
                self._changed.notify_all()

    def _retried(self, sender: object, *, event: Any, **extra: object) -> None:
        if sender is self._dispatcher:
            with self._changed:
                self.retried[event.dedup_key] += 1
                self._changed.notify_all()

    def _lost(self, sender: object, *, event: Any, **extra: object) -> None:
        if sender is self._dispatcher:
            with self._changed:
                self.lost.append(event.dedup_key)
                self._changed.notify_all()

    def wait(self, done: Callable[[], bool], timeout: float = DELIVERY_TIMEOUT) -> bool:
        """Wait until ``done()`` (called under the lock) is true; ``False`` on timeout."""
        with self._changed:
            return self._changed.wait_for(done, timeout)

    def delivered(self, keys: Sequence[str]) -> bool:
        return all(key in self.sent for key in keys)


def routing_key(mode: str, scenario: str) -> str:
    """A fresh 32-character key, so nothing carries over between runs or scenarios."""
    return f"bf{mode[:2]}{scenario}{uuid.uuid4().hex}"[:32]


@contextlib.contextmanager
def manager_for(mode: str, key: str, url: str, redis_url: str | None) -> Iterator[AlertManager]:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as scratch:
        options: dict[str, Any] = {}
        if mode == "spool":
            options["spool"] = Path(scratch) / "spool.sqlite3"
        elif mode == "redis":
            options["state_url"] = redis_url
        manager = AlertManager(key, source="bench-faults", base_url=url, **options)
        try:
            yield manager
        finally:
            manager.close(5.0)


def exactly_once(
    api: EmulatorAPI, key: str, expected: Sequence[str], watch: Deliveries
) -> dict[str, Any]:
    """Whether every expected dedup key has one incident in the emulator and no other
    exists, and what the library reported."""
    alerts = api.alerts(key)
    per_key = Counter(alert["dedup_key"] for alert in alerts)
    wanted = set(expected)
    return {
        "incidents": len(alerts),
        "missing": sorted(wanted - set(per_key)),
        "unexpected": sorted(set(per_key) - wanted),
        "more_than_one_incident": sorted(k for k, n in per_key.items() if n > 1),
        "triggers_accepted": sum(alert["trigger_count"] for alert in alerts),
        "sent_twice_by_library": sorted(k for k, times in watch.sent.items() if len(times) > 1),
        "failed_or_dropped": len(watch.lost),
        "ok": (
            set(per_key) == wanted
            and all(n == 1 for n in per_key.values())
            and not watch.lost
            and all(len(watch.sent.get(k, ())) == 1 for k in wanted)
        ),
    }


# -- the scenarios -----------------------------------------------------------------------


def run_fault_mix(mode: str, plan: Plan, api: EmulatorAPI, redis_url: str | None) -> dict[str, Any]:
    """Scenario 1: ``plan.alerts`` distinct alerts through the fault mix."""
    key = routing_key(mode, "mix")
    api.faults(**fault_mix())
    first = api.last_request()
    with manager_for(mode, key, api.url, redis_url) as manager, Deliveries(manager) as watch:
        keys: list[str] = []
        started = time.perf_counter()
        for n in range(plan.alerts):
            severity = SEVERITIES[n % len(SEVERITIES)]
            keys.append(
                manager.alert(
                    f"bench fault mix: alert {n} ({severity})",
                    severity,
                    alert_type="bench-fault-mix",
                    identifier=str(n),
                )
            )
        raised = time.perf_counter() - started
        complete = watch.wait(lambda: watch.delivered(keys) or bool(watch.lost))
        flushed = manager.flush(60.0)
        stats = asdict(manager.stats())
    api.faults()
    requests = api.requests_since(first)
    attempts = len(requests)
    times = {k: watch.sent[k][0] - started for k in keys if k in watch.sent}
    total = max(times.values()) if complete and times else float("nan")
    lower_bound = attempts * 60.0 / DEFAULT_PER_MINUTE
    # The budget is a sliding window that starts full: the first 120 attempts may go at
    # once, each further 120 a minute later. No run can be faster than this.
    window_bound = 60.0 * ((attempts - 1) // DEFAULT_PER_MINUTE)
    by_severity = {
        severity: round(max(times[k] for k in keys[i :: len(SEVERITIES)] if k in times), 2)
        for i, severity in enumerate(SEVERITIES)
        if any(k in times for k in keys[i :: len(SEVERITIES)])
    }
    return {
        "routing_key": key,
        "alerts": plan.alerts,
        "complete": complete,
        "flushed": flushed,
        "total_seconds": total,
        "raise_seconds": raised,
        "attempts": attempts,
        "budget_lower_bound_seconds": lower_bound,
        "ratio": total / lower_bound if lower_bound else float("nan"),
        "sliding_window_bound_seconds": window_bound,
        "answers": answers(requests),
        "throttled_429": sum(1 for r in requests if r["status"] == 429),
        "last_delivery_by_severity_seconds": by_severity,
        "median_delivery_seconds": statistics.median(times.values()) if times else float("nan"),
        "library": stats,
        "delivery": exactly_once(api, key, keys, watch),
    }


def run_critical(mode: str, plan: Plan, api: EmulatorAPI, redis_url: str | None) -> dict[str, Any]:
    """Scenario 2: a critical raised as an outage ends, behind ``plan.failing`` warnings."""
    key = routing_key(mode, "crit")
    api.faults(outage=True)
    first = api.last_request()
    with manager_for(mode, key, api.url, redis_url) as manager, Deliveries(manager) as watch:
        warnings = [
            manager.alert(
                f"bench outage: warning {n}",
                "warning",
                alert_type="bench-outage-warning",
                identifier=str(n),
            )
            for n in range(plan.failing)
        ]
        outage_started = time.perf_counter()
        # Every warning has failed at least once, and the outage has lasted its time.
        all_failed = watch.wait(lambda: all(watch.retried[k] for k in warnings), 120.0)
        remaining = plan.outage_seconds - (time.perf_counter() - outage_started)
        if remaining > 0:
            time.sleep(remaining)  # the outage's length, not a measurement
        api.faults()  # the outage is over once this returns
        outage_ended = time.perf_counter()
        critical = manager.alert(
            "bench outage: critical raised as the outage ends",
            "critical",
            alert_type="bench-outage-critical",
        )
        raised_after = time.perf_counter() - outage_ended
        delivered = watch.wait(lambda: critical in watch.sent or bool(watch.lost))
        critical_seconds = (
            watch.sent[critical][0] - outage_ended if critical in watch.sent else float("nan")
        )
        complete = watch.wait(lambda: watch.delivered([*warnings, critical]) or bool(watch.lost))
        warnings_done = max((watch.sent[k][0] for k in warnings if k in watch.sent), default=0.0)
        flushed = manager.flush(60.0)
        stats = asdict(manager.stats())
    requests = api.requests_since(first)
    during = [r for r in requests if r["fault"] == "outage"]
    after = [r for r in requests if r["fault"] != "outage"]
    sent_before_critical = sum(
        1
        for k in warnings
        if k in watch.sent and watch.sent[k][0] < outage_ended + critical_seconds
    )
    return {
        "routing_key": key,
        "failing": plan.failing,
        "every_warning_failed_first": all_failed,
        "outage_seconds": outage_ended - outage_started,
        "attempts_during_outage": len(during),
        "answers_during_outage": answers(during),
        "critical_seconds": critical_seconds,
        "critical_delivered": delivered and critical in watch.sent,
        "critical_raised_after_seconds": raised_after,
        "warnings_delivered_before_critical": sent_before_critical,
        "warnings_done_after_outage_seconds": warnings_done - outage_ended
        if complete
        else float("nan"),
        "attempts_after_outage": len(after),
        "answers_after_outage": answers(after),
        "complete": complete,
        "flushed": flushed,
        "library": stats,
        "delivery": exactly_once(api, key, [*warnings, critical], watch),
    }


# -- Redis -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str | None]:
    """A ``redis-server`` on a free loopback port, nothing saved; ``None`` without one."""
    binary = REDIS_BINARY if Path(REDIS_BINARY).exists() else shutil.which("redis-server")
    if binary is None:
        yield None
        return
    import redis  # the redis extra; installed wherever a server is to be used

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-faults-redis-") as scratch:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", scratch],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 20.0
            while True:
                try:
                    redis.Redis.from_url(url, socket_timeout=1.0).ping()
                    break
                except redis.RedisError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the throwaway redis-server did not start") from None
                    time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(10)


# -- judging and reporting -----------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    mode: str
    figure: str
    value: str
    target: str
    met: bool
    timing: bool = field(default=True)


def checks_for(mode: str, mix: dict[str, Any], crit: dict[str, Any]) -> list[Check]:
    def once(result: dict[str, Any], what: str) -> Check:
        delivery = result["delivery"]
        value = (
            f"{delivery['incidents']} incidents, {len(delivery['missing'])} missing, "
            f"{len(delivery['more_than_one_incident'])} doubled, "
            f"{delivery['failed_or_dropped']} failed/dropped"
        )
        return Check(mode, f"{what}: delivered exactly once", value, "all", delivery["ok"], False)

    return [
        once(mix, "fault mix"),
        Check(
            mode,
            "fault mix: time ÷ budget's lower bound",
            f"{mix['total_seconds']:.1f} s ÷ {mix['budget_lower_bound_seconds']:.1f} s "
            f"({mix['attempts']} attempts) = x{mix['ratio']:.2f}",
            f"≤ x{TARGET_RATIO:g}",
            mix["ratio"] <= TARGET_RATIO,
        ),
        once(crit, "outage"),
        Check(
            mode,
            "outage: critical accepted after the outage's end",
            f"{crit['critical_seconds']:.3f} s",
            f"≤ {TARGET_CRITICAL_SECONDS:g} s",
            crit["critical_seconds"] <= TARGET_CRITICAL_SECONDS,
        ),
    ]


def table(checks: Sequence[Check]) -> str:
    lines = ["| mode | figure | value | target | met |", "| --- | --- | ---: | --- | :---: |"]
    lines += [
        f"| {c.mode} | {c.figure} | {c.value} | {c.target} | {'yes' if c.met else '**no**'} |"
        for c in checks
    ]
    return "\n".join(lines) + "\n"


def details(mode: str, mix: dict[str, Any], crit: dict[str, Any]) -> str:
    return (
        f"{mode}, fault mix: answers {mix['answers']}; the sliding window alone needs "
        f"{mix['sliding_window_bound_seconds']:.0f} s; last delivery by severity "
        f"{mix['last_delivery_by_severity_seconds']} s; median delivery "
        f"{mix['median_delivery_seconds']:.1f} s; library {mix['library']}\n"
        f"{mode}, outage: {crit['attempts_during_outage']} attempts in "
        f"{crit['outage_seconds']:.1f} s of outage {crit['answers_during_outage']}; after it "
        f"{crit['attempts_after_outage']} attempts {crit['answers_after_outage']}; "
        f"{crit['warnings_delivered_before_critical']} warnings accepted before the critical, "
        f"all done {crit['warnings_done_after_outage_seconds']:.1f} s after the outage; "
        f"library {crit['library']}\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short smoke run: {QUICK.alerts} alerts, {QUICK.failing} failing warnings",
    )
    parser.add_argument("--alerts", type=int, help="alerts in the fault mix (100)")
    parser.add_argument("--failing", type=int, help="warnings failing in the outage (50)")
    parser.add_argument("--outage-seconds", type=float, help="the outage's length (3)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"fault seed ({SEED})")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}"
    )
    parser.add_argument("--redis-url", help="Redis for the redis mode (default: a throwaway)")
    parser.add_argument(
        "--no-targets",
        action="store_true",
        help="exit 1 only when an alert is lost or duplicated, not for a missed timing target",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Plan()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        parser.error(f"unknown mode(s) {', '.join(unknown)}: choose from {', '.join(MODES)}")
    try:
        plan = Plan(
            alerts=args.alerts if args.alerts is not None else base.alerts,
            failing=args.failing if args.failing is not None else base.failing,
            outage_seconds=args.outage_seconds
            if args.outage_seconds is not None
            else base.outage_seconds,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    print(
        f"faults: {plan.alerts} alerts through {fault_mix()} (seed {plan.seed}); "
        f"{plan.failing} warnings in a {plan.outage_seconds:g} s outage; modes {modes}; "
        f"load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    checks: list[Check] = []
    results: dict[str, Any] = {}
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(emulator_process("--seed", str(plan.seed)))
        api = EmulatorAPI(url)
        redis_url = args.redis_url
        if "redis" in modes and redis_url is None:
            redis_url = stack.enter_context(throwaway_redis())
        for mode in modes:
            if mode == "redis" and redis_url is None:
                notes.append("redis mode skipped: no --redis-url and no redis-server installed")
                continue
            print(f"{mode}: fault mix...", file=sys.stderr)
            mix = run_fault_mix(mode, plan, api, redis_url)
            print(f"{mode}: critical behind failing events...", file=sys.stderr)
            crit = run_critical(mode, plan, api, redis_url)
            results[mode] = {"fault_mix": mix, "critical": crit}
            checks += checks_for(mode, mix, crit)
            print(details(mode, mix, crit), file=sys.stderr)
    print(table(checks))
    for note in notes:
        print(note)
    if args.json:
        document = {
            "plan": asdict(plan),
            "fault_settings": fault_mix(),
            "budget_per_minute": DEFAULT_PER_MINUTE,
            "targets": {"ratio": TARGET_RATIO, "critical_seconds": TARGET_CRITICAL_SECONDS},
            "checks": [asdict(c) for c in checks],
            "modes": results,
            "notes": notes,
            "load_average_1min": os.getloadavg()[0],
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    judged = [c for c in checks if not (args.no_targets and c.timing)]
    return 0 if all(c.met for c in judged) else 1


if __name__ == "__main__":
    sys.exit(main())
