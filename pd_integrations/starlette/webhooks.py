"""A PagerDuty webhook endpoint for Starlette and FastAPI.

::

    webhooks = WebhookReceiver()  # PAGERDUTY_WEBHOOK_SECRET

    @webhooks.on("incident.acknowledged")
    async def acknowledged(event: WebhookEvent) -> None: ...

    app = Starlette(routes=[webhook_route(webhooks)])  # POST /pagerduty/webhooks
    app.router.routes.append(webhook_route(webhooks))  # FastAPI (or an APIRouter)

The endpoint reads the raw body, at most ``max_body_bytes`` of it, and lets the
receiver decide the answer. Background handlers run as a Starlette background task,
after the response was sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from pd_integrations.webhooks.receiver import DEFAULT_PATH, WebhookReceiver, WebhookResult

__all__ = ["WebhookApp", "webhook_app", "webhook_endpoint", "webhook_route"]


def webhook_endpoint(receiver: WebhookReceiver) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint (``request -> response``) for ``receiver``'s deliveries."""

    async def pagerduty_webhook(request: Request) -> Response:
        if receiver.too_large(request.headers.get("content-length")):
            return _response(receiver.payload_too_large())
        try:
            body = await receiver.aread_body(request.stream())
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        if body is None:
            return _response(receiver.payload_too_large())
        return _response(await receiver.ahandle(body, request.headers))

    return pagerduty_webhook


def webhook_route(
    receiver: WebhookReceiver,
    path: str = DEFAULT_PATH,
    *,
    name: str = "pagerduty_webhooks",
    include_in_schema: bool = False,
) -> Route:
    """A ``POST`` route for :func:`webhook_endpoint`.

    Starlette: ``Starlette(routes=[..., webhook_route(receiver)])``; FastAPI:
    ``app.router.routes.append(webhook_route(receiver))``, or on an ``APIRouter``
    before ``app.include_router(router)``.
    """
    return Route(
        path,
        webhook_endpoint(receiver),
        methods=["POST"],
        name=name,
        include_in_schema=include_in_schema,
    )


class WebhookApp:
    """A plain ASGI app answering deliveries at whatever path it is given.

    ``Route("/pagerduty/webhooks", WebhookApp(receiver))`` or, for every path under a
    prefix, ``Mount("/hooks", app=WebhookApp(receiver))``. Anything but ``POST`` gets
    a 405. (An object, not a function: Starlette's ``Route`` treats functions as
    request-to-response endpoints.)
    """

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self._handle = request_response(webhook_endpoint(receiver))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do here
        if scope["method"] != "POST":
            response = Response(status_code=405, headers={"Allow": "POST"})
            await response(scope, receive, send)
            return
        await self._handle(scope, receive, send)


def webhook_app(receiver: WebhookReceiver) -> ASGIApp:
    """:class:`WebhookApp` for ``receiver``."""
    return WebhookApp(receiver)


def _response(result: WebhookResult) -> Response:
    work = result.background
    return Response(
        result.content,
        status_code=result.status,
        media_type=result.media_type,
        background=BackgroundTask(work.arun) if work is not None else None,
    )
