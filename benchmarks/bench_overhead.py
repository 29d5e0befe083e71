"""Per-request overhead of pd_integrations next to sentry-sdk, on four frameworks.

    .venv/bin/python benchmarks/bench_overhead.py            # full run, ~4.5 minutes
    .venv/bin/python benchmarks/bench_overhead.py --quick    # a rough look, ~30 seconds
    .venv/bin/python benchmarks/bench_overhead.py --json results.json --markdown results.md

For each framework (Starlette, FastAPI, Flask, Django) the same hello-world app runs in
three configurations, each in its own process (sentry-sdk patches framework classes
process-wide, so nothing may be shared):

- ``bare``: the framework alone;
- ``pd``: with this library, configured from the environment (routing key, a
  slow-request threshold of 2 s, the Events API base URL pointing at the bundled
  emulator, started here in a child process on loopback, so nothing leaves the machine);
- ``sentry``: with sentry-sdk, errors only (``traces_sample_rate=None``), the
  framework's integration and the default ones, and a transport that drops envelopes;
- and for Starlette and FastAPI, ``noop``: a do-nothing ASGI middleware that only wraps
  ``send``, the floor for any middleware that watches responses.

The app is called directly (ASGI: a hand-made scope, ``receive`` and ``send`` on one
asyncio loop; WSGI: ``app(environ, start_response)``, body consumed, ``close()`` called):
no server, no test client, so the figures are the framework's own cost. Two requests
are measured: a healthy ``GET /`` (200) and ``GET /error``, whose view raises
(timed until the framework has produced the 500 and the call has returned).

How the numbers are made (details in benchmarks/README.md): each configuration's
process answers "run N requests" with the elapsed time. The parent runs R rounds (41;
--quick: 9); in each round every configuration runs one block of about 0.1 s, in an
order rotated each round (A B C, B C A, ...), so a slow spell of the machine hits them
alike. A configuration's figure is the **median of its R block means** (µs per
request); an added cost is the **median of the R per-round differences** from the bare
app's block. "Ours, same process" compares the pd app with a bare twin app built in the
same process, in 401 short alternating blocks (ABBA order), which removes differences
between processes. 95% intervals of the medians are distribution-free (order
statistics). Every block mean is kept in the JSON output.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_apps import (
    ASGI_FRAMEWORKS,
    FRAMEWORKS,
    Driver,
    build,
    build_twin,
    driver_for,
    emulator_process,
    null_driver,
)

HERE = Path(__file__).resolve()
KINDS = {"healthy": "/", "error": "/error"}
SLOW_REQUEST_MS = "2000"
# Targets from the issue: our added cost per healthy request, as a share of the bare one.
TARGET_SHARE = {"starlette": 0.15, "fastapi": 0.15, "flask": 0.05, "django": 0.05}
TARGET_SENTRY_RATIO = 20.0
LABELS = {"starlette": "Starlette", "fastapi": "FastAPI", "flask": "Flask", "django": "Django"}
PACKAGES = ("starlette", "fastapi", "flask", "werkzeug", "django", "sentry-sdk", "pd-integrations")


@dataclass(frozen=True)
class Plan:
    iterations: int
    error_iterations: int
    repeats: int
    warmup: int
    block_seconds: float
    """A block stops short of its request count after about this long (sentry's errors)."""
    min_block: int
    pairs: int
    """Alternating blocks of our app and its bare twin, in the pd process."""
    pair_seconds: float


FULL = Plan(
    iterations=20_000,
    error_iterations=2_000,
    repeats=41,
    warmup=2_000,
    block_seconds=0.1,
    min_block=50,
    pairs=401,
    pair_seconds=0.01,
)
QUICK = Plan(
    iterations=5_000,
    error_iterations=500,
    repeats=9,
    warmup=300,
    block_seconds=0.04,
    min_block=20,
    pairs=61,
    pair_seconds=0.005,
)


def routing_key(framework: str) -> str:
    """A well-formed 32-character key per framework, to find its events in the emulator."""
    return ("bench" + framework).ljust(32, "0")


# == the child: one framework in one configuration ========================================


def _events_for(base_url: str, key: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base_url}/api/events", timeout=5) as answer:
        events: list[dict[str, Any]] = json.load(answer)
    return [e for e in events if e.get("body", {}).get("routing_key") == key]


def _wait_for_event(base_url: str, key: str, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _events_for(base_url, key)
        if found:
            return len(found)
        time.sleep(0.05)
    raise RuntimeError("pd_integrations sent no event to the emulator for the error request")


def prepare(
    framework: str, variant: str, emulator_url: str | None, settings: Sequence[str] = ()
) -> tuple[dict[str, Driver], dict[str, Any]]:
    """Build the app, check it answers as it should, and prove the variant is active."""
    for name in list(os.environ):
        if name.startswith(("PAGERDUTY_", "SENTRY_")):
            del os.environ[name]
    if variant == "pd":
        if emulator_url is None:
            raise RuntimeError("the pd variant needs --emulator-url")
        os.environ["PAGERDUTY_ROUTING_KEY"] = routing_key(framework)
        os.environ["PAGERDUTY_EVENTS_BASE_URL"] = emulator_url
        os.environ["PAGERDUTY_SLOW_REQUEST_MS"] = SLOW_REQUEST_MS
        for setting in settings:
            name, _, value = setting.partition("=")
            os.environ[f"PAGERDUTY_{name.upper()}"] = value
    app, probe = build(framework, variant)
    driver = driver_for(framework, app)
    info: dict[str, Any] = {}
    healthy = driver.check(KINDS["healthy"])
    if healthy.status != 200 or b"Hello, world!" not in healthy.body or healthy.error:
        raise RuntimeError(f"GET / answered {healthy}")
    failed = driver.check(KINDS["error"])
    expected_error = "RuntimeError" if framework in ASGI_FRAMEWORKS else None
    if failed.status != 500 or failed.error != expected_error:
        raise RuntimeError(f"GET /error answered {failed}")
    if variant == "pd":
        assert emulator_url is not None
        info["events_after_first_error"] = _wait_for_event(emulator_url, routing_key(framework))
    if variant == "sentry":
        import sentry_sdk

        sentry_sdk.flush(5)
        if not probe.sentry_envelopes:
            raise RuntimeError("sentry-sdk captured nothing for the error request")
        info["sentry_envelopes_after_first_error"] = len(probe.sentry_envelopes)
    if variant == "bare":
        # The harness's own cost per request, calling a do-nothing app the same way.
        null = null_driver(framework)
        null.run("/", 2_000)
        info["harness_ns"] = min(null.run("/", 20_000) / 20_000 for _ in range(3))
        null.close()
    drivers = {"main": driver}
    if variant == "pd":
        info["settings"] = list(settings)
        twin = driver_for(framework, build_twin(framework))
        reply = twin.check(KINDS["healthy"])
        if reply.status != 200 or reply.error:
            raise RuntimeError(f"the bare twin's GET / answered {reply}")
        drivers["twin"] = twin
    return drivers, info


def measure(driver: Driver, kind: str, n: int) -> float:
    """Mean nanoseconds per request over ``n`` requests (garbage collected before)."""
    gc.collect()
    return driver.run(KINDS[kind], n) / n


def alternate(drivers: dict[str, Driver], kind: str, n: int, count: int) -> dict[str, Any]:
    """``count`` pairs of blocks of the main app and its twin, in ABBA order (ns/request)."""
    path = KINDS[kind]
    main, twin = drivers["main"], drivers["twin"]
    out: dict[str, list[float]] = {"main": [], "twin": []}
    gc.collect()
    for i in range(count):
        order = (("main", main), ("twin", twin)) if i % 2 == 0 else (("twin", twin), ("main", main))
        for name, driver in order:
            out[name].append(driver.run(path, n) / n)
    return dict(out)


def child_main(args: argparse.Namespace) -> int:
    framework, variant = args.one
    # The protocol owns the real stdout; anything printed by libraries goes to stderr.
    proto: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(payload: dict[str, Any]) -> None:
        proto.write(json.dumps(payload) + "\n")
        proto.flush()

    with contextlib.ExitStack() as stack:
        url = args.emulator_url
        if variant == "pd" and url is None:
            url = stack.enter_context(emulator_process())
        try:
            drivers, info = prepare(framework, variant, url, args.pd_setting)
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"})
            return 1
        if not args.worker:
            # Standalone: one configuration, no interleaving; handy for profiling.
            plan = _plan(args)
            result: dict[str, Any] = {"framework": framework, "variant": variant, **info}
            driver = drivers["main"]
            for kind, n in (("healthy", plan.iterations), ("error", plan.error_iterations)):
                probe = measure(driver, kind, 20)
                size = max(plan.min_block, min(n, int(plan.block_seconds * 1e9 / probe)))
                measure(driver, kind, min(plan.warmup, size))
                means = [measure(driver, kind, size) for _ in range(plan.repeats)]
                result[kind] = {"median_ns": statistics.median(means), "block_means_ns": means}
            for each in drivers.values():
                each.close()
            reply(result)
            return 0
        reply({"ready": True, **info})
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            if command["cmd"] == "pairs":
                reply(alternate(drivers, command["kind"], command["n"], command["count"]))
                continue
            driver = drivers[command.get("app", "main")]
            reply({"ns": measure(driver, command["kind"], command["n"])})
        for each in drivers.values():
            each.close()
        if variant == "pd" and url is not None:
            reply({"events": len(_events_for(url, routing_key(framework)))})
        else:
            reply({})
    return 0


# == the parent: interleaved runs, tables ================================================


class Worker:
    """One configuration's process, driven line by line over its stdin and stdout."""

    def __init__(
        self, framework: str, variant: str, emulator_url: str, settings: Sequence[str] = ()
    ) -> None:
        self.framework = framework
        self.variant = variant
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in quit()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "SENTRY_"))}
        env["PYTHONHASHSEED"] = "0"  # the same hash layout in every process
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--one",
                framework,
                variant,
                "--worker",
                "--emulator-url",
                emulator_url,
                *(f"--pd-setting={setting}" for setting in settings),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.info: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise RuntimeError(
                f"{self.framework}/{self.variant} exited:\n{self.stderr.read()[-3000:]}"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            self.stderr.seek(0)
            raise RuntimeError(
                f"{self.framework}/{self.variant}: {answer['error']}\n{self.stderr.read()[-3000:]}"
            )
        return answer

    def ready(self) -> None:
        self.info = self.read()

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def run(self, kind: str, n: int, app: str = "main") -> float:
        self.send({"cmd": "run", "kind": kind, "n": n, "app": app})
        ns: float = self.read()["ns"]
        return ns

    def quit(self) -> dict[str, Any]:
        try:
            self.send({"cmd": "quit"})
            return self.read()
        finally:
            self.process.wait(30)
            self.stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@dataclass
class Series:
    block_size: int
    block_means_ns: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.block_means_ns) / 1000


def warm_up(worker: Worker, kind: str, app: str, plan: Plan) -> float:
    """Warm the app up (time-capped); returns its rough cost per request in ns."""
    probe = worker.run(kind, 20, app)
    warm = min(plan.warmup, max(20, int(plan.block_seconds * 1e9 / probe)))
    return worker.run(kind, warm, app)


def block_sizes(estimates: dict[str, float], n: int, plan: Plan) -> dict[str, int]:
    """Requests per block: the bare app's block lasts about ``block_seconds`` (at most
    ``n`` requests), and every configuration of comparable cost runs the same number;
    a much slower one (sentry-sdk) runs fewer, so that its blocks last as long."""
    base = max(plan.min_block, min(n, int(plan.block_seconds * 1e9 / estimates["bare"])))
    sizes = {}
    for name, per_request in estimates.items():
        if per_request <= 2 * estimates["bare"]:
            sizes[name] = base
        else:
            sizes[name] = max(plan.min_block, min(n, int(plan.block_seconds * 1e9 / per_request)))
    return sizes


def same_process_pairs(worker: Worker, estimate_ns: float, plan: Plan) -> dict[str, Any]:
    """Our app and its bare twin in the pd process, in short alternating blocks."""
    n = max(plan.min_block, int(plan.pair_seconds * 1e9 / estimate_ns))
    worker.send({"cmd": "pairs", "kind": "healthy", "n": n, "count": plan.pairs})
    answer = worker.read()
    return {"block_size": n, "pd_ns": answer["main"], "twin_ns": answer["twin"]}


def run_framework(
    framework: str,
    variants: Sequence[str],
    plan: Plan,
    emulator_url: str,
    log: IO[str],
    settings: Sequence[str] = (),
) -> dict[str, Any]:
    workers = [Worker(framework, variant, emulator_url, settings) for variant in variants]
    try:
        for worker in workers:
            worker.ready()
        # A slot is one configuration's app in its process.
        rotation = [(worker.variant, worker, "main") for worker in workers]
        results: dict[str, dict[str, Series]] = {name: {} for name, _, _ in rotation}
        load: dict[str, list[float]] = {}
        same_process: dict[str, Any] | None = None
        for kind, n in (("healthy", plan.iterations), ("error", plan.error_iterations)):
            load[kind] = [os.getloadavg()[0]]
            estimates = {name: warm_up(worker, kind, app, plan) for name, worker, app in rotation}
            sizes = block_sizes(estimates, n, plan)
            for name, _, _ in rotation:
                results[name][kind] = Series(block_size=sizes[name])
            for round_ in range(plan.repeats):
                shift = round_ % len(rotation)
                for name, worker, app in rotation[shift:] + rotation[:shift]:
                    mean = worker.run(kind, sizes[name], app)
                    results[name][kind].block_means_ns.append(mean)
                print(".", end="", file=log, flush=True)
            load[kind].append(os.getloadavg()[0])
            pd = next((w for w in workers if w.variant == "pd"), None)
            if kind == "healthy" and pd is not None:
                same_process = same_process_pairs(pd, estimates["pd"], plan)
                print(":", end="", file=log, flush=True)
        closing = {worker.variant: worker.quit() for worker in workers}
    finally:
        for worker in workers:
            worker.kill()
    out: dict[str, Any] = {
        "variants": {},
        "same_process_healthy": same_process,
        "load_average_1min": load,
    }
    for name, kinds in results.items():
        out["variants"][name] = {
            "checks": {**next((w.info for w in workers if w.variant == name), {})},
            **{
                kind: {
                    "median_us": series.median_us,
                    "block_size": series.block_size,
                    "min_us": min(series.block_means_ns) / 1000,
                    "max_us": max(series.block_means_ns) / 1000,
                    "block_means_ns": [round(ns, 1) for ns in series.block_means_ns],
                }
                for kind, series in kinds.items()
            },
        }
        out["variants"][name]["checks"].update(closing.get(name, {}))
    harness = workers[0].info.get("harness_ns") if workers[0].variant == "bare" else None
    out["harness_us"] = None if harness is None else harness / 1000
    return out


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """The median of the per-round differences ``a - b`` (µs), with a 95% interval.

    The interval is the distribution-free one for a median: between two order
    statistics of the differences chosen from the binomial distribution.
    """
    diffs = sorted((x - y) / 1000 for x, y in zip(a, b, strict=True))
    n = len(diffs)
    half = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half) - 1)
    high = min(n - 1, math.ceil(n / 2 + half))
    return {"median": statistics.median(diffs), "low": diffs[low], "high": diffs[high]}


def summarise(framework: str, data: dict[str, Any]) -> dict[str, Any]:
    """Added costs, shares and the target verdicts for one framework.

    A configuration's cost is the median of its block means; an added cost is the
    median of the per-round differences from the reference block of the same round
    (the bare app's, or for "same process" the bare twin's in the pd process).
    """
    variants = data["variants"]
    summary: dict[str, Any] = {}
    for kind in KINDS:
        ref = variants["bare"][kind]
        bare = ref["median_us"]
        row: dict[str, Any] = {"bare_us": bare}
        for variant in ("pd", "sentry", "noop", "control"):
            if variant not in variants:
                continue
            this = variants[variant][kind]
            added = paired(this["block_means_ns"], ref["block_means_ns"])
            row[f"{variant}_us"] = this["median_us"]
            row[f"{variant}_added_us"] = added["median"]
            row[f"{variant}_added_ci_us"] = [added["low"], added["high"]]
            row[f"{variant}_added_share"] = added["median"] / bare
        pairs = data.get("same_process_healthy") if kind == "healthy" else None
        if pairs is not None:
            added = paired(pairs["pd_ns"], pairs["twin_ns"])
            twin_us = statistics.median(pairs["twin_ns"]) / 1000
            row["pd_twin_us"] = twin_us
            row["pd_paired_added_us"] = added["median"]
            row["pd_paired_added_ci_us"] = [added["low"], added["high"]]
            row["pd_paired_added_share"] = added["median"] / twin_us
        if "pd_added_us" in row and "sentry_added_us" in row:
            ours = row.get("pd_paired_added_us", row["pd_added_us"])
            row["sentry_over_ours"] = row["sentry_added_us"] / ours if ours > 0 else None
        summary[kind] = row
    healthy = summary["healthy"]
    if "pd_added_share" in healthy:
        limit = TARGET_SHARE[framework]
        ratio = healthy.get("sentry_over_ours")
        summary["targets"] = {
            "share_limit": limit,
            "share_met_same_process": healthy.get("pd_paired_added_share", math.inf) <= limit,
            "share_met_separate_processes": healthy["pd_added_share"] <= limit,
            "sentry_ratio_min": TARGET_SENTRY_RATIO,
            # Nothing measurable added counts as met: sentry's cost is then ∞ times ours.
            "sentry_ratio_met": ratio is None or ratio >= TARGET_SENTRY_RATIO,
        }
    return summary


def _cell(row: dict[str, Any], variant: str, prefix: str = "") -> str:
    key = f"{variant}_{prefix}added_us"
    if key not in row:
        return "—"
    value = row.get(f"{variant}_us") if not prefix else None
    share = row[f"{variant}_{prefix}added_share"] * 100
    added = f"{row[key]:+.2f} µs, {share:+.1f}%"
    return added if value is None else f"{value:.2f} ({added})"


def _ratio(row: dict[str, Any]) -> str:
    if "sentry_over_ours" not in row:
        return "—"
    ratio = row["sentry_over_ours"]
    return "∞ (ours ≤ 0)" if ratio is None else f"{ratio:.0f}x"


def _share(row: dict[str, Any], prefix: str, base: float | None) -> str:
    if f"{prefix}_added_us" not in row or not base:
        return "—"
    low, high = row[f"{prefix}_added_ci_us"]
    share = row[f"{prefix}_added_us"] / base * 100
    return f"{share:+.1f}% ({low / base * 100:+.1f} to {high / base * 100:+.1f})"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def tables(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown tables: healthy requests, error requests, the targets."""
    lines = [
        "Healthy `GET /` (200): µs per request (added µs, added % of bare)",
        "",
        "| Framework | bare | + pd_integrations | ours, same process | + sentry-sdk "
        "| sentry's added ÷ ours | + no-op ASGI wrapper | bare, 2nd process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for framework, summary in summaries.items():
        row = summary["healthy"]
        lines.append(
            f"| {LABELS[framework]} | {row['bare_us']:.2f} | {_cell(row, 'pd')} | "
            f"{_cell(row, 'pd', 'paired_')} | {_cell(row, 'sentry')} | {_ratio(row)} | "
            f"{_cell(row, 'noop')} | {_cell(row, 'control')} |"
        )
    lines += [
        "",
        "A request whose view raises (`GET /error`, until the 500 is produced): µs per request",
        "",
        "| Framework | bare | + pd_integrations | + sentry-sdk | sentry's added ÷ ours |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for framework, summary in summaries.items():
        row = summary["error"]
        lines.append(
            f"| {LABELS[framework]} | {row['bare_us']:.2f} | {_cell(row, 'pd')} | "
            f"{_cell(row, 'sentry')} | {_ratio(row)} |"
        )
    lines += [
        "",
        "Targets for a healthy request: our added cost ≤ 15% of the bare request on "
        "Starlette and FastAPI, ≤ 5% on Flask and Django; sentry-sdk's added cost ≥ 20x ours",
        "",
        "| Framework | ours, same process (95% CI) | ours, separate processes (95% CI) "
        "| limit | met | sentry's added ÷ ours | met |",
        "| --- | ---: | ---: | ---: | :---: | ---: | :---: |",
    ]
    for framework, summary in summaries.items():
        targets = summary.get("targets")
        if targets is None:
            continue
        row = summary["healthy"]
        lines.append(
            f"| {LABELS[framework]} | {_share(row, 'pd_paired', row.get('pd_twin_us'))} | "
            f"{_share(row, 'pd', row['bare_us'])} | {targets['share_limit'] * 100:.0f}% | "
            f"{_yes(targets['share_met_same_process'])} | {_ratio(row)} | "
            f"{_yes(targets['sentry_ratio_met'])} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def _plan(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        iterations=args.iterations or base.iterations,
        error_iterations=args.error_iterations or base.error_iterations,
        repeats=args.repeats or base.repeats,
        warmup=base.warmup if args.warmup is None else args.warmup,
        block_seconds=args.block_seconds or base.block_seconds,
        min_block=base.min_block,
        pairs=base.pairs,
        pair_seconds=base.pair_seconds,
    )


def parent_main(args: argparse.Namespace) -> int:
    plan = _plan(args)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for framework in frameworks:
        if framework not in FRAMEWORKS:
            sys.exit(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
    log = sys.stderr
    env = machine()
    print(
        f"Python {env['python']} on {env['cpus']} CPUs ({env['cpu']}); "
        f"{plan.repeats} rounds of {plan.iterations} healthy and {plan.error_iterations} "
        f"error requests per configuration",
        file=log,
    )
    started = time.monotonic()
    raw: dict[str, Any] = {}
    summaries: dict[str, dict[str, Any]] = {}
    with emulator_process() as url:
        for framework in frameworks:
            variants = ["bare", "pd", "sentry"]
            if framework in ASGI_FRAMEWORKS and not args.no_noop:
                variants.append("noop")
            if args.control:
                variants.append("control")
            print(f"{LABELS[framework]:<10}", end="", file=log, flush=True)
            t0 = time.monotonic()
            raw[framework] = run_framework(framework, variants, plan, url, log, args.pd_setting)
            summaries[framework] = summarise(framework, raw[framework])
            print(f" {time.monotonic() - t0:.0f} s", file=log, flush=True)
    markdown = tables(summaries)
    print()
    print(markdown)
    document = {
        "command": " ".join(["python", "benchmarks/bench_overhead.py", *sys.argv[1:]]),
        "plan": plan.__dict__,
        "statistic": "median of the per-round block means, µs per request",
        "machine": env,
        "elapsed_s": round(time.monotonic() - started, 1),
        "results": raw,
        "summary": summaries,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.markdown:
        if args.markdown == "-":
            pass  # already printed
        else:
            Path(args.markdown).write_text(markdown)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short, rougher run")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated")
    parser.add_argument("--iterations", type=int, help="healthy requests per block")
    parser.add_argument("--error-iterations", type=int, help="error requests per block")
    parser.add_argument("--repeats", type=int, help="rounds (blocks per configuration)")
    parser.add_argument("--warmup", type=int, help="requests before the first block")
    parser.add_argument(
        "--block-seconds", type=float, help="cap on one block's duration (default 1, quick 0.2)"
    )
    parser.add_argument("--no-noop", action="store_true", help="skip the no-op ASGI wrapper")
    parser.add_argument(
        "--control", action="store_true", help="add a second bare process (the noise floor)"
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument(
        "--markdown", metavar="PATH", nargs="?", const="-", help="write the tables as markdown"
    )
    parser.add_argument(
        "--one",
        nargs=2,
        metavar=("FRAMEWORK", "VARIANT"),
        help="run one configuration in this process (bare, pd, sentry or noop) and print JSON",
    )
    parser.add_argument(
        "--pd-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one more setting for our app, as PAGERDUTY_<NAME> (BREADCRUMBS=0: without them)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-url", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.one:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
