"""``pd-integrations report`` over a large account: time and peak memory.

    .venv/bin/python benchmarks/bench_report.py [--incidents 10000] [--long-logs 300]

The bundled emulator runs in its own process on loopback (so its memory is not
counted), loaded through the Events API with ``--incidents`` incidents, each triggered,
notified, assigned, and resolved (every third one acknowledged first). The report then
reads every incident and its log entries through the REST API, as it reads PagerDuty.

Two figures: the wall time of the report, and the peak of Python allocations while it
runs (tracemalloc). A second, smaller account whose incidents each have a long log
(``--long-logs`` repeated triggers: several pages of log entries per incident) shows
that memory follows the number of incidents, not the number of log entries.

The emulator has no REST rate limit, so the report runs with pacing off here; against
PagerDuty, 960 requests a minute make one request per incident take at least
incidents / 960 minutes, which the last line prints.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from pd_integrations.insights import PacedTransport, build_report
from pd_integrations.rest import RestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apps import emulator_process

KEY = "benchmarkreportroutingkey0000001"


def load(url: str, incidents: int, triggers: int, prefix: str) -> None:
    """``incidents`` incidents, each with ``triggers`` triggers, resolved (a third acked)."""

    def one(i: int, http: httpx.Client) -> None:
        dedup = f"{prefix}-{i}"
        body: dict[str, Any] = {
            "routing_key": KEY,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {
                "summary": f"Slow requests on /route/{i % 40}",
                "source": "bench",
                "severity": "error",
                "custom_details": {"alert_type": "slow_request", "route": f"/route/{i % 40}"},
            },
        }
        for _ in range(triggers):
            http.post("/v2/enqueue", json=body).raise_for_status()
        if i % 3 == 0:
            ack = {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": dedup}
            http.post("/v2/enqueue", json=ack).raise_for_status()
        resolve = {"routing_key": KEY, "event_action": "resolve", "dedup_key": dedup}
        http.post("/v2/enqueue", json=resolve).raise_for_status()

    def batch(start: int) -> None:
        with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as http:
            for i in range(start, incidents, 4):
                one(i, http)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batch, range(4)))


def report(url: str) -> tuple[float, float, dict[str, Any], int]:
    """Seconds, peak MiB of Python allocations, the report, and the requests made."""
    now = datetime.now(UTC)
    transport = PacedTransport(httpx.HTTPTransport(), per_minute=10**9)
    tracemalloc.start()
    started = time.perf_counter()
    with RestClient("bench", base_url=f"{url}/rest", transport=transport) as client:
        result = build_report(
            client,
            since=now - timedelta(hours=2),
            until=now + timedelta(minutes=1),
            sla=timedelta(minutes=30),
        )
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / 2**20, result, transport.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--long-logs", type=int, default=300, metavar="TRIGGERS")
    parser.add_argument("--long-incidents", type=int, default=200)
    args = parser.parse_args()

    rows = []
    for name, incidents, triggers in (
        ("large account", args.incidents, 1),
        ("long logs", args.long_incidents, args.long_logs),
        ("same, short logs", args.long_incidents, 1),
    ):
        with emulator_process("--rate-limit", "off") as url:
            started = time.perf_counter()
            load(url, incidents, triggers, name.replace(" ", "-"))
            loaded = time.perf_counter() - started
            seconds, peak, result, requests = report(url)
        assert result["totals"]["incidents"] == incidents, result["totals"]
        entries = incidents * (triggers + 3) + incidents // 3 + (incidents % 3 > 0)
        rows.append((name, incidents, entries, loaded, seconds, peak, requests))

    print("| account | incidents | log entries | load s | report s | peak MiB | requests |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, incidents, entries, loaded, seconds, peak, requests in rows:
        print(
            f"| {name} | {incidents:,} | ~{entries:,} | {loaded:.1f} | {seconds:.1f} | "
            f"{peak:.1f} | {requests:,} |"
        )
    floor = rows[0][6] / 960
    print(f"\nAt PagerDuty's 960 requests/min the large account needs >= {floor:.1f} min.")


if __name__ == "__main__":
    main()
