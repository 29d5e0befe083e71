"""Hello-world apps and the direct-call drivers used by ``bench_overhead.py``.

Each framework has the same two routes: ``GET /`` answers ``Hello, world!`` and
``GET /error`` raises ``RuntimeError``. :func:`build` makes one of them in one of the
variants below; it must be called at most once per process for Django (settings are
global) and for ``sentry`` (sentry-sdk patches framework classes process-wide).

- ``bare``: the framework alone.
- ``pd``: with this library, configured from the environment like an app in
  production (routing key, Events API base URL, a slow-request threshold).
- ``sentry``: with sentry-sdk, errors only (no tracing), its transport replaced by one
  that drops envelopes, so no network I/O competes with the measured requests.
- ``control``: the bare app again, in another process: how far two identical
  processes differ, the noise floor of a comparison between processes.
- ``noop``: (ASGI only) a do-nothing ASGI middleware that only wraps ``send``: the floor
  any request-watching middleware starts from.

The drivers call the app directly, with no server and no test client: ASGI apps with a
hand-made scope, ``receive`` and ``send`` on one asyncio loop; WSGI apps as
``app(environ, start_response)`` with a prebuilt environ (copied per call), consuming
the body and calling its ``close()``. :func:`emulator_process` starts the bundled
emulator in a child process for every benchmark here.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

FRAMEWORKS = ("starlette", "fastapi", "flask", "django")
ASGI_FRAMEWORKS = frozenset({"starlette", "fastapi"})
VARIANTS = ("bare", "pd", "sentry", "noop", "control")
HELLO = b"Hello, world!"

# sentry-sdk's DSN points at a closed loopback port; its transport is replaced anyway.
SENTRY_DSN = "http://public@127.0.0.1:9/1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_HEADERS: tuple[tuple[str, str], ...] = (
    ("host", "localhost"),
    ("user-agent", "bench-overhead/1.0"),
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate"),
)


# -- the variants' extras ------------------------------------------------------------------


class NoopASGIMiddleware:
    """Watches ``send`` and does nothing else: what any ASGI request watcher costs at least."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            await send(message)

        await self.app(scope, receive, watched)


@dataclass
class Probe:
    """What a variant exposes for checks: sentry's dropped envelopes, for instance."""

    sentry_envelopes: list[object] = field(default_factory=list)


def init_sentry(framework: str, probe: Probe) -> None:
    """sentry-sdk as its docs suggest, errors only: no traces, no profiles."""
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.transport import Transport

    class DropTransport(Transport):
        """Counts envelopes and drops them: sentry does all its work but the upload."""

        def capture_envelope(self, envelope: Any) -> None:
            probe.sentry_envelopes.append(envelope)
            if len(probe.sentry_envelopes) > 100:
                del probe.sentry_envelopes[:50]

    integrations: list[Integration]
    if framework == "starlette":
        from sentry_sdk.integrations.starlette import StarletteIntegration

        integrations = [StarletteIntegration()]
    elif framework == "fastapi":
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration

        integrations = [StarletteIntegration(), FastApiIntegration()]
    elif framework == "flask":
        from sentry_sdk.integrations.flask import FlaskIntegration

        integrations = [FlaskIntegration()]
    else:
        from sentry_sdk.integrations.django import DjangoIntegration

        integrations = [DjangoIntegration()]
    sentry_sdk.init(
        dsn=SENTRY_DSN,
        traces_sample_rate=None,  # tracing off: errors only
        integrations=integrations,
        default_integrations=True,
        transport=DropTransport(),
    )


# -- the apps ------------------------------------------------------------------------------


def _starlette(variant: str) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def hello(request: Request) -> Response:
        return PlainTextResponse("Hello, world!")

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/", hello), Route("/error", boom)])
    _add_asgi_middleware(app, variant)
    return app


def _fastapi(variant: str) -> ASGIApp:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"message": "Hello, world!"}

    @app.get("/error")
    async def boom() -> dict[str, str]:
        raise RuntimeError("boom")

    _add_asgi_middleware(app, variant)
    return app


def _add_asgi_middleware(app: Any, variant: str) -> None:
    if variant == "pd":
        from pd_integrations.starlette import PagerDutyMiddleware

        app.add_middleware(PagerDutyMiddleware)
    elif variant == "noop":
        app.add_middleware(NoopASGIMiddleware)


def _flask(variant: str) -> WSGIApp:
    from flask import Flask

    app = Flask("bench_flask")

    @app.get("/")
    def hello() -> str:
        return "Hello, world!"

    @app.get("/error")
    def boom() -> str:
        raise RuntimeError("boom")

    if variant == "pd":
        from pd_integrations.flask import PagerDuty

        PagerDuty(app)
    wsgi: WSGIApp = app
    return wsgi


class DjangoURLConf:
    """``ROOT_URLCONF`` may be any object with ``urlpatterns``; filled in by :func:`_django`."""

    urlpatterns: ClassVar[list[Any]] = []


def _django(variant: str) -> WSGIApp:
    import django
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    def hello(request: HttpRequest) -> HttpResponse:
        return HttpResponse(HELLO)

    def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    DjangoURLConf.urlpatterns = [path("", hello), path("error", boom)]
    installed: list[str] = []
    middleware: list[str] = []
    extra: dict[str, Any] = {}
    if variant == "pd":
        installed.append("pd_integrations.django")
        middleware.append("pd_integrations.django.middleware.PagerDutyMiddleware")
        # The routing key and base URL come from the environment, as for the others.
        extra["PAGERDUTY"] = {"SLOW_REQUEST_MS": 2000}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-overhead-not-secret",
        ROOT_URLCONF=DjangoURLConf,
        ALLOWED_HOSTS=["localhost"],
        INSTALLED_APPS=installed,
        MIDDLEWARE=middleware,
        DATABASES={},
        USE_TZ=True,
        **extra,
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    handler: WSGIApp = WSGIHandler()
    return handler


_BUILDERS: dict[str, Callable[[str], Any]] = {
    "starlette": _starlette,
    "fastapi": _fastapi,
    "flask": _flask,
    "django": _django,
}


def build(framework: str, variant: str) -> tuple[Any, Probe]:
    """The app for ``framework`` in ``variant``; the environment must already be set."""
    if framework not in _BUILDERS:
        raise ValueError(f"unknown framework {framework!r}")
    if variant not in VARIANTS or (variant == "noop" and framework not in ASGI_FRAMEWORKS):
        raise ValueError(f"unknown variant {variant!r} for {framework}")
    # A handler on the root logger: Flask then adds no stderr handler of its own, and
    # logging's last-resort handler stays quiet. Error records are still created and
    # passed to every handler (sentry-sdk's logging hook sees them), just not printed.
    logging.getLogger().addHandler(logging.NullHandler())
    probe = Probe()
    if variant == "sentry":
        init_sentry(framework, probe)
    return _BUILDERS[framework]("bare" if variant == "control" else variant), probe


def build_twin(framework: str) -> Any:
    """A second, bare app in this process, after :func:`build` made the ``pd`` one.

    Our library patches nothing process-wide, so the bare app next to it is the same as
    in a process of its own; comparing the two in one process removes the differences
    between processes (memory layout, a noisy neighbour) from the measured overhead.
    """
    if framework == "django":
        from django.core.handlers.wsgi import WSGIHandler
        from django.test.utils import override_settings

        # The handler reads MIDDLEWARE once, when it is built.
        with override_settings(MIDDLEWARE=[]):
            handler: WSGIApp = WSGIHandler()
        return handler
    return _BUILDERS[framework]("bare")


# -- drivers -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 0
    body: bytes = b""
    error: str | None = None


class Driver:
    """Calls one app directly, ``n`` times in a row; returns the elapsed nanoseconds."""

    def check(self, path: str) -> Reply:
        raise NotImplementedError

    def run(self, path: str, n: int) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the driver holds (ASGI: lifespan shutdown, the loop)."""


def _asgi_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.encode(), value.encode()) for name, value in _HEADERS],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


class ASGIDriver(Driver):
    """One asyncio loop; lifespan started once, like a server does, then plain calls."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._lifespan_task: asyncio.Task[None] | None = None
        self._lifespan_in: asyncio.Queue[Message] | None = None
        self.loop.run_until_complete(self._startup())

    async def _startup(self) -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        started: asyncio.Future[Message] = self.loop.create_future()

        async def send(message: Message) -> None:
            if message["type"].startswith("lifespan.startup") and not started.done():
                started.set_result(message)

        async def lifespan() -> None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            try:
                await self.app(scope, inbox.get, send)
            finally:
                if not started.done():
                    started.set_result({"type": "lifespan.startup.failed"})

        await inbox.put({"type": "lifespan.startup"})
        self._lifespan_in = inbox
        self._lifespan_task = self.loop.create_task(lifespan())
        message = await started
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")

    def check(self, path: str) -> Reply:
        reply = Reply()

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                reply.status = message["status"]
            elif message["type"] == "http.response.body":
                reply.body += message.get("body", b"")

        async def call() -> None:
            try:
                await self.app(_asgi_scope(path), receive, send)
            except Exception as exc:
                reply.error = type(exc).__name__

        self.loop.run_until_complete(call())
        return reply

    def run(self, path: str, n: int) -> int:
        return self.loop.run_until_complete(self._run(path, n))

    async def _run(self, path: str, n: int) -> int:
        app = self.app
        copy = _asgi_scope(path).copy

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            return None

        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            try:
                await app(copy(), receive, send)
            except Exception:
                continue
        return clock() - start

    def close(self) -> None:
        async def shutdown() -> None:
            if self._lifespan_in is not None and self._lifespan_task is not None:
                await self._lifespan_in.put({"type": "lifespan.shutdown"})
                await asyncio.wait({self._lifespan_task}, timeout=10)

        self.loop.run_until_complete(shutdown())
        self.loop.close()


def _wsgi_environ(path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in _HEADERS:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _write(data: bytes) -> None:
    return None


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


class WSGIDriver(Driver):
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def check(self, path: str) -> Reply:
        reply = Reply()

        def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            reply.status = int(status.split()[0])
            return _write

        try:
            body = self.app(_wsgi_environ(path), start_response)
            try:
                reply.body = b"".join(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            reply.error = type(exc).__name__
        return reply

    def run(self, path: str, n: int) -> int:
        app = self.app
        copy = _wsgi_environ(path).copy
        start_response = _start_response
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            body = app(copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return clock() - start


def driver_for(framework: str, app: Any) -> Driver:
    if framework in ASGI_FRAMEWORKS:
        return ASGIDriver(app)
    return WSGIDriver(app)


# -- the harness's own cost ----------------------------------------------------------------


async def _null_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": HELLO})


def _null_wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [HELLO]


def null_driver(framework: str) -> Driver:
    """A driver around a do-nothing app: the harness's own cost per request."""
    if framework in ASGI_FRAMEWORKS:
        return ASGIDriver(_null_asgi)
    return WSGIDriver(_null_wsgi)


@contextlib.contextmanager
def emulator_process(*options: str) -> Iterator[str]:
    """The bundled emulator in a child process on loopback; yields its base URL.

    ``options`` go to ``python -m pd_integrations.emulator`` (e.g. ``--rate-limit off``).
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "pd_integrations.emulator", "--port", "0", *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        match = re.search(r"listening on (\S+)", child.stdout.readline())
        if match is None:
            raise RuntimeError("the emulator did not start")
        yield match.group(1)
    finally:
        child.terminate()
        child.wait(10)
