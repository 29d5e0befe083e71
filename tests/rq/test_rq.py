"""A real ``rq worker`` process (``pd_integrations.rq``) on a real Redis, against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pd_integrations.emulator import Emulator
from tests.redis_server import RedisServer, redis_binary

redis = pytest.importorskip("redis")
rq = pytest.importorskip("rq")

ROOT = Path(__file__).resolve().parents[2]
ROUTING_KEY = "rqworkertestroutingkey0000000001"
WORKER_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    # A server of its own: RQ's keys have no prefix, so they must not meet other tests'.
    if redis_binary() is None:
        pytest.skip("no redis-server")
    with RedisServer() as server:
        yield server


@pytest.fixture
def connection(redis_server: RedisServer) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, seed=3) as running:
        yield running


class RunningWorker:
    """A long-lived ``rq worker`` process (stopped with SIGKILL by the test).

    Not ``--burst``: with RQ 2.x and redis-py 8 a burst worker that handled a failed job
    waits a minute at exit for its pub/sub thread, whatever the exception handlers.
    """

    def __init__(self, redis_server: RedisServer, emulator: Emulator, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
        env.update(
            PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
            PAGERDUTY_EVENTS_BASE_URL=emulator.url,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        rq_command = str(Path(sys.executable).parent / "rq")
        self.process = subprocess.Popen(
            [rq_command, "worker", "--url", redis_server.url, *extra, "default"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(WORKER_TIMEOUT)


@pytest.fixture
def start_worker(
    redis_server: RedisServer, emulator: Emulator
) -> Iterator[Callable[..., RunningWorker]]:
    started: list[RunningWorker] = []

    def start(*extra: str) -> RunningWorker:
        worker = RunningWorker(redis_server, emulator, *extra)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for_status(job: Any, status: str) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT
    while job.get_status(refresh=True) != status:
        assert time.monotonic() < deadline, f"job {job.id} is {job.get_status()}"
        time.sleep(0.05)


def queue(connection: Any) -> Any:
    return rq.Queue("default", connection=connection)


def test_a_job_failing_after_its_retries_pages_once_and_its_next_success_resolves(
    connection: Any, emulator: Emulator, start_worker: Callable[..., RunningWorker]
) -> None:
    start_worker("-w", "pd_integrations.rq.Worker")
    job = queue(connection).enqueue("tests.rq.jobs.flaky", True, retry=rq.Retry(max=2))
    wait_for_status(job, "failed")
    job.refresh()
    assert job.retries_left == 0  # three attempts ran
    [trigger] = emulator.wait_for_events(1, timeout=WORKER_TIMEOUT)
    assert trigger["type"] == "trigger"
    details = trigger["body"]["payload"]["custom_details"]
    assert details["function"] == "tests.rq.jobs.flaky"
    assert details["exception"] == "ValueError"
    assert details["job_id"] == job.id

    again = queue(connection).enqueue("tests.rq.jobs.flaky", True)
    wait_for_status(again, "failed")
    resolved = queue(connection).enqueue("tests.rq.jobs.flaky", False)
    wait_for_status(resolved, "finished")
    events = emulator.wait_for_events(2, timeout=WORKER_TIMEOUT)
    # The second failure of the same bug, still open, sent nothing.
    assert [event["type"] for event in events] == ["trigger", "resolve"]
    assert events[1]["dedup_key"] == events[0]["dedup_key"]


def test_a_killed_work_horse_pages(
    connection: Any, emulator: Emulator, start_worker: Callable[..., RunningWorker]
) -> None:
    start_worker("-w", "pd_integrations.rq.Worker")
    job = queue(connection).enqueue("tests.rq.jobs.kill_own_horse")
    [trigger] = emulator.wait_for_events(1, timeout=WORKER_TIMEOUT)
    assert "work-horse was terminated" in trigger["body"]["payload"]["summary"]
    wait_for_status(job, "failed")


def test_a_job_timeout_pages_through_the_bare_exception_handler(
    connection: Any, emulator: Emulator, start_worker: Callable[..., RunningWorker]
) -> None:
    start_worker("--exception-handler", "pd_integrations.rq.exception_handler")
    job = queue(connection).enqueue("tests.rq.jobs.never_ends", job_timeout=1)
    [trigger] = emulator.wait_for_events(1, timeout=WORKER_TIMEOUT)
    payload = trigger["body"]["payload"]
    assert "timed out" in payload["summary"]
    assert payload["custom_details"]["exception"].endswith("JobTimeoutException")
    wait_for_status(job, "failed")
