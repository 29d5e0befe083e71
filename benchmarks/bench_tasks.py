"""Added cost per successful Celery task, next to sentry-sdk; and a storm of failing tasks.

    .venv/bin/python benchmarks/bench_tasks.py            # full run, a few minutes
    .venv/bin/python benchmarks/bench_tasks.py --quick    # a rough look
    .venv/bin/python benchmarks/bench_tasks.py --json tasks.json

Three configurations, each in processes of its own (sentry-sdk patches Celery
process-wide, so nothing may be shared):

- ``bare``: Celery alone;
- ``pd``: with ``pd_integrations.celery.PagerDuty(app)`` (routing key set, events to the
  bundled emulator, a ``slow_task_ms`` threshold of 60 s so the slow-task check runs);
- ``sentry``: sentry-sdk with its Celery integration, errors only
  (``traces_sample_rate=None``), and a transport that drops envelopes.

Measured, in the same run:

1. **eager**: ``task.apply()`` of a task that returns at once, in the process itself;
   each configuration's process answers "run N" with the elapsed time;
2. **worker round trip**: a ``celery worker -P solo`` per configuration on one local
   Redis broker, each with its own queue; the figure is the time for a batch of tasks
   sent by a client until the batch's last result is back, per task.

The parent runs R rounds; in each round every configuration runs one block, in an order
rotated each round, so a slow spell of the machine hits them alike. The added cost of a
configuration is the **median of its per-round differences** from ``bare`` (µs per
task), with a distribution-free 95% interval of that median.

3. **storm**: 10,000 runs of one failing task through a real ``celery worker`` (prefork,
   2 children, shared Redis state) against the emulator with PagerDuty's real budget
   (120 events a minute): how many triggers and how many 429 answers.

Targets (issue 12; the exit status is 1 when one is missed): ours at most 10 µs per
eager task, at least 20 times below sentry-sdk's added cost; the storm at most 2
triggers and no 429.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_apps import emulator_process  # noqa: E402
from bench_storm import emulator_figures  # noqa: E402

VARIANTS = ("bare", "pd", "sentry")
ROUTING_KEY = "benchtasksroutingkey000000000001"
SENTRY_DSN = "http://public@127.0.0.1:9/1"
TARGET_OURS_US = 10.0
TARGET_SENTRY_RATIO = 20.0
STORM_TASKS = 10_000
TARGET_STORM_TRIGGERS = 2


# -- the app every process builds ------------------------------------------------------


def build_app(variant: str, broker: str | None = None) -> Any:
    """The benchmark's Celery app for ``variant``; tasks ``noop`` and ``fails``."""
    if variant == "sentry":
        import sentry_sdk
        from sentry_sdk.integrations.celery import CeleryIntegration
        from sentry_sdk.transport import Transport

        class DropTransport(Transport):
            """sentry does all its work but the upload."""

            def capture_envelope(self, envelope: Any) -> None:
                pass

        sentry_sdk.init(
            dsn=SENTRY_DSN,
            traces_sample_rate=None,  # tracing off: errors only
            integrations=[CeleryIntegration()],
            transport=DropTransport(),
        )
    from celery import Celery

    app = Celery("bench_tasks", broker=broker or "memory://", backend=_backend(broker))
    app.conf.worker_hijack_root_logger = False
    app.conf.broker_connection_retry_on_startup = True
    app.conf.worker_prefetch_multiplier = 64
    app.conf.task_store_errors_even_if_ignored = False

    @app.task(name="bench.noop")
    def noop() -> int:
        return 1

    @app.task(name="bench.fails", ignore_result=True)
    def fails(counter: str) -> None:
        import redis

        redis.Redis.from_url(broker or "").incr(counter)
        raise ValueError("the storm")

    if variant == "pd":
        from pd_integrations.celery import PagerDuty

        PagerDuty(app, slow_task_ms=60_000)
    return app


def _backend(broker: str | None) -> str | None:
    if broker is None:
        return None
    return broker.rsplit("/", 1)[0] + "/1"


# -- child processes -------------------------------------------------------------------


def eager_child(variant: str) -> int:
    """Answer each line ``N`` on stdin with the seconds ``N`` eager runs took."""
    app = build_app(variant)
    task = app.tasks["bench.noop"]
    for _ in range(2000):  # warm up: caches, lazy imports
        task.apply()
    for line in sys.stdin:
        count = int(line)
        start = time.perf_counter()
        for _ in range(count):
            task.apply()
        print(time.perf_counter() - start, flush=True)
    return 0


def same_process_child(rounds: int, per_block: int) -> int:
    """Ours with nothing else different: one app, PagerDuty connected in every other block.

    Blocks alternate in ABBA order; prints the per-round differences (µs per task).
    """
    app = build_app("pd")
    from pd_integrations.celery.integration import _installed

    pagerduty = _installed[app]
    task = app.tasks["bench.noop"]
    for _ in range(2000):
        task.apply()
    diffs = []
    for number in range(rounds):
        block: dict[bool, float] = {}
        for connected in (True, False) if number % 2 else (False, True):
            if connected:
                pagerduty.connect()
            else:
                pagerduty.disconnect()
            start = time.perf_counter()
            for _ in range(per_block):
                task.apply()
            block[connected] = (time.perf_counter() - start) / per_block * 1e6
        diffs.append(block[True] - block[False])
    print(json.dumps(diffs))
    return 0


# -- the parent ------------------------------------------------------------------------


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The median and a distribution-free 95% interval (order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half))
    return statistics.median(ordered), ordered[low], ordered[high]


def rotated(round_number: int) -> list[str]:
    shift = round_number % len(VARIANTS)
    return list(VARIANTS[shift:] + VARIANTS[:shift])


def added(blocks: dict[str, list[float]]) -> dict[str, Any]:
    """Per variant: median µs per task, and the added cost over bare per round."""
    figures: dict[str, Any] = {}
    for variant in VARIANTS:
        median, low, high = median_interval(blocks[variant])
        figures[variant] = {
            "us_per_task": round(median, 3),
            "ci95": [round(low, 3), round(high, 3)],
        }
        if variant != "bare":
            diffs = [a - b for a, b in zip(blocks[variant], blocks["bare"], strict=True)]
            median, low, high = median_interval(diffs)
            figures[variant]["added_us"] = round(median, 3)
            figures[variant]["added_ci95"] = [round(low, 3), round(high, 3)]
    return figures


def run_eager(rounds: int, per_block: int, env: dict[str, str]) -> dict[str, Any]:
    children = {
        variant: subprocess.Popen(
            [sys.executable, __file__, "--eager-child", variant],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for variant in VARIANTS
    }
    blocks: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    try:
        for number in range(rounds):
            for variant in rotated(number):
                child = children[variant]
                assert child.stdin is not None
                assert child.stdout is not None
                child.stdin.write(f"{per_block}\n")
                child.stdin.flush()
                blocks[variant].append(float(child.stdout.readline()) / per_block * 1e6)
    finally:
        for child in children.values():
            if child.stdin is not None:
                child.stdin.close()
            child.wait(30)
    return {"rounds": rounds, "tasks_per_block": per_block, **added(blocks)}


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with socket.socket() as client:
                    if client.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def worker(
    variant: str, broker: str, queue: str, env: dict[str, str], *options: str
) -> Iterator[None]:
    environ = {**env, "BENCH_VARIANT": variant, "BENCH_BROKER": broker}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench_tasks", "worker", "-Q", queue,
         "-n", f"{queue}@%h", "-l", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", *options],
        cwd=HERE,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.terminate()  # warm shutdown: pd flushes what is queued
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_worker(
    rounds: int, per_block: int, client: Any, broker: str, env: dict[str, str]
) -> dict[str, Any]:
    queues = {variant: f"bench-{variant}-{uuid.uuid4().hex[:8]}" for variant in VARIANTS}
    blocks: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    noop = client.tasks["bench.noop"]
    with (
        worker("bare", broker, queues["bare"], env, "-P", "solo"),
        worker("pd", broker, queues["pd"], env, "-P", "solo"),
        worker("sentry", broker, queues["sentry"], env, "-P", "solo"),
    ):
        for variant in VARIANTS:  # each worker up and warm
            for _ in range(3):
                noop.apply_async(queue=queues[variant]).get(timeout=120)
        for number in range(rounds):
            for variant in rotated(number):
                start = time.perf_counter()
                results = [noop.apply_async(queue=queues[variant]) for _ in range(per_block)]
                for result in results:
                    result.get(timeout=120)
                blocks[variant].append((time.perf_counter() - start) / per_block * 1e6)
    return {"rounds": rounds, "tasks_per_block": per_block, **added(blocks)}


def run_storm(count: int, client: Any, broker: str, env: dict[str, str]) -> dict[str, Any]:
    import redis

    counter = f"bench-storm-{uuid.uuid4().hex}"
    queue = f"bench-storm-{uuid.uuid4().hex[:8]}"
    connection = redis.Redis.from_url(broker)
    with emulator_process() as url:  # PagerDuty's real budget: 120 events a minute
        storm_env = {
            **env,
            "PAGERDUTY_EVENTS_BASE_URL": url,
            "PAGERDUTY_STATE_URL": broker,
            "PAGERDUTY_FLUSH_TIMEOUT": "30",
        }
        start = time.perf_counter()
        with worker("pd", broker, queue, storm_env, "-P", "prefork", "-c", "2"):
            fails = client.tasks["bench.fails"]
            for _ in range(count):
                fails.apply_async((counter,), queue=queue)
            deadline = time.monotonic() + 600
            while int(connection.get(counter) or 0) < count and time.monotonic() < deadline:
                time.sleep(0.2)
        elapsed = time.perf_counter() - start
        figures = emulator_figures(url, ROUTING_KEY)
    return {
        "failing_tasks": int(connection.get(counter) or 0),
        "seconds": round(elapsed, 1),
        "triggers": figures["by_action"].get("trigger", 0),
        "answered_429": figures["answered_429"],
        "alerts_opened": figures["alerts_opened"],
    }


if "BENCH_VARIANT" in os.environ:
    # ``celery -A bench_tasks worker``: the app of the variant the parent asked for.
    app = build_app(os.environ["BENCH_VARIANT"], os.environ["BENCH_BROKER"])


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for package in ("celery", "kombu", "sentry-sdk", "redis"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "missing"
    return found


def parent_main(args: argparse.Namespace) -> int:
    with emulator_process("--rate-limit", "off") as quiet_url:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "PAGERDUTY_EVENTS_BASE_URL": quiet_url,
        }
        for name in ("PAGERDUTY_STATE_URL", "PAGERDUTY_SPOOL"):
            env.pop(name, None)
        rounds = 9 if args.quick else 31
        results: dict[str, Any] = {"versions": versions()}
        results["eager"] = run_eager(rounds, 2000 if args.quick else 5000, env)
        print_section("eager task.apply()", results["eager"])
        same_rounds = 41 if args.quick else 201
        output = subprocess.run(
            [sys.executable, __file__, "--same-process", str(same_rounds)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        median, low, high = median_interval(json.loads(output))
        results["eager_same_process"] = {
            "rounds": same_rounds,
            "added_us": round(median, 3),
            "added_ci95": [round(low, 3), round(high, 3)],
        }
        print(
            f"  ours, same process (PagerDuty connected in every other block, "
            f"{same_rounds} rounds): added {median:.2f} µs  (95% {low:.2f} .. {high:.2f})"
        )
        with redis_server() as broker:
            client = build_app("bare", broker)
            per_block = 100 if args.quick else 300
            results["worker"] = run_worker(rounds, per_block, client, broker, env)
            print_section("worker round trip (solo pool, Redis broker)", results["worker"])
            results["storm"] = run_storm(args.storm, client, broker, env)
    storm = results["storm"]
    print(
        f"\nstorm: {storm['failing_tasks']} failing tasks in {storm['seconds']} s -> "
        f"{storm['triggers']} trigger(s), {storm['answered_429']} answered 429"
    )
    ours = results["eager_same_process"]["added_us"]
    sentry = results["eager"]["sentry"]["added_us"]
    ratio = math.inf if ours <= 0 else sentry / ours
    checks = {
        "ours_at_most_10_us": ours <= TARGET_OURS_US,
        "sentry_at_least_20x_ours": ratio >= TARGET_SENTRY_RATIO,
        "storm_at_most_2_triggers": storm["triggers"] <= TARGET_STORM_TRIGGERS,
        "storm_no_429": storm["answered_429"] == 0,
        "storm_all_tasks_ran": storm["failing_tasks"] == args.storm,
    }
    results["sentry_over_ours_eager"] = None if math.isinf(ratio) else round(ratio, 1)
    results["checks"] = checks
    print(f"\nsentry's added cost / ours (eager): {results['sentry_over_ours_eager'] or 'inf'}")
    for name, met in checks.items():
        print(f"  {'met ' if met else 'MISS'} {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(checks.values()) else 1


def print_section(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}: {figures['rounds']} rounds of {figures['tasks_per_block']} tasks")
    for variant in VARIANTS:
        row = figures[variant]
        line = f"  {variant:7} {row['us_per_task']:9.2f} µs/task"
        if "added_us" in row:
            low, high = row["added_ci95"]
            line += f"   added {row['added_us']:8.2f} µs  (95% {low:.2f} .. {high:.2f})"
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a rougher look")
    parser.add_argument("--storm", type=int, default=STORM_TASKS, help="failing tasks")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--eager-child", help=argparse.SUPPRESS)
    parser.add_argument("--same-process", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.same_process:
        return same_process_child(args.same_process, 2000)
    if args.eager_child:
        return eager_child(args.eager_child)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
