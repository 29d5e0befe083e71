"""A Starlette app with ``PagerDutyMiddleware`` owning its AlertManager (from the
environment): ``/boom`` raises, so the middleware queues an exception alert."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pd_integrations.starlette import PagerDutyMiddleware


async def ready(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ready")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("the shutdown test's failure")


app = Starlette(
    routes=[Route("/ready", ready), Route("/boom", boom)],
    middleware=[Middleware(PagerDutyMiddleware)],
)
