"""Cost of raising an alert on the caller's thread, with real delivery in the background.

    .venv/bin/python benchmarks/bench_alerts.py [--calls 20000]

The worker delivers to the bundled emulator, run in its own process on loopback as
PagerDuty would be remote. Two configurations: the default rate budget (120 events per
minute, what production runs) and the budget off, where the worker sends as fast as it
can and its HTTP work competes with the callers for the GIL. Each figure is the time
one call takes on the caller's thread, measured per call with perf_counter_ns; the
median and 99th percentile are reported, single-threaded and with 8 threads at once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pd_integrations import AlertManager, TriggerEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apps import emulator_process

ROUTING_KEY = "benchmarkroutingkey0000000000001"
# What an app's alert typically carries; encoded (and scrubbed) on the caller's thread.
DETAILS = {
    "order_id": 123456,
    "customer": "c_8f2b3a",
    "path": "/checkout/confirm",
    "method": "POST",
    "status": 502,
    "provider": "acme-payments",
    "attempt": 3,
    "elapsed_ms": 5123.5,
    "region": "eu-west-1",
    "error": "upstream timed out after 5 s",
}


def measure(call: Callable[[int], object], calls: int, threads: int) -> list[int]:
    """Per-call durations in nanoseconds, ``calls`` in total spread over ``threads``."""
    results: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def worker(slot: int) -> None:
        durations = results[slot]
        clock = time.perf_counter_ns
        start.wait()
        for i in range(slot, calls, threads):
            t0 = clock()
            call(i)
            durations.append(clock() - t0)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return [d for durations in results for d in durations]


def report(name: str, durations: list[int]) -> None:
    durations.sort()
    median = statistics.median(durations) / 1000
    p99 = durations[int(len(durations) * 0.99)] / 1000
    print(f"{name:<44} median {median:7.2f} µs   p99 {p99:8.2f} µs   n={len(durations)}")


def run_cases(manager: AlertManager, label: str, calls: int, *, deliver_all: bool) -> None:
    dispatcher = manager.dispatcher
    assert dispatcher is not None
    event = TriggerEvent("bench", "error", "bench", dedup_key="bench-submit")
    cases: list[tuple[str, Callable[[int], object]]] = [
        ("submit() one key (coalesced)", lambda i: dispatcher.submit(event)),
        (
            "alert() distinct alerts",
            lambda i: manager.alert("Error", "error", alert_type="bench", identifier=str(i)),
        ),
        (
            "alert() distinct, 10-key details",
            lambda i: manager.alert(
                "Error",
                "error",
                alert_type="bench-details",
                identifier=str(i),
                custom_details=DETAILS,
            ),
        ),
        (
            "alert() repeat of an open alert",
            lambda i: manager.alert("Error", "error", alert_type="bench-repeat"),
        ),
    ]
    for threads in (1, 8):
        for name, call in cases:
            manager.forget_all()
            report(f"{label} {name} [{threads}t]", measure(call, calls, threads))
            if deliver_all:
                manager.flush(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()

    with emulator_process("--rate-limit", "off") as url:
        for label, rate_limit in (("budget", 120), ("no-budget", None)):
            manager = AlertManager(
                ROUTING_KEY,
                source="bench",
                base_url=url,
                max_queue=1_000_000,
                rate_limit=rate_limit,
            )
            # With the budget on, the queue drains at 2 events a second: do not wait for it.
            run_cases(manager, label, args.calls, deliver_all=rate_limit is None)
            stats = manager.stats()
            print(
                f"  {label}: sent {stats.sent}, coalesced {stats.coalesced}, "
                f"queued {stats.queued}, dropped {stats.dropped}, failed {stats.failed}"
            )
            manager.close(0)


if __name__ == "__main__":
    main()
