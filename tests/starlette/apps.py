"""The same small app as FastAPI, plain Starlette and mounted sub-apps, for the tests.

Every flavour serves the same routes under its own URL prefix; ``template`` is what the
route templates must look like in alerts (mount paths as templates, not values).

Nothing here takes real time: the "slow" views, each chunk of the slow stream and the
background job advance a :class:`~tests.clock.FakeClock` instead of sleeping. Give the
same clock to the middleware (``build(clock=...)``) and their durations are exact, while
every other request takes no time at all on the middleware's clock, however loaded the
machine running the tests is.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from pd_integrations.starlette import PagerDutyMiddleware
from tests.clock import FakeClock

SLOW_SECONDS = 0.1
BACKGROUND_SECONDS = 0.15
CHUNK_PAUSE = 0.04


class Disaster(RuntimeError):
    pass


def explode() -> None:
    raise Disaster("database exploded")


def fail_in_a() -> None:
    raise ValueError("a went wrong")


def fail_in_b() -> None:
    raise LookupError("b went wrong")


def timed_by(clock: FakeClock) -> Callable[..., PagerDutyMiddleware]:
    """``add_middleware``'s factory for a PagerDutyMiddleware whose monitor reads ``clock``.

    The middleware still builds its monitor from its own settings, as in an app; only
    the monitor's clock is swapped (the middleware reads it at every request).
    """

    # ``app`` by keyword too: Starlette before 0.38 builds middleware as ``cls(app=app, ...)``.
    def install(app: ASGIApp, **settings: Any) -> PagerDutyMiddleware:
        middleware = PagerDutyMiddleware(app, **settings)
        assert middleware.monitor is not None, middleware.error
        middleware.monitor.clock = clock
        return middleware

    return install


# -- the behaviour, shared by both frameworks -------------------------------------------


class Views:
    """The endpoints; slow work advances ``clock`` by its duration instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def hello(self) -> Response:
        return PlainTextResponse("Hello, world!", headers={"X-Custom": "yes"})

    async def item(self, item_id: str) -> Response:
        return JSONResponse({"item_id": item_id})

    async def boom(self, n: str) -> Response:
        explode()
        raise AssertionError("unreachable")

    async def fail(self, kind: str) -> Response:
        if kind == "a":
            fail_in_a()
        else:
            fail_in_b()
        raise AssertionError("unreachable")

    async def forbidden(self) -> Response:
        raise HTTPException(403, "no entry")

    async def unavailable(self) -> Response:
        raise HTTPException(503, "try later")

    async def slow(self) -> Response:
        self.clock.advance(SLOW_SECONDS)
        return PlainTextResponse("done")

    async def stream(self, kind: str) -> Response:
        pause = CHUNK_PAUSE if kind == "slow" else 0.0
        body = self.chunks(pause, broken=kind == "broken")
        return StreamingResponse(body, media_type="text/plain")

    async def background(self, kind: str) -> Response:
        job = self.failing_job if kind == "fail" else self.background_job
        return PlainTextResponse("queued", background=BackgroundTask(job))

    async def chunks(self, pause: float, *, broken: bool = False) -> AsyncIterator[bytes]:
        for n in range(3):
            # Before every chunk, the first included: a timing that ended at any chunk
            # but the last would come out short.
            self.clock.advance(pause)
            yield f"chunk {n}\n".encode()
            if broken:
                raise Disaster("stream broke")

    async def background_job(self) -> None:
        self.clock.advance(BACKGROUND_SECONDS)

    async def failing_job(self) -> None:
        raise Disaster("background job failed")

    def routes(self) -> list[tuple[str, Callable[..., Any]]]:
        return [
            ("/hello", self.hello),
            ("/items/{item_id}", self.item),
            ("/boom/{n}", self.boom),
            ("/fail/{kind}", self.fail),
            ("/forbidden", self.forbidden),
            ("/unavailable", self.unavailable),
            ("/slow", self.slow),
            ("/stream/{kind}", self.stream),
            ("/background/{kind}", self.background),
        ]


def starlette_routes(views: Views) -> list[BaseRoute]:
    def endpoint(fn: Callable[..., Any]) -> Callable[[Request], Any]:
        wanted = inspect.signature(fn).parameters

        async def call(request: Request) -> Response:
            # A mount's own parameters (``tenant``) are in path_params too.
            params = {k: v for k, v in request.path_params.items() if k in wanted}
            result: Response = await fn(**params)
            return result

        return call

    return [Route(path, endpoint(fn)) for path, fn in views.routes()]


def fastapi_router(views: Views) -> APIRouter:
    router = APIRouter()
    for path, fn in views.routes():
        router.add_api_route(path, fn, methods=["GET", "HEAD"])
    return router


# -- the flavours -----------------------------------------------------------------------


@dataclass(frozen=True)
class Flavour:
    name: str
    prefix: str
    """What the test client puts before each route's path."""
    template: str
    """What the alerts must show before each route's template."""

    def url(self, path: str) -> str:
        return self.prefix + path

    def route(self, template: str) -> str:
        return self.template + template

    def build(
        self, *, bare: bool = False, clock: FakeClock | None = None, **middleware: Any
    ) -> Starlette:
        """The app with ``PagerDutyMiddleware(**middleware)``, or without it if ``bare``.

        With ``clock``, the views' slow work advances it and the middleware times
        requests by it. Without, the middleware keeps the real clock and the views
        advance a clock of their own that nobody reads: no request is slow on purpose.
        """
        views = Views(FakeClock() if clock is None else clock)
        app: Starlette
        if self.name == "fastapi":
            app = FastAPI()
            outer = APIRouter(prefix="/v1")
            outer.include_router(fastapi_router(views), prefix="/shop")
            app.include_router(outer)
        elif self.name == "starlette":
            app = Starlette(routes=starlette_routes(views))
        elif self.name == "mounted":
            inner = Starlette(routes=starlette_routes(views))
            app = Starlette(routes=[Mount("/tenants/{tenant}", app=inner)])
        else:
            inner_api = FastAPI()
            inner_api.include_router(fastapi_router(views))
            app = FastAPI()
            app.mount("/v2", inner_api)
        if bare:
            return app
        if clock is None:
            app.add_middleware(PagerDutyMiddleware, **middleware)
        else:
            app.add_middleware(timed_by(clock), **middleware)
        return app


FLAVOURS = [
    Flavour("fastapi", "/v1/shop", "/v1/shop"),
    Flavour("starlette", "", ""),
    Flavour("mounted", "/tenants/acme", "/tenants/{tenant}"),
    Flavour("fastapi-mounted", "/v2", "/v2"),
]
