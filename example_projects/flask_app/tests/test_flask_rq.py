"""The example's RQ queue: a real worker with the library's Worker class, on a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("rq")

from pd_integrations.emulator import Emulator
from tests.redis_server import RedisServer, redis_binary

APP_DIR = Path(__file__).resolve().parents[1]
ROOT = APP_DIR.parents[1]
sys.path.insert(0, str(APP_DIR))

from flask_example_app import create_app  # noqa: E402

ROUTING_KEY = "pantryrqtestroutingkey0000000001"
TIMEOUT = 60.0


@pytest.fixture
def worker_env() -> Iterator[tuple[RedisServer, Emulator]]:
    if redis_binary() is None:
        pytest.skip("no redis-server")
    with RedisServer() as server, Emulator(port=0, seed=5) as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
        env.update(
            PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
            PAGERDUTY_EVENTS_BASE_URL=emulator.url,
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(APP_DIR), str(ROOT), os.environ.get("PYTHONPATH")])
            ),
        )
        rq_command = str(Path(sys.executable).parent / "rq")
        worker = subprocess.Popen(  # noqa: S603 - our own rq worker
            [
                rq_command,
                "worker",
                "-w",
                "pd_integrations.rq.Worker",
                "--url",
                server.url,
                "pantry",
            ],
            env=env,
            cwd=APP_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield server, emulator
        finally:
            worker.kill()
            worker.wait(TIMEOUT)


def test_a_restock_failing_for_good_pages_once_and_the_next_one_resolves(
    worker_env: tuple[RedisServer, Emulator],
) -> None:
    server, emulator = worker_env
    app = create_app({"TESTING": True, "RQ_REDIS_URL": server.url})
    client = app.test_client()
    assert client.post("/jobs/restock", json={"supplier": "closed"}).status_code == 202
    [trigger] = emulator.wait_for_events(1, timeout=TIMEOUT)
    assert trigger["type"] == "trigger"
    assert trigger["body"]["payload"]["custom_details"]["function"] == "pantry_jobs.restock"
    assert client.post("/jobs/restock", json={}).status_code == 202
    events = emulator.wait_for_events(2, timeout=TIMEOUT)
    assert [event["type"] for event in events] == ["trigger", "resolve"]
