"""Alert storm: 10,000 errors a second across 10 fingerprints, through a real Starlette app.

    .venv/bin/python benchmarks/bench_storm.py                            # 10 s at 10,000/s
    .venv/bin/python benchmarks/bench_storm.py --duration 2 --rate 2000   # a short look
    .venv/bin/python benchmarks/bench_storm.py --json storm.json
    .venv/bin/python benchmarks/bench_storm.py --processes 4            # a fleet over Redis
    .venv/bin/python benchmarks/bench_storm.py --processes 4 --redis-url redis://host:6379/0

One process serves a Starlette app with :class:`pd_integrations.starlette.PagerDutyMiddleware`
and an :class:`~pd_integrations.AlertManager` whose events go to the bundled emulator,
run in its own process with PagerDuty's real budget (120 events per minute per key).
The app is called directly on one asyncio loop, as ``bench_overhead.py`` does. Healthy
requests run at a steady pace throughout three kinds of slices:

- calm: healthy requests only;
- control: the same, interleaved with as many error requests raising exception types
  the middleware is told to ignore (``ignore_exceptions``), so the loop, the
  framework's exception path and the garbage collector are as busy as in the storm,
  and only what the library does with an error it alerts on is missing;
- the storm: error requests to the app itself, raising one of 10 exception types in
  turn, paced to ``--rate`` per second.

The storm's seconds, and as many of calm and of control, are cut into 20 rounds of one
slice of each kind, in an order rotated each round: the alerts the storm opened stay
open from one storm slice to the next (the library sees one storm), and a slow spell of
this shared machine hits the three kinds alike. One run on a quiet machine, all in one
phase each, gave storm medians 20% apart from one run to the next.

Reported, with the targets of issue 6 (the exit status is 1 when one is missed):

- what reached the emulator: one alert per fingerprint (at most 10 triggers), every
  event within the budget, and no 429 at all;
- resident memory growth over the storm (VmRSS), under 20 MB;
- the latency of a healthy request during the storm against calm and against control
  (median: the median over rounds of the storm slice's median ÷ the reference
  slice's; 99th percentile: of all slices pooled), within 10% of both. A healthy
  request's latency is its service time, from the call into the app until it returns;
  the time it would wait on a server behind the storm's own error requests is the
  framework's cost of those errors, not ours. Calm alone flatters the storm (between
  its ticks the loop sleeps, so calm requests often start on cold caches); control
  removes that bias.

With ``--processes N`` it runs the fleet mode instead: N worker processes, each with its
own app and manager, share one Redis (``--redis-url``, else a throwaway
``redis-server`` on a free loopback port) and one emulator. Each first raises
``--fleet-errors`` errors of the same 10 fingerprints with Redis healthy, then, while
Redis is paused (``CLIENT PAUSE``), as many brand-new ones of 10 other fingerprints,
each error request interleaved with a request raising an ignored exception (the
control). Reported: triggers per problem in each phase, 429s, and the service time of an
error request against the control's, with Redis healthy and paused. Targets: one trigger
per problem with Redis healthy; at most one per worker and problem while paused (the
documented cost of a Redis that cannot answer); no 429; no error request as slow as the
Redis socket timeout (200 ms), which any request that waited for Redis would be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import statistics
import sys
import time
import urllib.request
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apps import ASGIDriver, Message, _asgi_scope, emulator_process

from pd_integrations import AlertManager
from pd_integrations.delivery.ratelimit import DEFAULT_PER_MINUTE

ROUTING_KEY = "benchstormroutingkey000000000001"
FINGERPRINTS = 10
TARGET_RSS_GROWTH_MB = 20.0
TARGET_LATENCY_RATIO = 1.10
# The storm counts as run when the loop kept up with at least this share of the rate.
MIN_RATE_SHARE = 0.95
FLUSH_TIMEOUT = 30.0
WARMUP_SECONDS = 0.5


@dataclass(frozen=True)
class StormPlan:
    """How hard and how long. The storm's ``duration`` and ``calm`` seconds of calm and
    as many of control are cut into ``rounds`` slices each, run in turn."""

    duration: float = 10.0
    rate: int = 10_000
    healthy_rate: int = 1_000
    calm: float = 5.0
    tick: float = 0.005
    rounds: int = 20

    def __post_init__(self) -> None:
        if not self.duration > 0 or not self.calm > 0 or not self.tick > 0:
            raise ValueError("duration, calm and tick must be positive")
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        if self.rate < 1 or self.healthy_rate < 1:
            raise ValueError("the error and healthy rates must be at least 1 per second")


@dataclass
class Phase:
    """What one phase did; latencies are service times in ns.

    The latency arrays are allocated in full before the run, so that recording them does
    not count as memory the storm made the process grow by.
    """

    name: str
    planned_seconds: float
    error_rate_planned: int
    healthy_rate_planned: int
    elapsed: float = 0.0
    errors: int = 0
    error_500s: int = 0
    healthy_bad: int = 0
    healthy_ns: array[int] = field(init=False)
    error_ns: array[int] = field(init=False)

    def __post_init__(self) -> None:
        self.healthy_ns = array("q", bytes(8 * self.healthy_total))
        self.error_ns = array("q", bytes(8 * self.errors_total))

    @property
    def errors_total(self) -> int:
        return round(self.error_rate_planned * self.planned_seconds)

    @property
    def healthy_total(self) -> int:
        return round(self.healthy_rate_planned * self.planned_seconds)

    @property
    def error_rate(self) -> float:
        return self.errors / self.elapsed if self.elapsed else 0.0


@dataclass
class StormResult:
    plan: StormPlan
    phases: dict[str, Phase]
    """``calm``, ``control`` and ``storm``: every round's slice of that kind, pooled."""
    rounds: list[dict[str, Phase]]
    rss_before: int
    rss_after: int
    flushed: bool
    library: dict[str, int]
    occurrences: int
    alerts_open_in_manager: int
    emulator: dict[str, Any]

    @property
    def storm(self) -> Phase:
        return self.phases["storm"]

    @property
    def calm_ns(self) -> list[int]:
        return list(self.phases["calm"].healthy_ns)

    @property
    def control_ns(self) -> list[int]:
        return list(self.phases["control"].healthy_ns)

    def paired_ratio(self, reference: str) -> float:
        """The median, over rounds, of the storm's healthy median ÷ the reference's."""
        return statistics.median(
            statistics.median(round_["storm"].healthy_ns)
            / statistics.median(round_[reference].healthy_ns)
            for round_ in self.rounds
        )


# -- the app ------------------------------------------------------------------------------


def _error_class(n: int, prefix: str) -> type[RuntimeError]:
    class StormError(RuntimeError):
        pass

    # A distinct type per fingerprint: the fingerprint is the type plus the app frames.
    StormError.__name__ = StormError.__qualname__ = f"{prefix}{n}"
    return StormError


ERRORS = tuple(_error_class(n, "StormError") for n in range(FINGERPRINTS))
# Raised in the control phases; the middleware ignores them.
IGNORED = tuple(_error_class(n, "IgnoredError") for n in range(FINGERPRINTS))
# Raised only while the fleet mode has Redis paused: problems nobody has seen yet.
FRESH = tuple(_error_class(n, "FreshError") for n in range(FINGERPRINTS))
STORM_PATH, CONTROL_PATH, FRESH_PATH = "/fail", "/ignored", "/fresh"


def build_app(manager: AlertManager) -> Any:
    """``GET /``, ``GET /fail/{n}`` raising ``StormError{n}``, ``GET /ignored/{n}`` raising
    ``IgnoredError{n}``, with the middleware alerting on all but the ``IgnoredError`` types."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from pd_integrations.monitor import RequestMonitor
    from pd_integrations.starlette import PagerDutyMiddleware

    async def hello(request: Request) -> Response:
        return PlainTextResponse("Hello, world!")

    async def fail(request: Request) -> Response:
        raise ERRORS[request.path_params["n"]](f"storm error {request.path_params['n']}")

    async def ignored(request: Request) -> Response:
        raise IGNORED[request.path_params["n"]](f"ignored error {request.path_params['n']}")

    async def fresh(request: Request) -> Response:
        raise FRESH[request.path_params["n"]](f"fresh error {request.path_params['n']}")

    app = Starlette(
        routes=[
            Route("/", hello),
            Route(STORM_PATH + "/{n:int}", fail),
            Route(CONTROL_PATH + "/{n:int}", ignored),
            Route(FRESH_PATH + "/{n:int}", fresh),
        ]
    )
    monitor = RequestMonitor(manager, ignore_exceptions=IGNORED)
    app.add_middleware(PagerDutyMiddleware, monitor=monitor)
    return app


# -- the phases ---------------------------------------------------------------------------


async def _run_phase(app: Any, phase: Phase, plan: StormPlan, error_path: str = STORM_PATH) -> None:
    """Healthy requests and error requests (to ``error_path``) at the phase's rates,
    spread evenly over ticks of ``plan.tick`` seconds; a loop that falls behind catches
    up without sleeping (the achieved rate is reported)."""
    healthy_scope = _asgi_scope("/")
    error_scopes = [_asgi_scope(f"{error_path}/{n}") for n in range(FINGERPRINTS)]
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    ticks = max(1, round(phase.planned_seconds / plan.tick))
    errors_total, healthy_total = phase.errors_total, phase.healthy_total
    healthy_ns, error_ns = phase.healthy_ns, phase.error_ns
    ns = time.perf_counter_ns
    started = time.perf_counter()
    done_errors = done_healthy = 0
    for tick in range(1, ticks + 1):
        error_target = errors_total * tick // ticks
        healthy_target = healthy_total * tick // ticks
        while done_errors < error_target or done_healthy < healthy_target:
            # Interleave in proportion: a healthy request whenever its share is behind.
            healthy_next = done_healthy < healthy_target and (
                done_errors >= error_target
                or done_healthy * error_target <= done_errors * healthy_target
            )
            status = 0
            if healthy_next:
                t0 = ns()
                await app(healthy_scope.copy(), receive, send)
                healthy_ns[done_healthy] = ns() - t0
                done_healthy += 1
                if status != 200:
                    phase.healthy_bad += 1
            else:
                t0 = ns()
                with contextlib.suppress(*ERRORS, *IGNORED):  # re-raised after the 500
                    await app(error_scopes[done_errors % FINGERPRINTS].copy(), receive, send)
                error_ns[done_errors] = ns() - t0
                done_errors += 1
                phase.error_500s += status == 500
        delay = started + tick * plan.tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    phase.elapsed = time.perf_counter() - started
    phase.errors = done_errors


def rss_bytes() -> int:
    """Resident set size now (VmRSS); the peak so far where /proc is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def emulator_figures(url: str, key: str) -> dict[str, Any]:
    """What the emulator saw from ``key``: events by action, alerts, and the 429s."""
    events = [e for e in _get(f"{url}/api/events") if e["body"].get("routing_key") == key]
    requests = _get(f"{url}/api/requests")
    throttled = sum(
        1
        for r in requests
        if r["status"] == 429
        and isinstance(r["body"], dict)
        and r["body"].get("routing_key") == key
    )
    alerts = _get(f"{url}/api/alerts?routing_key={key}")
    actions: dict[str, int] = {}
    for event in events:
        actions[event["type"]] = actions.get(event["type"], 0) + 1
    return {
        "events_accepted": len(events),
        "by_action": actions,
        "alerts_opened": len(alerts),
        "distinct_dedup_keys": len({a["dedup_key"] for a in alerts}),
        "trigger_count_total": sum(a["trigger_count"] for a in alerts),
        "answered_429": throttled,
        "requests": len([r for r in requests if isinstance(r["body"], dict)]),
    }


def pooled(name: str, slices: Sequence[Phase]) -> Phase:
    """One phase made of ``slices``: their counts summed, their latencies in one array."""
    whole = Phase(name, 0.0, 0, 0)
    for part in slices:
        whole.planned_seconds += part.planned_seconds
        whole.elapsed += part.elapsed
        whole.errors += part.errors
        whole.error_500s += part.error_500s
        whole.healthy_bad += part.healthy_bad
        whole.healthy_ns.extend(part.healthy_ns)
        whole.error_ns.extend(part.error_ns[: part.errors])
    return whole


def run_storm(plan: StormPlan, emulator_url: str, routing_key: str = ROUTING_KEY) -> StormResult:
    """Rounds of storm, calm and control slices in turn; then what the emulator received.

    The storm's alerts stay open from one storm slice to the next, so the library sees
    one storm; interleaving the slices means a slow spell of a shared machine hits the
    three kinds alike, and each round compares them side by side.
    """
    manager = AlertManager(routing_key, source="bench-storm", base_url=emulator_url)
    driver = ASGIDriver(build_app(manager))
    slices = {
        "storm": (plan.duration / plan.rounds, plan.rate, STORM_PATH),
        "calm": (plan.calm / plan.rounds, 0, STORM_PATH),
        "control": (plan.calm / plan.rounds, plan.rate, CONTROL_PATH),
    }
    kinds = list(slices)
    rounds: list[dict[str, Phase]] = []
    try:
        reply = driver.check("/")
        if reply.status != 200 or reply.error:
            raise RuntimeError(f"GET / answered {reply}")
        app, run = driver.app, driver.loop.run_until_complete
        run(_run_phase(app, Phase("warm-up", WARMUP_SECONDS, 0, plan.healthy_rate), plan))
        gc.collect()
        rss_before = rss_bytes()
        for number in range(plan.rounds):
            round_: dict[str, Phase] = {}
            for kind in kinds[number % 3 :] + kinds[: number % 3]:
                seconds, error_rate, path = slices[kind]
                phase = Phase(f"{kind}-{number}", seconds, error_rate, plan.healthy_rate)
                run(_run_phase(app, phase, plan, path))
                round_[kind] = phase
            rounds.append(round_)
        rss_after = rss_bytes()
        flushed = manager.flush(FLUSH_TIMEOUT)
        stats = manager.stats()
        active = manager.active_alerts()
    finally:
        driver.close()
        manager.close(FLUSH_TIMEOUT)
    phases = {kind: pooled(kind, [round_[kind] for round_ in rounds]) for kind in kinds}
    return StormResult(
        plan=plan,
        phases=phases,
        rounds=rounds,
        rss_before=rss_before,
        rss_after=rss_after,
        flushed=flushed,
        library={
            "sent": stats.sent,
            "coalesced": stats.coalesced,
            "dropped": stats.dropped,
            "failed": stats.failed,
            "retried": stats.retried,
        },
        occurrences=sum(alert.occurrences for alert in active),
        alerts_open_in_manager=len(active),
        emulator=emulator_figures(emulator_url, routing_key),
    )


# -- judging and reporting -----------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    figure: str
    value: str
    target: str
    met: bool


def percentile(values: Sequence[int], share: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)])


def budget_allowance(seconds: float) -> int:
    """Events the budget admits over a run this long: 120 per started minute."""
    return DEFAULT_PER_MINUTE * max(1, math.ceil(seconds / 60.0))


def counting_checks(result: StormResult) -> list[Check]:
    """The invariants that do not depend on timing (the smoke test checks these)."""
    storm = result.storm
    emulator = result.emulator
    run_seconds = sum(phase.elapsed for phase in result.phases.values())
    allowance = budget_allowance(run_seconds)
    triggers = emulator["by_action"].get("trigger", 0)
    return [
        Check(
            "error requests answered 500",
            f"{storm.error_500s:,} of {storm.errors:,}",
            "all",
            storm.error_500s == storm.errors > 0,
        ),
        Check(
            "alerts opened in the emulator",
            str(emulator["alerts_opened"]),
            f"{FINGERPRINTS}, one per fingerprint",
            emulator["alerts_opened"] == emulator["distinct_dedup_keys"] == FINGERPRINTS,
        ),
        Check(
            "events accepted by the emulator",
            f"{emulator['events_accepted']} ({triggers} triggers, "
            f"{triggers - emulator['alerts_opened']} of them updates)",
            f"within the budget: ≤ {allowance}",
            emulator["events_accepted"] <= allowance,
        ),
        Check("answered 429", str(emulator["answered_429"]), "0", emulator["answered_429"] == 0),
        Check(
            "occurrences counted by the manager",
            f"{result.occurrences:,}",
            "= error requests",
            result.occurrences == storm.errors and result.alerts_open_in_manager == FINGERPRINTS,
        ),
        Check(
            "library: dropped / failed, queue flushed",
            f"{result.library['dropped']} / {result.library['failed']}, "
            f"{'yes' if result.flushed else 'no'}",
            "0 / 0, yes",
            result.library["dropped"] == result.library["failed"] == 0 and result.flushed,
        ),
        Check(
            "healthy requests not answered 200",
            str(sum(phase.healthy_bad for phase in result.phases.values())),
            "0",
            all(phase.healthy_bad == 0 for phase in result.phases.values()),
        ),
    ]


def timing_checks(result: StormResult) -> list[Check]:
    """Rate achieved, memory and healthy latency: meaningful on a full run only."""
    storm = result.storm
    growth_mb = (result.rss_after - result.rss_before) / 2**20
    stormy = storm.healthy_ns
    checks = [
        Check(
            "storm rate achieved",
            f"{storm.errors:,} errors in {storm.elapsed:.2f} s ({storm.error_rate:,.0f}/s)",
            f"≥ {MIN_RATE_SHARE:.0%} of {result.plan.rate:,}/s",
            storm.error_rate >= MIN_RATE_SHARE * result.plan.rate,
        ),
        Check(
            "resident memory growth over the storm",
            f"{growth_mb:+.1f} MB",
            f"< {TARGET_RSS_GROWTH_MB:.0f} MB",
            growth_mb < TARGET_RSS_GROWTH_MB,
        ),
    ]
    for reference, before in (("calm", result.calm_ns), ("control", result.control_ns)):
        before_us, storm_us = statistics.median(before) / 1000, statistics.median(stormy) / 1000
        ratio = result.paired_ratio(reference)
        checks.append(
            Check(
                f"healthy latency, median: {reference} → storm",
                f"{before_us:.1f} → {storm_us:.1f} µs (x{ratio:.3f} paired by round)",
                f"≤ x{TARGET_LATENCY_RATIO:.2f}",
                ratio <= TARGET_LATENCY_RATIO,
            )
        )
        before_us = percentile(before, 0.99) / 1000
        storm_us = percentile(stormy, 0.99) / 1000
        ratio = storm_us / before_us
        checks.append(
            Check(
                f"healthy latency, p99: {reference} → storm",
                f"{before_us:.1f} → {storm_us:.1f} µs (x{ratio:.3f})",
                f"≤ x{TARGET_LATENCY_RATIO:.2f}",
                ratio <= TARGET_LATENCY_RATIO,
            )
        )
    return checks


def table(checks: Sequence[Check]) -> str:
    lines = ["| figure | value | target | met |", "| --- | ---: | --- | :---: |"]
    lines += [
        f"| {c.figure} | {c.value} | {c.target} | {'yes' if c.met else '**no**'} |" for c in checks
    ]
    return "\n".join(lines) + "\n"


def details(result: StormResult) -> str:
    storm = result.storm
    lines = [
        f"healthy requests: {len(result.calm_ns):,} calm, {len(result.control_ns):,} "
        f"control, {len(storm.healthy_ns):,} in the storm",
        f"error request service time in the storm: median "
        f"{statistics.median(storm.error_ns) / 1000:.1f} µs, p99 "
        f"{percentile(storm.error_ns, 0.99) / 1000:.1f} µs",
        f"library: {result.library}",
        f"emulator: {result.emulator}",
        f"RSS {result.rss_before / 2**20:.1f} MB before the storm, "
        f"{result.rss_after / 2**20:.1f} MB after",
    ]
    return "\n".join(lines) + "\n"


# -- the fleet mode: N processes over one Redis --------------------------------------------

REDIS_SOCKET_TIMEOUT_MS = 200.0
"""The state's default Redis socket timeout: a request that waited for Redis takes this."""


@dataclass(frozen=True)
class FleetPlan:
    processes: int = 4
    errors: int = 2_000
    """Error requests per process with Redis healthy (and as many control requests)."""
    paused_errors: int = 200
    """Error requests per process while Redis is paused (and as many control requests)."""
    pause_ms: int = 1_500

    def __post_init__(self) -> None:
        if self.processes < 1 or self.errors < 1 or self.paused_errors < 1:
            raise ValueError("processes, errors and paused errors must be at least 1")
        if self.pause_ms < 1:
            raise ValueError("the pause must be at least 1 ms")


@dataclass
class FleetResult:
    plan: FleetPlan
    workers: list[dict[str, Any]]
    """Per process: counts and the latencies (ns) of each phase's requests."""
    triggers: dict[str, dict[str, int]]
    """``healthy`` and ``paused``: triggers per dedup key of that phase's problems."""
    emulator: dict[str, Any]

    def pooled(self, phase: str, kind: str) -> list[int]:
        return [ns for worker in self.workers for ns in worker[phase][kind]]


async def _timed_requests(app: Any, error_path: str, count: int) -> dict[str, list[int]]:
    """``count`` error requests (to ``error_path``) interleaved with as many controls."""
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    errors: list[int] = []
    controls: list[int] = []
    bad = 0
    scopes = {
        path: [_asgi_scope(f"{path}/{n}") for n in range(FINGERPRINTS)]
        for path in (error_path, CONTROL_PATH)
    }
    for i in range(count):
        for path, latencies in ((error_path, errors), (CONTROL_PATH, controls)):
            status = 0
            t0 = time.perf_counter_ns()
            with contextlib.suppress(*ERRORS, *IGNORED, *FRESH):  # re-raised after the 500
                await app(scopes[path][i % FINGERPRINTS].copy(), receive, send)
            latencies.append(time.perf_counter_ns() - t0)
            bad += status != 500
    return {"errors": errors, "controls": controls, "not_500": [bad]}


def _fleet_worker(
    plan: FleetPlan,
    emulator_url: str,
    state_url: str,
    routing_key: str,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """One worker process: its own app and manager, the shared Redis and emulator."""
    manager = AlertManager(
        routing_key, source=f"bench-fleet-{os.getpid()}", base_url=emulator_url, state_url=state_url
    )
    app = build_app(manager)
    manager.get_alert("warm-up")  # connected to Redis before anything is timed

    async def both_phases() -> dict[str, Any]:
        await _timed_requests(app, CONTROL_PATH, 50)  # warm the app's paths, alerts nothing
        go.wait()
        healthy = await _timed_requests(app, STORM_PATH, plan.errors)
        # The healthy phase's verdicts reach Redis before the pause, not during it.
        manager.flush(FLUSH_TIMEOUT)
        ready.wait()  # the parent pauses Redis between these two barriers
        go.wait()
        started = time.perf_counter()
        paused = await _timed_requests(app, FRESH_PATH, plan.paused_errors)
        paused["elapsed_ms"] = [round((time.perf_counter() - started) * 1000)]
        return {"healthy": healthy, "paused": paused}

    figures = asyncio.run(both_phases())
    figures["flushed"] = manager.flush(FLUSH_TIMEOUT)
    stats = manager.stats()
    figures["dropped"], figures["failed"] = stats.dropped, stats.failed
    manager.close(FLUSH_TIMEOUT)
    results.put(figures)


@contextlib.contextmanager
def throwaway_redis() -> Any:
    """A ``redis-server`` on a free loopback port, without persistence; yields its URL."""
    import shutil
    import socket
    import subprocess
    import tempfile

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        args += ["--appendonly", "no", "--dir", workdir, "--loglevel", "warning"]
        server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(10)


def _triggers_by_key(emulator_url: str, routing_key: str) -> dict[str, dict[str, int]]:
    """Triggers per dedup key, split by the phase whose problem they page for."""
    found: dict[str, dict[str, int]] = {"healthy": {}, "paused": {}}
    for event in _get(f"{emulator_url}/api/events"):
        body = event["body"]
        if body.get("routing_key") != routing_key or event["type"] != "trigger":
            continue
        summary = str(body.get("payload", {}).get("summary", ""))
        phase = found["paused" if "FreshError" in summary else "healthy"]
        phase[event["dedup_key"]] = phase.get(event["dedup_key"], 0) + 1
    return found


def run_fleet(
    plan: FleetPlan, emulator_url: str, redis_url: str, routing_key: str = ROUTING_KEY
) -> FleetResult:
    """Start the workers, pause Redis between their two phases, gather their figures."""
    import multiprocessing
    import uuid

    import redis

    prefix = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in redis_url else "?"
    state_url = f"{redis_url}{separator}prefix={prefix}"
    context = multiprocessing.get_context("spawn")
    ready, go = context.Barrier(plan.processes + 1), context.Barrier(plan.processes + 1)
    results = context.Queue()
    workers = [
        context.Process(
            target=_fleet_worker,
            args=(plan, emulator_url, state_url, routing_key, ready, go, results),
            daemon=True,
        )
        for _ in range(plan.processes)
    ]
    for worker in workers:
        worker.start()
    client = redis.Redis.from_url(redis_url)
    try:
        go.wait(timeout=120)  # every worker started and warmed up
        ready.wait(timeout=600)  # every worker done with the healthy phase
        client.execute_command("CLIENT", "PAUSE", plan.pause_ms, "ALL")  # type: ignore[no-untyped-call]
        go.wait(timeout=60)
        figures = [results.get(timeout=600) for _ in workers]
    finally:
        with contextlib.suppress(Exception):
            client.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        for worker in workers:
            worker.join(60)
            if worker.is_alive():
                worker.kill()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
    return FleetResult(
        plan,
        figures,
        _triggers_by_key(emulator_url, routing_key),
        emulator_figures(emulator_url, routing_key),
    )


def fleet_counting_checks(result: FleetResult) -> list[Check]:
    """What reached PagerDuty: independent of timing (the smoke test checks these)."""
    plan = result.plan
    healthy, paused = result.triggers["healthy"], result.triggers["paused"]
    not_500 = sum(w[p]["not_500"][0] for w in result.workers for p in ("healthy", "paused"))
    lost = sum(w["dropped"] + w["failed"] for w in result.workers)
    return [
        Check(
            "error requests not answered 500",
            str(not_500),
            "0",
            not_500 == 0,
        ),
        Check(
            "triggers per problem, Redis healthy",
            f"{sum(healthy.values())} for {len(healthy)} problems",
            f"1 each, {FINGERPRINTS} problems",
            len(healthy) == FINGERPRINTS and set(healthy.values()) == {1},
        ),
        Check(
            "triggers per problem, Redis paused",
            f"{sum(paused.values())} for {len(paused)} problems "
            f"(max {max(paused.values(), default=0)})",
            f"1 to {plan.processes} each (one per worker at most)",
            len(paused) == FINGERPRINTS and all(1 <= n <= plan.processes for n in paused.values()),
        ),
        Check(
            "answered 429",
            str(result.emulator["answered_429"]),
            "0",
            result.emulator["answered_429"] == 0,
        ),
        Check(
            "library: dropped + failed, queues flushed",
            f"{lost}, {'yes' if all(w['flushed'] for w in result.workers) else 'no'}",
            "0, yes",
            lost == 0 and all(w["flushed"] for w in result.workers),
        ),
    ]


def fleet_timing_checks(result: FleetResult) -> list[Check]:
    paused = result.pooled("paused", "errors")
    slowest_ms = max(paused) / 1e6
    elapsed = max(w["paused"]["elapsed_ms"][0] for w in result.workers)
    return [
        Check(
            "slowest error request, Redis paused",
            f"{slowest_ms:.1f} ms",
            f"< {REDIS_SOCKET_TIMEOUT_MS:g} ms (no wait for Redis)",
            slowest_ms < REDIS_SOCKET_TIMEOUT_MS,
        ),
        Check(
            "paused phase inside the pause",
            f"{elapsed} ms",
            f"< {result.plan.pause_ms} ms",
            elapsed < result.plan.pause_ms,
        ),
    ]


def fleet_details(result: FleetResult) -> str:
    lines = ["| phase | error request median / p99 | control median / p99 | cost per error |"]
    lines.append("|---|---|---|---|")
    for phase in ("healthy", "paused"):
        errors, controls = result.pooled(phase, "errors"), result.pooled(phase, "controls")
        cost = (statistics.median(errors) - statistics.median(controls)) / 1000
        lines.append(
            f"| Redis {phase} | {statistics.median(errors) / 1000:.0f} / "
            f"{percentile(errors, 0.99) / 1000:.0f} µs | "
            f"{statistics.median(controls) / 1000:.0f} / "
            f"{percentile(controls, 0.99) / 1000:.0f} µs | {cost:.0f} µs |"
        )
    return "\n".join(lines) + "\n"


def fleet_main(args: argparse.Namespace) -> int:
    plan = FleetPlan(
        processes=args.processes,
        errors=args.fleet_errors,
        paused_errors=args.paused_errors,
        pause_ms=args.pause_ms,
    )
    print(
        f"fleet: {plan.processes} processes over one Redis, {plan.errors:,} errors each with "
        f"Redis healthy, {plan.paused_errors:,} each with Redis paused {plan.pause_ms} ms; "
        f"load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    with emulator_process() as url, contextlib.ExitStack() as stack:
        redis_url = args.redis_url or stack.enter_context(throwaway_redis())
        result = run_fleet(plan, url, redis_url)
    checks = fleet_counting_checks(result) + fleet_timing_checks(result)
    print(table(checks))
    print(fleet_details(result))
    if args.json:
        document = {
            "plan": asdict(plan),
            "checks": [asdict(c) for c in checks],
            "triggers": result.triggers,
            "emulator": result.emulator,
            "load_average_1min": os.getloadavg()[0],
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0 if all(check.met for check in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="storm seconds (10)")
    parser.add_argument("--rate", type=int, default=10_000, help="errors per second (10000)")
    parser.add_argument(
        "--healthy-rate", type=int, default=1_000, help="healthy requests per second (1000)"
    )
    parser.add_argument(
        "--calm",
        type=float,
        help="seconds of calm, and as many of control, between the storm's slices (duration/2)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument(
        "--processes", type=int, help="the fleet mode: this many worker processes over one Redis"
    )
    parser.add_argument("--redis-url", help="the fleet's Redis (default: a throwaway redis-server)")
    parser.add_argument(
        "--fleet-errors", type=int, default=2_000, help="errors per process, Redis healthy (2000)"
    )
    parser.add_argument(
        "--paused-errors", type=int, default=200, help="errors per process, Redis paused (200)"
    )
    parser.add_argument("--pause-ms", type=int, default=1_500, help="the Redis pause (1500 ms)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.processes is not None:
        try:
            return fleet_main(args)
        except ValueError as error:
            build_parser().error(str(error))
    try:
        plan = StormPlan(
            duration=args.duration,
            rate=args.rate,
            healthy_rate=args.healthy_rate,
            calm=args.calm if args.calm is not None else args.duration / 2,
        )
    except ValueError as error:
        build_parser().error(str(error))
    print(
        f"storm: {plan.rate:,} errors/s across {FINGERPRINTS} fingerprints for "
        f"{plan.duration:g} s, {plan.healthy_rate:,} healthy requests/s throughout, "
        f"in {plan.rounds} rounds with {plan.calm:g} s calm and {plan.calm:g} s control; "
        f"load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    with emulator_process() as url:
        result = run_storm(plan, url)
    checks = counting_checks(result) + timing_checks(result)
    print(table(checks))
    print(details(result))
    if args.json:
        document = {
            "plan": asdict(plan),
            "checks": [asdict(c) for c in checks],
            "library": result.library,
            "emulator": result.emulator,
            "rss_before": result.rss_before,
            "rss_after": result.rss_after,
            "phases": {
                name: {
                    "elapsed": phase.elapsed,
                    "errors": phase.errors,
                    "healthy_median_us": statistics.median(phase.healthy_ns) / 1000,
                    "healthy_p99_us": percentile(phase.healthy_ns, 0.99) / 1000,
                }
                for name, phase in result.phases.items()
            },
            "load_average_1min": os.getloadavg()[0],
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0 if all(check.met for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
