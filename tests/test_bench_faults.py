"""A quick run of the delivery-under-faults benchmark: it runs and reports, never judged on time.

The benchmark runs as a subprocess, as a user runs it, with ``--no-targets``: its exit
status then says only whether every alert was delivered exactly once, which holds
whatever the machine's speed. Its figures are checked for shape and consistency only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_faults.py"
# The quick run takes about 15 s; a busy machine may take several times that.
TIMEOUT = 300.0


def test_a_quick_run_in_memory_delivers_every_alert_once_and_reports_its_figures(
    tmp_path: Path,
) -> None:
    out = tmp_path / "faults.json"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--modes",
            "memory",
            "--no-targets",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "time ÷ budget's lower bound" in run.stdout
    assert "critical accepted after the outage's end" in run.stdout

    document = json.loads(out.read_text())
    assert document["plan"]["alerts"] == 20
    assert document["plan"]["failing"] == 10
    assert document["budget_per_minute"] == 120
    assert set(document["modes"]) == {"memory"}
    mix = document["modes"]["memory"]["fault_mix"]
    crit = document["modes"]["memory"]["critical"]

    # Fault mix: every alert once, and the figures add up.
    assert mix["delivery"]["ok"]
    assert mix["delivery"]["incidents"] == 20
    assert mix["library"]["sent"] == 20
    assert mix["library"]["failed"] == 0
    assert mix["attempts"] == sum(mix["answers"].values()) >= 20
    assert mix["answers"]["202"] >= 20  # a 202 lost to a timeout would be sent again
    assert mix["library"]["retried"] == mix["attempts"] - 20
    assert mix["budget_lower_bound_seconds"] == mix["attempts"] / 2
    assert math.isclose(mix["ratio"], mix["total_seconds"] / mix["budget_lower_bound_seconds"])
    assert mix["total_seconds"] > 0

    # The outage: every warning failed before it ended, then all 11 alerts went out once.
    assert crit["every_warning_failed_first"]
    assert crit["attempts_during_outage"] >= 10
    assert set(crit["answers_during_outage"]) == {"503"}
    assert crit["critical_delivered"]
    assert crit["critical_seconds"] > 0
    assert crit["delivery"]["ok"]
    assert crit["delivery"]["incidents"] == 11
    assert crit["library"]["sent"] == 11
    assert crit["library"]["failed"] == 0

    checks = {(c["mode"], c["figure"]) for c in document["checks"]}
    assert ("memory", "outage: critical accepted after the outage's end") in checks
    assert len(document["checks"]) == 4
