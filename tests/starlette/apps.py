"""The same small app as FastAPI, plain Starlette and mounted sub-apps, for the tests.

Every flavour serves the same routes under its own URL prefix; ``template`` is what the
route templates must look like in alerts (mount paths as templates, not values).
"""

from __future__ import annotations

import asyncio
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

from pd_integrations.starlette import PagerDutyMiddleware

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


async def chunks(pause: float, *, broken: bool = False) -> AsyncIterator[bytes]:
    for n in range(3):
        if pause:
            await asyncio.sleep(pause)
        yield f"chunk {n}\n".encode()
        if broken:
            raise Disaster("stream broke")


async def background_job() -> None:
    await asyncio.sleep(BACKGROUND_SECONDS)


async def failing_job() -> None:
    raise Disaster("background job failed")


# -- the behaviour, shared by both frameworks -------------------------------------------


async def hello() -> Response:
    return PlainTextResponse("Hello, world!", headers={"X-Custom": "yes"})


async def item(item_id: str) -> Response:
    return JSONResponse({"item_id": item_id})


async def boom(n: str) -> Response:
    explode()
    raise AssertionError("unreachable")


async def fail(kind: str) -> Response:
    if kind == "a":
        fail_in_a()
    else:
        fail_in_b()
    raise AssertionError("unreachable")


async def forbidden() -> Response:
    raise HTTPException(403, "no entry")


async def unavailable() -> Response:
    raise HTTPException(503, "try later")


async def slow() -> Response:
    await asyncio.sleep(SLOW_SECONDS)
    return PlainTextResponse("done")


async def stream(kind: str) -> Response:
    pause = CHUNK_PAUSE if kind == "slow" else 0.0
    return StreamingResponse(chunks(pause, broken=kind == "broken"), media_type="text/plain")


async def background(kind: str) -> Response:
    job = failing_job if kind == "fail" else background_job
    return PlainTextResponse("queued", background=BackgroundTask(job))


ROUTES: list[tuple[str, Callable[..., Any]]] = [
    ("/hello", hello),
    ("/items/{item_id}", item),
    ("/boom/{n}", boom),
    ("/fail/{kind}", fail),
    ("/forbidden", forbidden),
    ("/unavailable", unavailable),
    ("/slow", slow),
    ("/stream/{kind}", stream),
    ("/background/{kind}", background),
]


def starlette_routes() -> list[BaseRoute]:
    def endpoint(fn: Callable[..., Any]) -> Callable[[Request], Any]:
        wanted = inspect.signature(fn).parameters

        async def call(request: Request) -> Response:
            # A mount's own parameters (``tenant``) are in path_params too.
            params = {k: v for k, v in request.path_params.items() if k in wanted}
            result: Response = await fn(**params)
            return result

        return call

    return [Route(path, endpoint(fn)) for path, fn in ROUTES]


def fastapi_router() -> APIRouter:
    router = APIRouter()
    for path, fn in ROUTES:
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

    def build(self, *, bare: bool = False, **middleware: Any) -> Starlette:
        """The app with ``PagerDutyMiddleware(**middleware)``, or without it if ``bare``."""
        app: Starlette
        if self.name == "fastapi":
            app = FastAPI()
            outer = APIRouter(prefix="/v1")
            outer.include_router(fastapi_router(), prefix="/shop")
            app.include_router(outer)
        elif self.name == "starlette":
            app = Starlette(routes=starlette_routes())
        elif self.name == "mounted":
            inner = Starlette(routes=starlette_routes())
            app = Starlette(routes=[Mount("/tenants/{tenant}", app=inner)])
        else:
            inner_api = FastAPI()
            inner_api.include_router(fastapi_router())
            app = FastAPI()
            app.mount("/v2", inner_api)
        if not bare:
            app.add_middleware(PagerDutyMiddleware, **middleware)
        return app


FLAVOURS = [
    Flavour("fastapi", "/v1/shop", "/v1/shop"),
    Flavour("starlette", "", ""),
    Flavour("mounted", "/tenants/acme", "/tenants/{tenant}"),
    Flavour("fastapi-mounted", "/v2", "/v2"),
]
