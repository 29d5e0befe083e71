"""A short run of the alert-storm benchmark: its counting invariants, never its timings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pd_integrations.emulator import Emulator

from .redis_server import redis_binary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_storm  # benchmarks/ is not a package: found through sys.path


def test_a_short_storm_pages_once_per_fingerprint_within_the_budget() -> None:
    plan = bench_storm.StormPlan(duration=1.0, rate=1_000, healthy_rate=200, calm=1.0)
    # The real budget, as in the benchmark; in this process rather than its own, which
    # changes nothing that is counted.
    with Emulator(port=0, rate_limit_per_minute=120) as emulator:
        result = bench_storm.run_storm(
            plan, emulator.url, routing_key="benchstormsmoketest0000000000001"
        )
    failed = [check for check in bench_storm.counting_checks(result) if not check.met]
    assert failed == []
    storm = result.storm
    assert storm.errors == result.occurrences == 1_000
    assert result.emulator["by_action"] == {"trigger": bench_storm.FINGERPRINTS}
    assert result.emulator["answered_429"] == 0
    assert len(result.calm_ns) == len(result.control_ns) == len(storm.healthy_ns) == 200


def test_a_short_fleet_run_pages_once_per_problem_over_one_redis() -> None:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed")
    plan = bench_storm.FleetPlan(processes=2, errors=100, paused_errors=20, pause_ms=1_500)
    # A Redis of its own: the run pauses it, which must neither disturb nor be disturbed
    # by other tests sharing the suite's server.
    with (
        bench_storm.throwaway_redis() as redis_url,
        Emulator(port=0, rate_limit_per_minute=120) as emulator,
    ):
        result = bench_storm.run_fleet(
            plan, emulator.url, redis_url, routing_key="benchfleetsmoketest0000000000001"
        )
    failed = [check for check in bench_storm.fleet_counting_checks(result) if not check.met]
    assert failed == []
    assert len(result.workers) == 2
    for worker in result.workers:
        assert len(worker["healthy"]["errors"]) == len(worker["healthy"]["controls"]) == 100
        assert len(worker["paused"]["errors"]) == 20
    assert result.emulator["answered_429"] == 0
