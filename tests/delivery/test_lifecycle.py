from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pd_integrations.delivery import lifecycle
from pd_integrations.delivery.dispatcher import (
    DEFAULT_EXIT_FLUSH_TIMEOUT,
    Dispatcher,
    resolve_flush_timeout,
)
from pd_integrations.emulator import Emulator
from pd_integrations.errors import ConfigurationError
from tests.transport import ScriptedTransport, wait_until

from .test_spool import rows

ROOT = Path(__file__).resolve().parents[2]
ROUTING_KEY = "shutd0wntestroutingkey0000000001"
# Generous: a loaded 2-core machine starts servers slowly. Never a timing assertion.
PROCESS_TIMEOUT = 120.0
ALERTS = 6
# Slow enough that the alerts are still queued when SIGTERM arrives.
LATENCY = 0.5


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, rate_limit_per_minute=None, seed=6) as emulator:
        yield emulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    # Not DJANGO_SETTINGS_MODULE either: pytest-django set it to the tests' settings, and
    # a Django server started here must read its own project's.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAGERDUTY_", "APP_")) and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        PYTHONUNBUFFERED="1",
        PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
        PAGERDUTY_EVENTS_BASE_URL=emulator.url,
        PAGERDUTY_FLUSH_TIMEOUT="60",
        APP_NAME="shutdown-test",
    )
    env.update(extra)
    return env


def start(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str], port: int, path: str = "/ready") -> None:
    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{process.communicate()[0]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(answers, PROCESS_TIMEOUT), "the server did not come up"


@contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, ready_path: str = "/ready", cwd: Path = ROOT
) -> Iterator[subprocess.Popen[str]]:
    """The server, once it answers on ``ready_path``; killed afterwards if still running."""
    server = start(command, env, cwd)
    try:
        wait_ready(server, port, ready_path)
        yield server
    finally:
        if server.poll() is None:
            server.kill()


def terminate_and_collect(
    process: subprocess.Popen[str], emulator: Emulator, count: int
) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        output = process.communicate(timeout=PROCESS_TIMEOUT)[0]
    finally:
        if process.poll() is None:
            process.kill()
    emulator.wait_for_alerts(count, timeout=PROCESS_TIMEOUT)
    return process.returncode, output


def queue_alerts(port: int, count: int) -> None:
    for number in range(count):
        response = httpx.get(f"http://127.0.0.1:{port}/alert/{number}", timeout=30)
        assert response.text == "queued"


def assert_every_alert_arrived(emulator: Emulator, count: int, output: str) -> None:
    summaries = sorted(alert["summary"] for alert in emulator.alerts())
    assert summaries == sorted(f"problem {n}" for n in range(count)), output


# -- servers -------------------------------------------------------------------------------


def test_sigterm_under_uvicorn_run_flushes_the_queue(emulator: Emulator) -> None:
    emulator.set_faults(latency=LATENCY)
    port = free_port()
    command = [sys.executable, "-m", "tests.processes.asgi_app", str(port)]
    with serving(command, server_env(emulator), port) as server:
        queue_alerts(port, ALERTS)
        returncode, output = terminate_and_collect(server, emulator, ALERTS)
    assert_every_alert_arrived(emulator, ALERTS, output)
    # uvicorn raises SIGTERM again after its graceful shutdown: the process still ends
    # the way SIGTERM ends it, after the flush.
    assert returncode == -signal.SIGTERM, output


def test_sigterm_under_the_uvicorn_cli_flushes_through_the_lifespan(
    emulator: Emulator,
) -> None:
    emulator.set_faults(latency=LATENCY)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.processes.asgi_owned_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with serving(command, server_env(emulator), port) as server:
        assert httpx.get(f"http://127.0.0.1:{port}/boom", timeout=30).status_code == 500
        _, output = terminate_and_collect(server, emulator, 1)
    (alert,) = emulator.alerts()
    assert "RuntimeError" in alert["summary"], output


@pytest.mark.parametrize(
    ("worker_class", "app", "exit_status"),
    [
        # Sync workers leave their loop and exit normally: atexit flushes.
        ("sync", "tests.processes.wsgi_app:app", 0),
        # UvicornWorker re-raises SIGTERM with the default action: the library's handler.
        ("uvicorn.workers.UvicornWorker", "tests.processes.asgi_app:app", None),
    ],
)
def test_sigterm_under_gunicorn_flushes_the_queue(
    emulator: Emulator, worker_class: str, app: str, exit_status: int | None
) -> None:
    emulator.set_faults(latency=LATENCY)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--worker-class",
        worker_class,
        "--graceful-timeout",
        "90",
        "--bind",
        f"127.0.0.1:{port}",
        app,
    ]
    with serving(command, server_env(emulator), port) as server:
        queue_alerts(port, ALERTS)
        returncode, output = terminate_and_collect(server, emulator, ALERTS)
    assert_every_alert_arrived(emulator, ALERTS, output)
    if exit_status is not None:
        assert returncode == exit_status, output


def test_sigterm_under_django_runserver_flushes_the_queue(emulator: Emulator) -> None:
    # --noreload: SIGTERM keeps its default action there, which would end the process
    # without exit handlers; the app's ready() installed the flush in the main thread.
    emulator.set_faults(latency=LATENCY)
    port = free_port()
    project = ROOT / "example_projects" / "django_project"
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with serving(command, server_env(emulator), port, "/products/", cwd=project) as server:
        # A US order hits the example's tax bug: a 500 and a queued critical alert.
        response = httpx.get(f"http://127.0.0.1:{port}/orders/2/receipt/", timeout=30)
        assert response.status_code == 500
        returncode, output = terminate_and_collect(server, emulator, 1)
    (alert,) = emulator.alerts()
    assert "KeyError" in alert["summary"], output
    assert returncode == -signal.SIGTERM, output


def test_sigterm_leaves_what_it_could_not_send_in_the_spool(
    emulator: Emulator, tmp_path: Path
) -> None:
    spool = tmp_path / "pagerduty.spool"
    emulator.set_faults(outage=True)
    port = free_port()
    env = server_env(emulator, PAGERDUTY_SPOOL=str(spool), PAGERDUTY_FLUSH_TIMEOUT="0.5")
    command = [sys.executable, "-m", "tests.processes.asgi_app", str(port)]
    with serving(command, env, port) as server:
        queue_alerts(port, ALERTS)
        assert wait_until(lambda: rows(spool, ROUTING_KEY) == ALERTS, PROCESS_TIMEOUT)
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=PROCESS_TIMEOUT)[0]
    assert f"closing with {ALERTS} PagerDuty event(s) not delivered" in output
    assert "stay in the spool" in output
    assert rows(spool, ROUTING_KEY) == ALERTS
    assert emulator.alerts() == []


# -- the handler itself ------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading
    from pd_integrations.delivery import lifecycle
    from pd_integrations.client import EventsClient
    from pd_integrations.delivery.dispatcher import Dispatcher
    from pd_integrations.events import TriggerEvent

    if sys.argv[2] == "foreign":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
    client = EventsClient("{key}", source="script", base_url=sys.argv[1])
    dispatcher = Dispatcher(client, rate_limit=None)
    print("INSTALLED", lifecycle.installed(), flush=True)
    for n in range({alerts}):
        dispatcher.submit(TriggerEvent(f"problem {{n}}", "error", "script", dedup_key=str(n)))
    print("QUEUED", flush=True)
    threading.Event().wait()
    """
).format(key=ROUTING_KEY, alerts=ALERTS)


def run_script(emulator: Emulator, mode: str) -> tuple[subprocess.Popen[str], str]:
    """The script, once it has queued its alerts, and whether it installed the handler."""
    process = start(
        [sys.executable, "-c", SCRIPT, emulator.url, mode],
        server_env(emulator),
    )
    assert process.stdout is not None
    lines = [process.stdout.readline(), process.stdout.readline()]
    assert lines[1].strip() == "QUEUED", lines
    return process, lines[0].strip()


def test_a_plain_script_flushes_on_sigterm_and_still_dies_of_it(emulator: Emulator) -> None:
    emulator.set_faults(latency=LATENCY)
    process, installed = run_script(emulator, "default")
    assert installed == "INSTALLED True"
    returncode, output = terminate_and_collect(process, emulator, ALERTS)
    assert_every_alert_arrived(emulator, ALERTS, output)
    assert returncode == -signal.SIGTERM


def test_an_existing_sigterm_handler_is_left_alone(emulator: Emulator) -> None:
    process, installed = run_script(emulator, "foreign")
    assert installed == "INSTALLED False"
    # The app's handler exits normally, so the atexit flush delivers the queue.
    returncode, output = terminate_and_collect(process, emulator, ALERTS)
    assert returncode == 3
    assert_every_alert_arrived(emulator, ALERTS, output)


@pytest.mark.usefixtures("default_sigterm")
def test_install_only_replaces_the_default_disposition_and_only_in_the_main_thread() -> None:
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(lifecycle.install()))
    thread.start()
    thread.join(30)
    assert results == [False]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert lifecycle.install()
    assert lifecycle.installed()
    assert lifecycle.install()  # idempotent

    def mine(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, mine)
    assert not lifecycle.install()
    assert signal.getsignal(signal.SIGTERM) is mine
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert not lifecycle.install()


@pytest.mark.usefixtures("default_sigterm")
def test_a_handler_that_chains_to_ours_gets_the_flush_and_keeps_control(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flushed: list[str] = []
    # Only this test's flush: the real one would close every dispatcher in this process.
    monkeypatch.setattr(lifecycle, "_flush", lambda: flushed.append("flushed"))
    monkeypatch.setattr(lifecycle, "_budget", lambda: 30.0)
    assert lifecycle.install()
    ours = signal.getsignal(signal.SIGTERM)
    assert callable(ours)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # someone else's handler is current
    ours(signal.SIGTERM, None)  # as a chaining handler calls it: it must return
    assert flushed == ["flushed"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_the_dispatcher_registers_its_exit_flush() -> None:
    transport = ScriptedTransport()
    from pd_integrations.client import EventsClient

    client = EventsClient(ROUTING_KEY, source="t", transport=transport)
    dispatcher = Dispatcher(client, rate_limit=None, exit_flush_timeout=3, handle_sigterm=False)
    assert lifecycle._budget() >= 3
    dispatcher.close()
    assert lifecycle._flush is not None


# -- the flush timeout ---------------------------------------------------------------------


def test_the_flush_timeout_comes_from_the_argument_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAGERDUTY_FLUSH_TIMEOUT", raising=False)
    assert resolve_flush_timeout() == DEFAULT_EXIT_FLUSH_TIMEOUT
    assert resolve_flush_timeout(7) == 7.0
    monkeypatch.setenv("PAGERDUTY_FLUSH_TIMEOUT", "12.5")
    assert resolve_flush_timeout() == 12.5
    assert resolve_flush_timeout(0) == 0.0
    monkeypatch.setenv("PAGERDUTY_FLUSH_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="PAGERDUTY_FLUSH_TIMEOUT"):
        resolve_flush_timeout()
    with pytest.raises(ConfigurationError, match=">= 0"):
        resolve_flush_timeout(-1)
