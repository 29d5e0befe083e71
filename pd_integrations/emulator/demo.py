"""``pd-integrations demo``: a real FastAPI app alerting into a local emulator, in seconds.

It starts the emulator in-process, serves the FastAPI example app
(``example_projects/fastapi_app`` in a source checkout, shipped in the wheel as
``pd_integrations/emulator/demo_bookshop.py``: a small bookshop wired with
:class:`~pd_integrations.starlette.middleware.PagerDutyMiddleware`) with uvicorn on a loopback
port, its AlertManager pointed at the emulator, and sends it real HTTP requests: healthy
ones, a route with a bug, the same bug on many orders, a slow report, a payments outage
that the health check catches and then sees recover, a 404, and a deploy. Then the
bookshop's background work: a receipt task failing on every attempt while the mail
server is down (its retries page nobody, its failure for good opens one incident, its
next success resolves it), and a scheduled job that never starts (a watchdog finds the
run missed, the job's next run resolves it). Then a responder acknowledges the bug's
incident in the emulator's console, and the emulator sends the app a signed v3 webhook,
``incident.acknowledged``, which the app verifies with the secret the demo generated for
it. Then it shows what PagerDuty ended up with. Every alert comes from the library's own
middleware, health monitor, task monitor (the one the Celery integration drives) and
heartbeat monitors; the demo only makes requests and runs the jobs.

The jobs need no task queue: the demo is the worker, and makes the three calls of
:class:`~pd_integrations.celery.monitor.TaskMonitor` a queue's adapter makes, so it runs
with only the ``demo`` extra installed (neither Celery nor RQ).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from pd_integrations import signals
from pd_integrations.alerts import Alert, AlertManager
from pd_integrations.celery.monitor import TaskInfo, TaskMonitor
from pd_integrations.delivery.dispatcher import DispatchStats
from pd_integrations.events import Link
from pd_integrations.heartbeats import Heartbeats, MemoryStore, Trigger
from pd_integrations.monitor import EXCEPTION_ALERT

if TYPE_CHECKING:
    from .server import Emulator

DESCRIPTION = (
    "Start the local PagerDuty emulator and the FastAPI example app (a bookshop) wired "
    "to it, send the app real requests (healthy ones, a route with a bug hit by many "
    "orders, a slow report, a payments outage that fails the health check and recovers, "
    "a 404, a deploy), run a background task that is retried and then fails for good "
    "until the mail server is back, and a scheduled job that misses its run until it runs, "
    "acknowledge the bug's incident as a responder would in the console "
    "(the emulator then sends the app a signed incident.acknowledged webhook), and show "
    "the alerts PagerDuty would have."
)
EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example_projects" / "fastapi_app"
"""The example app the demo runs, in a source checkout."""
EXAMPLE_MODULE = "fastapi_example_app"
PACKAGED_EXAMPLE = Path(__file__).resolve().parent / "demo_bookshop.py"
"""The same file, where the wheel puts it (pyproject's ``force-include``)."""
_LOADED_AS = "_pd_integrations_demo_bookshop"
DEMO_ROUTING_KEY = "pdintegrationsdemo00000000000000"
DEMO_ENVIRONMENT = "demo"
DEMO_SOURCE = "bookshop"
DEMO_VERSION = "1.4.2"
STORM_SIZE = 20
# Every route of the app shares this threshold: low enough for the 1 s report, high enough
# that a busy machine does not make another request (a webhook delivery, say) "slow".
SLOW_REQUEST_MS = 800.0
REPORT_SECONDS = 1.0
CONFIRMATION_SECONDS = 0.05
HEALTH_INTERVAL = 10.0
MAX_HEALTH_PROBES = 5
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
FLUSH_TIMEOUT = 10.0
SUMMARY_WIDTH = 64
INSTALL_HINT = "pip install 'pd-integrations[demo]'"
WEBHOOK_PATH = "/pagerduty/webhooks"
WEBHOOK_SECRET_VAR = "PAGERDUTY_WEBHOOK_SECRET"  # noqa: S105 - a variable name
WEBHOOK_TIMEOUT = 15.0
TASK_NAME = "bookshop.tasks.send_receipt"
TASK_QUEUE = "emails"
TASK_RETRIES = 2
WORKER_NAME = "bookshop-worker-1"
MAIL_SERVER = "smtp.bookshop.example:587"
JOB_SLUG = "stock-sync"
JOB_INTERVAL = 1.0
"""Seconds between the scheduled job's runs: short, so that a missed run shows at once."""
JOB_GRACE = 0.5
WATCHDOG_ROUND = 0.05
MISSED_TIMEOUT = 15.0
"""How long after its grace the watchdog may take to find the job missed (a busy host)."""

Say = Callable[[str], None]
Exchange = tuple[str, str, int]
"""One request the demo made: method, path, response status."""


class DemoUnavailable(Exception):
    """The demo cannot run in this installation; the message says why (exit status 2)."""


class CreateApp(Protocol):
    """``create_app`` of the FastAPI example, as the demo calls it."""

    def __call__(
        self,
        *,
        alerts: AlertManager | None = None,
        slow_request_ms: float = ...,
        report_seconds: float | None = None,
        confirmation_seconds: float = ...,
        health_interval: float = ...,
    ) -> Any: ...


# -- the example app -----------------------------------------------------------------------


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    """Set (or, with ``None``, unset) environment variables for the ``with`` block."""
    saved = {name: os.environ.get(name) for name in values}

    def apply(settings: dict[str, str | None]) -> None:
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    apply(values)
    try:
        yield
    finally:
        apply(saved)


def _app_environ() -> contextlib.AbstractContextManager[None]:
    # The example reads its settings from the environment where create_app() has no
    # parameter for them: APP_ENV puts "demo" in every alert's details. Without a routing
    # key, the module-level ``app`` its import builds is disabled and can send nothing,
    # whatever key (or malformed one) this shell has exported.
    return _environ(
        APP_ENV=DEMO_ENVIRONMENT, PAGERDUTY_ROUTING_KEY=None, PAGERDUTY_INTEGRATION_KEY=None
    )


def load_example() -> CreateApp:
    """``create_app`` of the FastAPI example app; :class:`DemoUnavailable` if none.

    The checkout's copy first (an edit to the example shows at once), else the wheel's.
    """
    path = EXAMPLE_DIR / f"{EXAMPLE_MODULE}.py"
    if not path.is_file():
        path = PACKAGED_EXAMPLE
    if not path.is_file():
        raise DemoUnavailable(
            f"the demo runs the FastAPI example app, and neither "
            f"{EXAMPLE_DIR / f'{EXAMPLE_MODULE}.py'} (a source checkout) nor {path} (the "
            f"wheel) exists: reinstall pd-integrations, or clone the repository and run "
            f"`python3 dev.py demo` there"
        )
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise DemoUnavailable(
            f"the demo needs FastAPI and uvicorn ({error}): {INSTALL_HINT}"
        ) from None
    module = sys.modules.get(_LOADED_AS)
    if module is None or getattr(module, "__file__", None) != str(path):
        module = _import_file(_LOADED_AS, path)
    create_app: CreateApp = module.create_app
    return create_app


def _import_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DemoUnavailable(f"cannot import the FastAPI example app from {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: pydantic resolves the models' annotations through it.
    sys.modules[name] = module
    try:
        with _app_environ():
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class _QuietTracebacks(logging.Filter):
    """Drops uvicorn's traceback for each unhandled error: the alert is the point here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exception in ASGI application")


class ExampleAppError(Exception):
    """The example app did not start or stop in time."""


class Bookshop:
    """The FastAPI example app served by uvicorn on a loopback port, alerting to ``emulator``.

    ``start()`` returns once the app has completed its lifespan startup; ``stop()`` runs
    its lifespan shutdown (which stops the periodic health checks and closes the
    AlertManager, delivering what is queued). Also a context manager.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        create_app: CreateApp | None = None,
        routing_key: str = DEMO_ROUTING_KEY,
        port: int = 0,
        webhook_secret: str | None = None,
    ) -> None:
        self.emulator = emulator
        self._create_app = create_app
        self.routing_key = routing_key
        self.port = port
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(32)
        self.url = ""
        self._saved_secret: tuple[bool, str | None] | None = None
        self.alerts: AlertManager | None = None
        self.app: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._filter = _QuietTracebacks()

    @property
    def manager(self) -> AlertManager:
        if self.alerts is None:
            raise RuntimeError("the example app is not started")
        return self.alerts

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{WEBHOOK_PATH}"

    def _share_secret(self) -> None:
        # The app reads its webhook secret from the environment, whenever it likes: the
        # variable stays set while the app runs, and is restored by stop().
        if self._saved_secret is None:
            self._saved_secret = (
                WEBHOOK_SECRET_VAR in os.environ,
                os.environ.get(WEBHOOK_SECRET_VAR),
            )
        os.environ[WEBHOOK_SECRET_VAR] = self.webhook_secret

    def _restore_secret(self) -> None:
        if self._saved_secret is None:
            return
        was_set, value = self._saved_secret
        self._saved_secret = None
        if was_set and value is not None:
            os.environ[WEBHOOK_SECRET_VAR] = value
        else:
            os.environ.pop(WEBHOOK_SECRET_VAR, None)

    def start(self) -> Bookshop:
        """Serve the app; OSError if the port is taken, ExampleAppError if it fails.

        The emulator is set to send its signed webhooks to the app's webhook endpoint,
        with :attr:`webhook_secret`, which the app gets through its environment.
        """
        if self._server is not None:
            return self
        create_app = self._create_app or load_example()
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.alerts = AlertManager(
            self.routing_key,
            source=DEMO_SOURCE,
            dedup_key_prefix=DEMO_ENVIRONMENT,
            base_url=self.emulator.url,
            client_url=self.url,
        )
        logging.getLogger("uvicorn.error").addFilter(self._filter)
        self._share_secret()
        try:
            # The middleware builds its request monitor at lifespan startup, so the
            # environment stays set until the app has started.
            with _app_environ():
                self.app = create_app(
                    alerts=self.alerts,
                    slow_request_ms=SLOW_REQUEST_MS,
                    report_seconds=REPORT_SECONDS,
                    confirmation_seconds=CONFIRMATION_SECONDS,
                    health_interval=HEALTH_INTERVAL,
                )
                config = uvicorn.Config(
                    self.app,
                    lifespan="on",
                    http="h11",
                    ws="none",
                    loop="asyncio",
                    log_config=None,
                    access_log=False,
                    timeout_graceful_shutdown=5,
                )
                server = self._server = uvicorn.Server(config)
                self._thread = threading.Thread(
                    target=server.run,
                    kwargs={"sockets": [sock]},
                    name="pd-demo-bookshop",
                    daemon=True,
                )
                self._thread.start()
                self._wait_started(server, self._thread)
            self.emulator.set_webhook(self.webhook_url, self.webhook_secret)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _wait_started(server: Any, thread: threading.Thread) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise ExampleAppError("the example app failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise ExampleAppError(f"the example app did not start within {START_TIMEOUT} s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Shut the server down (lifespan included) and close the manager. Idempotent."""
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        if server is not None and self.emulator.webhook_url == self.webhook_url:
            self.emulator.set_webhook(None)
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT)
        if sock is not None:
            sock.close()
        if self.alerts is not None:
            self.alerts.close()  # the app's lifespan has closed it already: a no-op then
        logging.getLogger("uvicorn.error").removeFilter(self._filter)
        self._restore_secret()

    def __enter__(self) -> Bookshop:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# -- the traffic ---------------------------------------------------------------------------


def _open(manager: AlertManager) -> dict[str, Alert]:
    return {alert.dedup_key: alert for alert in manager.active_alerts()}


def _outcome(manager: AlertManager, before: dict[str, Alert], none: str = "no alert") -> str:
    """What the last requests did to the manager's open alerts, in a few words."""
    now = _open(manager)
    parts = [f"{alert.severity.value} alert" for key, alert in now.items() if key not in before]
    parts += ["alert resolved" for key in before if key not in now]
    return ", ".join(parts) or none


def generate_traffic(
    client: httpx.Client, shop: Bookshop, say: Say, *, storm: int = STORM_SIZE
) -> None:
    """Real requests to the running example app, and a deploy; progress through ``say``."""
    manager = shop.manager

    def order(country: str) -> int:
        response = client.post("/orders", json={"book_id": 1, "quantity": 2, "country": country})
        response.raise_for_status()
        order_id: int = response.json()["id"]
        return order_id

    before = _open(manager)
    statuses = [client.get(path).status_code for path in ("/", "/books", "/books/2")]
    response = client.post("/orders", json={"book_id": 2, "quantity": 1, "country": "DE"})
    statuses.append(response.status_code)
    statuses.append(client.get(f"/orders/{response.json()['id']}/invoice").status_code)
    statuses.append(client.get("/health").status_code)
    say(
        f"healthy traffic: browse, order, invoice, /health -> "
        f"{', '.join(map(str, statuses))} -> {_outcome(manager, before)}"
    )

    before = _open(manager)
    buggy = [order("IS") for _ in range(storm)]
    status = client.get(f"/orders/{buggy[0]}/invoice").status_code
    say(
        f"invoice bug: GET /orders/{buggy[0]}/invoice (an order to Iceland: no tax rate) "
        f"-> {status} -> {_outcome(manager, before)}"
    )
    if storm > 1:
        before = _open(manager)
        failed = sum(client.get(f"/orders/{n}/invoice").status_code >= 500 for n in buggy[1:])
        bugs = [a for a in manager.active_alerts() if a.alert_type == EXCEPTION_ALERT]
        occurrences = bugs[0].occurrences if len(bugs) == 1 else 0
        say(
            f"same bug on {storm - 1} more orders -> {failed} x 500 -> "
            f"{_outcome(manager, before, 'no new alert')}: "
            f"{occurrences} occurrences, {max(occurrences - 1, 0)} repeats not re-sent"
        )

    before = _open(manager)
    started = time.monotonic()
    status = client.get("/reports/sales").status_code
    elapsed = time.monotonic() - started
    say(
        f"slow report: GET /reports/sales -> {status} in {elapsed:.1f} s "
        f"(threshold {SLOW_REQUEST_MS:.0f} ms) -> {_outcome(manager, before)}"
    )

    before = _open(manager)
    client.post("/admin/payments/down").raise_for_status()
    status = client.post("/orders", json={"book_id": 1}).status_code
    probes = _probe_health(client, manager, before)
    say(
        f"payments down: POST /orders -> {status} (handled: no alert); "
        f"GET /health -> {', '.join(map(str, probes))} -> {_outcome(manager, before)}"
    )

    before = _open(manager)
    client.post("/admin/payments/up").raise_for_status()
    probes = _probe_health(client, manager, before)
    say(f"payments up: GET /health -> {', '.join(map(str, probes))} -> {_outcome(manager, before)}")

    before = _open(manager)
    statuses = [client.get(path).status_code for path in ("/books/999", "/no/such/page")]
    say(
        f"not found: GET /books/999, GET /no/such/page -> "
        f"{', '.join(map(str, statuses))} -> {_outcome(manager, before)}"
    )

    manager.change(
        f"Deployed {DEMO_SOURCE} v{DEMO_VERSION}",
        custom_details={"version": DEMO_VERSION, "previous_version": "1.4.1", "commit": "3f9c2e1"},
        links=[Link(f"https://github.com/example/bookshop/releases/v{DEMO_VERSION}", "Release")],
    )
    say(f"deploy: {DEMO_SOURCE} v{DEMO_VERSION} -> change event")


def _probe_health(
    client: httpx.Client, manager: AlertManager, before: dict[str, Alert]
) -> list[int]:
    """GET /health until the open alerts change (the check's threshold is crossed)."""
    statuses: list[int] = []
    for _ in range(MAX_HEALTH_PROBES):
        statuses.append(client.get("/health").status_code)
        if _open(manager).keys() != before.keys():
            break
    return statuses


# -- background jobs -----------------------------------------------------------------------


class Mailer:
    """The mail server the bookshop's ``send_receipt`` task talks to: down until fixed."""

    def __init__(self) -> None:
        self.reachable = False

    def send_receipt(self, order_id: int) -> None:
        """The task's body: e-mail the receipt of order ``order_id``."""
        if not self.reachable:
            raise ConnectionError(f"{MAIL_SERVER} refused the connection")


@dataclass(frozen=True)
class TaskRun:
    """One task as a worker ran it, retries included."""

    attempts: int
    error: BaseException | None
    """Why its last attempt failed; ``None`` when it succeeded."""
    alert: str | None
    """The dedup key of the alert its failure raised, if it raised one."""


def run_task(
    monitor: TaskMonitor,
    name: str,
    task: Callable[..., object],
    args: tuple[Any, ...],
    *,
    max_retries: int,
    queue: str = TASK_QUEUE,
) -> TaskRun:
    """Run ``task(*args)`` as a task queue's worker would, retrying a failed attempt up to
    ``max_retries`` times, and tell ``monitor`` each outcome.

    These are the three calls every task-queue adapter of the library makes (the Celery
    one from Celery's signals); the alerting decisions are all the monitor's.
    """
    task_id = str(uuid.uuid4())
    attempt = 1
    while True:

        def describe(attempt: int = attempt) -> TaskInfo:
            return TaskInfo(
                id=task_id,
                queue=queue,
                hostname=WORKER_NAME,
                attempt=attempt,
                max_retries=max_retries,
                args=args,
            )

        started = time.monotonic()
        try:
            task(*args)
        except Exception as error:
            if attempt > max_retries:
                runtime = time.monotonic() - started
                key = monitor.failed(name, error, describe, runtime=runtime)
                return TaskRun(attempt, error, key)
            monitor.retried(name, error, attempt, describe)
            attempt += 1
            continue
        monitor.succeeded(name, time.monotonic() - started, describe)
        return TaskRun(attempt, None, None)


def _incident(
    emulator: Emulator, shop: Bookshop, dedup_key: str | None, *, with_severity: bool = False
) -> str:
    """What the emulator holds for ``dedup_key`` once the app's manager has delivered."""
    if dedup_key is None:
        return "no alert"
    if not shop.manager.flush(FLUSH_TIMEOUT):
        return f"not delivered within {FLUSH_TIMEOUT:g} s"
    found = emulator.alerts(routing_key=shop.routing_key, dedup_key=dedup_key)
    if not found:
        return "no incident in the emulator"
    latest = found[-1]
    shown = f"incident #{latest['incident_number']} {latest['status']}"
    return f"{latest['severity']} alert, {shown}" if with_severity else shown


def watch_until_missed(monitors: Heartbeats, slug: str, timeout: float) -> bool:
    """Run watchdog rounds, as ``pd-integrations watchdog`` does, until one finds ``slug``'s
    run missed (and sends its alert); ``False`` if none did within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for found, action in monitors.watch_once() or ():
            if found == slug and isinstance(action, Trigger) and action.reason == "missed":
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(WATCHDOG_ROUND)


@dataclass(frozen=True)
class JobsOutcome:
    """The dedup keys of the alerts the background jobs raised (``None``: none raised)."""

    task_alert: str | None
    """The receipt task's failure, resolved by its next success."""
    task_attempts: int
    missed_alert: str | None
    """The scheduled job's missed run, resolved when the job ran."""


def run_jobs(emulator: Emulator, shop: Bookshop, say: Say) -> JobsOutcome:
    """The bookshop's worker and its scheduled job, alerting through the app's manager.

    A receipt task fails on every attempt while the mail server is down: its retries
    send nothing, its failure for good opens one incident, and its next success
    resolves it (the :class:`TaskMonitor` the Celery integration uses). A scheduled job
    that never starts is found missed by the watchdog (:class:`Heartbeats`, with a
    one-second interval), and resolved when the job runs and checks in.
    """
    manager = shop.manager
    monitor = TaskMonitor(
        manager,
        environment=DEMO_ENVIRONMENT,
        # The task's code lives here, in a module of the library: without this the
        # fingerprint would take it for library code rather than the application's.
        in_app_include=(__name__,),
    )
    mailer = Mailer()
    failing = run_task(monitor, TASK_NAME, mailer.send_receipt, (7,), max_retries=TASK_RETRIES)
    error = "succeeded" if failing.error is None else type(failing.error).__name__
    if failing.attempts > 1:
        attempts = ", ".join(str(attempt) for attempt in range(1, failing.attempts))
        say(
            f"task retried: {TASK_NAME}(7), mail server down -> {error} on attempts "
            f"{attempts} -> retried: no alert"
        )
    say(
        f"task failed for good: attempt {failing.attempts} -> {error} -> "
        f"{_incident(emulator, shop, failing.alert, with_severity=True)}"
    )
    mailer.reachable = True
    succeeding = run_task(monitor, TASK_NAME, mailer.send_receipt, (8,), max_retries=TASK_RETRIES)
    outcome = "" if succeeding.error is None else f" -> {type(succeeding.error).__name__}"
    say(
        f"task succeeds: {TASK_NAME}(8), mail server back{outcome} -> "
        f"{_incident(emulator, shop, failing.alert)}"
    )

    # The demo runs the watchdog's rounds itself rather than in a thread: it stops
    # watching once the job has run, so a second missed run cannot follow the tour.
    monitors = Heartbeats(manager, store=MemoryStore(), watchdog=False)
    key = monitors.dedup_key(JOB_SLUG)
    try:

        @monitors.job(JOB_SLUG, interval=JOB_INTERVAL, grace=JOB_GRACE)
        def sync_stock() -> None:
            """The scheduled job: nothing to do in the demo but to run."""

        declared = time.monotonic()
        missed = watch_until_missed(monitors, JOB_SLUG, JOB_INTERVAL + JOB_GRACE + MISSED_TIMEOUT)
        found = (
            f"missed after {time.monotonic() - declared:.1f} s -> "
            f"{_incident(emulator, shop, key, with_severity=True)}"
            if missed
            else f"not found missed within {MISSED_TIMEOUT:g} s"
        )
        say(
            f"job missed: {JOB_SLUG}, due every {JOB_INTERVAL:g} s (grace {JOB_GRACE:g} s, "
            f"short for the demo), never starts -> watchdog: {found}"
        )
        sync_stock()
        say(f"job runs: {JOB_SLUG} checks in ok -> {_incident(emulator, shop, key)}")
    finally:
        monitors.close()
    return JobsOutcome(failing.alert, failing.attempts, key if missed else None)


def acknowledge_in_console(
    emulator: Emulator, shop: Bookshop, say: Say, *, timeout: float = WEBHOOK_TIMEOUT
) -> dict[str, Any] | None:
    """Acknowledge the invoice bug's incident as a responder would, and wait for the
    ``incident.acknowledged`` webhook to reach the app; that delivery (None if no
    incident was open)."""
    bugs = [
        alert
        for alert in emulator.alerts("triggered", routing_key=shop.routing_key)
        if (alert.get("custom_details") or {}).get("alert_type") == EXCEPTION_ALERT
    ]
    if not bugs:
        say("responder: no open incident to acknowledge")
        return None
    incident = bugs[0]
    # What the console's Acknowledge button does: the same request, the same state change.
    with httpx.Client(base_url=emulator.url, timeout=10.0, trust_env=False) as console:
        console.post(f"/api/alerts/{incident['id']}/acknowledge").raise_for_status()
    try:
        deliveries = emulator.wait_for_webhooks(1, timeout, event_type="incident.acknowledged")
    except TimeoutError:
        say(
            f"responder: acknowledged incident #{incident['incident_number']} in the console"
            f" -> no incident.acknowledged webhook finished within {timeout:g} s"
        )
        return None
    delivery = deliveries[-1]
    if delivery["status"] == "delivered":
        outcome = (
            f"the app received incident.acknowledged (HTTP {delivery['status_code']}, "
            f"signature verified)"
        )
    else:
        answer = delivery["status_code"] or delivery["error"]
        outcome = f"webhook to the app {delivery['status']} ({answer})"
    say(
        f"responder: acknowledged incident #{incident['incident_number']} in the console "
        f"-> {outcome}"
    )
    return delivery


# -- running it ----------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What the emulator received from one demo run, and the dispatcher's counts."""

    url: str
    console_url: str
    app_url: str
    alerts: list[dict[str, Any]]
    change_events: list[dict[str, Any]]
    stats: DispatchStats
    suppressed: int
    flushed: bool
    occurrences: dict[str, int] = field(default_factory=dict)
    """Occurrences counted by the manager, per dedup key of an alert it still has open."""
    requests: list[Exchange] = field(default_factory=list)
    """Every request the demo made to the app, in order."""
    acknowledged: dict[str, Any] | None = None
    """The ``incident.acknowledged`` webhook delivery to the app, if one finished."""
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    """Every webhook delivery from the emulator to the app."""
    jobs: JobsOutcome | None = None
    """The alerts of the background task and the scheduled job."""


def run_demo(
    emulator: Emulator, shop: Bookshop, *, say: Say = print, storm: int = STORM_SIZE
) -> DemoResult:
    """Send the traffic to the running ``shop``, wait for delivery; what the emulator got."""
    manager = shop.manager
    suppressed = 0
    exchanges: list[Exchange] = []

    def count_suppressed(sender: object, **extra: object) -> None:
        nonlocal suppressed
        suppressed += 1

    def record(response: httpx.Response) -> None:
        request = response.request
        exchanges.append((request.method, request.url.path, response.status_code))

    with (
        signals.event_suppressed.connected_to(count_suppressed, sender=manager),
        httpx.Client(
            base_url=shop.url,
            timeout=30.0,
            # A proxy from the environment must not see loopback traffic.
            trust_env=False,
            # uvicorn closes a connection once an unhandled error has passed through it;
            # a kept-alive connection would race that close on the next request.
            limits=httpx.Limits(max_keepalive_connections=0),
            event_hooks={"response": [record]},
        ) as client,
    ):
        generate_traffic(client, shop, say, storm=storm)
    jobs = run_jobs(emulator, shop, say)
    flushed = manager.flush(FLUSH_TIMEOUT)
    occurrences = {alert.dedup_key: alert.occurrences for alert in manager.active_alerts()}
    stats = manager.stats()
    say(f"delivered: {stats.sent} events sent to the emulator")
    acknowledged = acknowledge_in_console(emulator, shop, say)
    return DemoResult(
        url=emulator.url,
        console_url=emulator.console_url,
        app_url=shop.url,
        alerts=emulator.alerts(routing_key=shop.routing_key),
        change_events=[
            event
            for event in emulator.events()
            if event["type"] == "change" and event["body"].get("routing_key") == shop.routing_key
        ],
        stats=stats,
        suppressed=suppressed,
        flushed=flushed,
        occurrences=occurrences,
        requests=exchanges,
        acknowledged=acknowledged,
        webhooks=[d for d in emulator.webhook_deliveries() if d["url"] == shop.webhook_url],
        jobs=jobs,
    )


# -- output --------------------------------------------------------------------------------


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def alerts_table(result: DemoResult) -> str:
    """The alerts as a fixed-width table for a terminal."""
    header = ("STATUS", "SEVERITY", "TRIGGERS", "OCCURRENCES", "SUMMARY", "DEDUP KEY")
    rows = [header]
    for alert in result.alerts:
        occurrences = result.occurrences.get(alert["dedup_key"])
        rows.append(
            (
                str(alert["status"]),
                str(alert["severity"]),
                str(alert["trigger_count"]),
                "-" if occurrences is None else str(occurrences),
                _clip(str(alert["summary"]), SUMMARY_WIDTH),
                str(alert["dedup_key"]),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    numeric = {2, 3}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric and row is not header else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def stats_line(result: DemoResult) -> str:
    stats = result.stats
    return (
        f"Dispatcher: {stats.sent} sent, {stats.retried} retried, {stats.failed} failed, "
        f"{stats.dropped} dropped, {stats.coalesced} coalesced in the queue, "
        f"{stats.queued} still queued; {result.suppressed} repeats of open alerts suppressed"
    )


def _alert_json(alert: dict[str, Any], occurrences: int | None) -> dict[str, Any]:
    keep = (
        "id",
        "status",
        "severity",
        "summary",
        "source",
        "component",
        "dedup_key",
        "trigger_count",
        "first_seen",
        "last_seen",
        "acknowledged_at",
        "resolved_at",
        "custom_details",
        "links",
    )
    return {**{name: alert.get(name) for name in keep}, "occurrences": occurrences}


def to_json(result: DemoResult) -> dict[str, Any]:
    return {
        "emulator": result.url,
        "console": result.console_url,
        "app": result.app_url,
        "alerts": [
            _alert_json(alert, result.occurrences.get(alert["dedup_key"]))
            for alert in result.alerts
        ],
        "change_events": [
            {
                "summary": event["body"].get("payload", {}).get("summary"),
                "source": event["body"].get("payload", {}).get("source"),
                "received_at": event["received_at"],
            }
            for event in result.change_events
        ],
        "requests": [
            {"method": method, "path": path, "status": status}
            for method, path, status in result.requests
        ],
        "stats": {**asdict(result.stats), "suppressed": result.suppressed},
        "delivered": result.flushed,
        "webhooks": [
            {
                name: delivery[name]
                for name in ("event_type", "incident_id", "status", "status_code", "attempts")
            }
            for delivery in result.webhooks
        ],
    }


def print_report(result: DemoResult) -> None:
    print()
    print(f"PagerDuty now has these alerts ({result.url}):")
    print()
    print(alerts_table(result))
    print()
    for event in result.change_events:
        summary = event["body"].get("payload", {}).get("summary")
        print(f"Change event: {summary} (at {event['received_at']})")
    print(stats_line(result))
    if result.webhooks:
        print(webhooks_line(result))


def webhooks_line(result: DemoResult) -> str:
    """The signed webhooks the emulator sent the app, in one line."""
    parts = [f"{d['event_type']} ({d['status_code'] or d['status']})" for d in result.webhooks]
    return f"Webhooks to the app: {', '.join(parts)}"


# -- the command ---------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="emulator interface (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="emulator port (default 0: any free port)"
    )
    parser.add_argument(
        "--app-port",
        type=_port,
        default=0,
        help="port of the example app, on 127.0.0.1 (default 0: any free port)",
    )
    parser.add_argument(
        "--storm",
        type=int,
        default=STORM_SIZE,
        metavar="N",
        help=f"how many orders hit the invoice bug (default {STORM_SIZE})",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the emulator's console and the example app up until Ctrl-C",
    )
    parser.add_argument("--json", action="store_true", help="print the alerts as JSON")


def _error(message: str) -> None:
    print(f"pd-integrations: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """The ``demo`` command with parsed arguments; returns the exit status."""
    if args.storm < 1:
        _error("--storm must be at least 1")
        return 2
    try:
        create_app = load_example()
    except DemoUnavailable as error:
        _error(str(error))
        return 2
    # With --json, stdout carries only the JSON document.
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(f"  {line}", file=out, flush=True)

    try:
        from .server import Emulator  # the server loads only when the demo runs

        emulator = Emulator(args.host, args.port).start()
    except OSError as error:
        _error(f"cannot start the emulator: {error}")
        return 1
    with emulator:
        print(f"Emulator running at {emulator.url}", file=out, flush=True)
        shop = Bookshop(emulator, create_app=create_app, port=args.app_port)
        try:
            shop.start()
        except (OSError, ExampleAppError) as error:
            _error(f"cannot start the example app: {error}")
            return 1
        with shop:
            print(
                f"Example app (example_projects/fastapi_app) running at {shop.url}, "
                f"alerting to the emulator",
                file=out,
                flush=True,
            )
            result = run_demo(emulator, shop, say=say, storm=args.storm)
            if args.json:
                print(json.dumps(to_json(result), indent=2, ensure_ascii=False))
            else:
                print_report(result)
                print(insights_summary(emulator))
            if not result.flushed:
                _error("some events were not delivered in time")
                return 1
            if args.keep_running:
                print(
                    f"Console: {emulator.console_url} (the alerts, as PagerDuty has them)",
                    file=out,
                )
                print(
                    f"App: {shop.url}/ (the bookshop; its API at /docs, its health checks "
                    f"also run every {HEALTH_INTERVAL:.0f} s)",
                    file=out,
                )
                print(
                    f"Webhooks: {shop.webhook_url} (signed; acknowledge or resolve in the "
                    f"console and watch its Webhooks panel)",
                    file=out,
                )
                print("Press Ctrl-C to stop.", file=out, flush=True)
                _wait_for_interrupt()
    return 0


def insights_summary(emulator: Emulator, *, hours: float = 1.0) -> str:
    """The demo's last words: ``pd-integrations report`` over what it just paged.

    Read through the emulator's REST API like any PagerDuty account; a failure to read it
    is one line, never the end of the demo.
    """
    from datetime import UTC, datetime, timedelta

    from pd_integrations.errors import PagerDutyError
    from pd_integrations.insights import build_report, render_text
    from pd_integrations.rest.client import RestClient

    now = datetime.now(UTC)
    try:
        # An explicit transport: no proxy from the environment between us and loopback.
        transport = httpx.HTTPTransport()
        with RestClient("demo", base_url=emulator.rest_url, transport=transport) as client:
            report = build_report(
                client,
                since=now - timedelta(hours=hours),
                until=now + timedelta(minutes=1),
                sla=timedelta(minutes=30),
            )
    except PagerDutyError as error:
        return f"(no insights report: {error})"
    return (
        "\nInsights (pd-integrations report --since 1h --sla 30m, against the emulator):\n"
        + render_text(report, alerts=3)
    )


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    else:
        previous = {}
    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pd_integrations.emulator.demo``: the same as ``pd-integrations demo``."""
    parser = argparse.ArgumentParser(prog="pd-integrations demo", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
