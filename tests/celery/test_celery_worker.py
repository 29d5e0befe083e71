"""A real ``celery worker`` (prefork with 2 children, solo, threads) on a real Redis broker,
alerting the bundled emulator.

Each test waits for what the worker sends with generous timeouts (process start-up on a
loaded machine), never for a duration to pass.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from pd_integrations.emulator import Emulator
from tests.transport import wait_until

pytest_plugins = ["tests.redis_server"]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
EVENT_TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(300)


class Worker:
    """One ``celery worker`` process and a client app sending to its queue."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, client: Celery, queue: str):
        self.process, self.log, self.client, self.queue = process, log, client, queue

    def send(self, name: str, *args: Any) -> None:
        self.client.send_task(name, args, queue=self.queue)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.client.close()


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    started: list[Worker] = []

    def start(emulator: Emulator, *options: str, **env: str) -> Worker:
        queue = f"pd-test-{uuid.uuid4().hex}"
        log = tmp_path / f"worker-{len(started)}.log"
        environ = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PD_CELERY_BROKER": redis_url,
            "PD_CELERY_QUEUE": queue,
            # A key of this test's own: the shared Redis state is per routing key.
            "PAGERDUTY_ROUTING_KEY": secrets.token_hex(16),
            "PAGERDUTY_EVENTS_BASE_URL": emulator.url,
            "PAGERDUTY_STATE_URL": redis_url,
            **env,
        }
        command = [sys.executable, "-m", "celery", "-A", "tests.celery.worker_app", "worker"]
        command += ["-Q", queue, "-n", f"{queue}@%h", "-l", "INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat", *options]
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=tmp_path, env=environ, stdout=out, stderr=out)
        client = Celery("pd-test-client", broker=redis_url, set_as_current=False)
        worker = Worker(process, log, client, queue)
        started.append(worker)
        ready = wait_until(
            lambda: " ready." in worker.output() or process.poll() is not None, START_TIMEOUT
        )
        assert ready, worker.output()
        assert process.poll() is None, worker.output()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0) as running:
        yield running


def triggers(emulator: Emulator, task: str) -> list[dict[str, Any]]:
    return [
        e
        for e in emulator.events()
        if e["type"] == "trigger" and e["body"]["payload"]["custom_details"].get("task") == task
    ]


def arrived(emulator: Emulator, task: str, worker: Worker) -> None:
    """Wait for the task's first trigger (the worker's log explains a timeout)."""
    assert wait_until(lambda: bool(triggers(emulator, task)), EVENT_TIMEOUT), worker.output()


def resolves(emulator: Emulator, dedup_key: str) -> list[dict[str, Any]]:
    return [e for e in emulator.events() if e["type"] == "resolve" and e["dedup_key"] == dedup_key]


def test_prefork_retries_then_failure_one_trigger_and_the_next_success_resolves(
    start_worker: StartWorker, emulator: Emulator
) -> None:
    worker = start_worker(emulator, "-P", "prefork", "-c", "2")

    worker.send("tests.flaky", True)

    arrived(emulator, "tests.flaky", worker)
    # The trigger leaves after the last attempt: the two retries came before it.
    assert worker.output().count("Retry in 0s") == 2
    (trigger,) = triggers(emulator, "tests.flaky")
    payload = trigger["body"]["payload"]
    assert payload["severity"] == "error"
    assert "will retry" not in payload["summary"]
    assert payload["custom_details"]["attempt"] == 3
    assert payload["custom_details"]["queue"] == worker.queue

    # The success may run in the other child: it learns of the failure through the shared
    # state, at most a second later, so successes are sent until one resolves it.
    def resolved() -> bool:
        worker.send("tests.flaky", False)
        return wait_until(lambda: bool(resolves(emulator, trigger["dedup_key"])), 5)

    assert wait_until(resolved, EVENT_TIMEOUT), worker.output()
    assert len(triggers(emulator, "tests.flaky")) == 1
    assert emulator.alerts(dedup_key=trigger["dedup_key"])[0]["status"] == "resolved"


def test_prefork_each_child_alerts(start_worker: StartWorker, emulator: Emulator) -> None:
    worker = start_worker(emulator, "-P", "prefork", "-c", "2")
    barrier = f"pd-test-barrier-{uuid.uuid4().hex}"

    worker.send("tests.fails_together", "key", barrier)
    worker.send("tests.fails_together", "lookup", barrier)

    assert wait_until(lambda: len(triggers(emulator, "tests.fails_together")) == 2, EVENT_TIMEOUT)
    kinds = sorted(
        t["body"]["payload"]["custom_details"]["exception_type"]
        for t in triggers(emulator, "tests.fails_together")
    )
    assert kinds == ["KeyError", "LookupError"]


def test_prefork_a_child_killed_mid_task_alerts(
    start_worker: StartWorker, emulator: Emulator, tmp_path: Path
) -> None:
    worker = start_worker(emulator, "-P", "prefork", "-c", "2")
    pid_file = tmp_path / "child.pid"

    worker.send("tests.hang", str(pid_file))
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", START_TIMEOUT)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)

    arrived(emulator, "tests.hang", worker)
    (trigger,) = triggers(emulator, "tests.hang")
    found = trigger["body"]["payload"]["custom_details"]
    assert found["lost"] == "worker lost"
    assert found["exception_type"] == "billiard.exceptions.WorkerLostError"
    assert "SIGKILL" in found["exception_message"]
    assert found["args"] == [str(pid_file)]


def test_prefork_a_hard_time_limit_alerts(start_worker: StartWorker, emulator: Emulator) -> None:
    worker = start_worker(emulator, "-P", "prefork", "-c", "2")

    worker.send("tests.too_long")

    arrived(emulator, "tests.too_long", worker)
    (trigger,) = triggers(emulator, "tests.too_long")
    assert trigger["body"]["payload"]["custom_details"]["lost"] == "hard time limit"
    assert trigger["body"]["payload"]["summary"].startswith(
        "Task tests.too_long failed: hard time limit"
    )


def test_a_child_that_ends_after_its_task_still_delivers(
    start_worker: StartWorker, emulator: Emulator
) -> None:
    # Each child ends after one task, while PagerDuty answers slowly: the child's
    # worker_process_shutdown flush delivers the alert before the child is gone.
    emulator.set_faults(latency=1.0)
    worker = start_worker(
        emulator,
        "-P",
        "prefork",
        "-c",
        "1",
        "--max-tasks-per-child",
        "1",
        PAGERDUTY_FLUSH_TIMEOUT="30",
    )

    worker.send("tests.fails")

    arrived(emulator, "tests.fails", worker)


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_other_pools_alert_and_resolve(
    start_worker: StartWorker, emulator: Emulator, pool: str
) -> None:
    worker = start_worker(emulator, "-P", pool, "-c", "2")

    worker.send("tests.flaky", True)
    arrived(emulator, "tests.flaky", worker)
    (trigger,) = triggers(emulator, "tests.flaky")
    worker.send("tests.flaky", False)

    assert wait_until(lambda: bool(resolves(emulator, trigger["dedup_key"])), EVENT_TIMEOUT)


def test_the_worker_flushes_at_shutdown(start_worker: StartWorker, emulator: Emulator) -> None:
    # PagerDuty answers slowly and the worker is told to stop at once: the alert of the
    # task it just ran is delivered before the main process ends.
    emulator.set_faults(latency=1.0)
    worker = start_worker(emulator, "-P", "solo", PAGERDUTY_FLUSH_TIMEOUT="30")

    worker.send("tests.fails")
    assert wait_until(lambda: "raised unexpected" in worker.output(), EVENT_TIMEOUT)
    worker.stop()

    assert triggers(emulator, "tests.fails"), worker.output()
