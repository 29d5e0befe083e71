"""A configuration error never breaks requests: real servers, a bad environment value.

The FastAPI app under uvicorn in its default lifespan mode cannot fail start-up (uvicorn
serves on after a lifespan error): it answers, logs the error once and sends nothing.
``--lifespan on`` fails start-up with the setting's name and value.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from pd_integrations.emulator import Emulator
from tests.delivery.test_lifecycle import (
    PROCESS_TIMEOUT,
    ROOT,
    emulator,
    free_port,
    server_env,
    serving,
)
from tests.transport import wait_until

__all__ = ["emulator"]

BAD = {"PAGERDUTY_SLOW_REQUEST_MS": "5s"}
MESSAGE = "PAGERDUTY_SLOW_REQUEST_MS must be a positive number of milliseconds"


def _stop(server: subprocess.Popen[str]) -> str:
    server.terminate()
    try:
        return server.communicate(timeout=PROCESS_TIMEOUT)[0]
    finally:
        if server.poll() is None:
            server.kill()


def test_fastapi_under_uvicorn_default_lifespan_serves_and_logs_once(emulator: Emulator) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "tests.processes.asgi_middleware_app:app",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with serving(command, server_env(emulator, **BAD), port) as server:
        for _ in range(3):
            response = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=30)
            assert response.status_code == 200
            assert response.json() == {"status": "ready"}
        output = _stop(server)
    assert output.count(MESSAGE) == 1, output
    assert (
        output.split(MESSAGE)[0].splitlines()[-1].startswith("ERROR:pd_integrations.starlette:")
    ), output
    assert "Traceback" not in output, output
    assert emulator.alerts() == []


def test_fastapi_under_uvicorn_lifespan_on_fails_start_up(emulator: Emulator) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "tests.processes.asgi_middleware_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
    ]  # fmt: skip
    server = subprocess.run(
        command,
        env=server_env(emulator, **BAD),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert server.returncode != 0
    assert MESSAGE in server.stderr
    assert "'5s'" in server.stderr
    assert "Application startup failed" in server.stderr


def test_django_under_gunicorn_serves_and_logs_once(emulator: Emulator) -> None:
    # gunicorn runs no system checks: the middleware reports the bad value once at
    # ERROR, turns alerting off for the process and leaves every request alone.
    port = free_port()
    project = ROOT / "example_projects" / "django_project"
    command = [
        sys.executable, "-m", "gunicorn", "pdexample.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", "1",
    ]  # fmt: skip
    # Not PAGERDUTY_SLOW_REQUEST_MS: the example sets SLOW_REQUEST_MS, which wins.
    env = server_env(emulator, PAGERDUTY_TIMEOUT="fast")
    with serving(command, env, port, "/products/", cwd=project) as server:
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/products/", timeout=30).status_code == 200
        # The example's tax bug: the 500 is Django's own, and nothing is sent.
        assert (
            httpx.get(f"http://127.0.0.1:{port}/orders/2/receipt/", timeout=30).status_code == 500
        )
        output = _stop(server)
    # The Django middleware's line (the example's Celery app reports the value too).
    errors = [
        line for line in output.splitlines() if "PAGERDUTY_TIMEOUT" in line and "E022" in line
    ]
    assert len(errors) == 1, output
    assert "'fast'" in errors[0]
    assert "Traceback" not in output, output


def test_django_runserver_refuses_to_start_with_the_check_code(emulator: Emulator) -> None:
    # runserver runs the system checks first: a bad setting stops it, naming the code.
    project = ROOT / "example_projects" / "django_project"
    server = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=project,
        env=server_env(emulator, PAGERDUTY_TIMEOUT="fast"),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert server.returncode != 0
    assert "pd_integrations.E022" in server.stderr
    assert "PAGERDUTY_TIMEOUT" in server.stderr


def test_two_workers_without_shared_state_warn_and_resolve_what_the_other_opened(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Per-process state under gunicorn -w 2: the worker that paged may never get the
    # probe that sees the dependency healthy again; the other one resolves it.
    flag = tmp_path / "payments-down"
    flag.touch()
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "tests.processes.wsgi_health_app:app",
        "--bind", f"127.0.0.1:{port}", "--workers", "2",
    ]  # fmt: skip
    env = server_env(emulator, HEALTH_FLAG=str(flag))
    with serving(command, env, port) as server:
        url = f"http://127.0.0.1:{port}/health"
        assert httpx.get(url, timeout=30).status_code == 503
        assert wait_until(lambda: len(emulator.alerts()) >= 1, PROCESS_TIMEOUT)
        flag.unlink()

        # Probes until every open alert is resolved, whichever worker each one reaches.
        def resolved() -> bool:
            assert httpx.get(url, timeout=30).status_code == 200
            return all(alert["status"] == "resolved" for alert in emulator.alerts())

        assert wait_until(resolved, PROCESS_TIMEOUT)
        output = _stop(server)
    assert "worker processes and alert state is kept per process" in output
    assert {alert["dedup_key"] for alert in emulator.alerts()} == {"health_check:payments"}
