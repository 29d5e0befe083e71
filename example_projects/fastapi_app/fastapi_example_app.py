"""A small bookshop API with PagerDuty alerting: the FastAPI example of pd_integrations.

Run it (see README.md)::

    uvicorn fastapi_example_app:app --port 8000

What pages whom:

- ``GET /orders/{order_id}/invoice`` has a bug (no tax rate for one country): an
  unhandled ``KeyError`` and a ``critical`` alert, one for every order it hits.
- ``GET /reports/sales`` is slow: a ``warning`` once it takes longer than the threshold.
- ``GET /health`` runs the health checks; ``POST /admin/payments/down`` breaks the fake
  payments provider so the ``payments`` check fails: a trigger, then a resolve after
  ``POST /admin/payments/up``. The checks also run every 30 s in the background.
- ``GET /books/999`` is a 404 and pages nobody.
- ``POST /pagerduty/webhooks`` receives PagerDuty's webhooks (when
  ``PAGERDUTY_WEBHOOK_SECRET`` is set): the incident board at ``GET /incidents``
  follows every incident's state; triggered and escalated incidents are "posted to
  chat" after the response is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from pd_integrations import AlertManager
from pd_integrations.environment import WEBHOOK_SECRET_VAR
from pd_integrations.health import HealthMonitor
from pd_integrations.starlette import PagerDutyMiddleware, health_route
from pd_integrations.starlette.webhooks import webhook_route
from pd_integrations.webhooks import WebhookEvent, WebhookReceiver

log = logging.getLogger("bookshop")

BOOKS: dict[int, dict[str, str | int]] = {
    1: {"id": 1, "title": "Site Reliability Engineering", "price_cents": 4200},
    2: {"id": 2, "title": "The Phoenix Project", "price_cents": 2500},
    3: {"id": 3, "title": "Release It!", "price_cents": 3900},
}
# The bug the error route exists for: orders to Iceland ("IS") have no tax rate.
TAX_RATES = {"DE": 0.19, "FR": 0.20, "US": 0.0}


class OrderIn(BaseModel):
    book_id: int
    quantity: int = Field(default=1, ge=1, le=100)
    country: str = Field(default="DE", min_length=2, max_length=2)


class Order(OrderIn):
    id: int
    total_cents: int


class Shop:
    """In-memory state: orders, the fake payments provider, sent confirmations, incidents."""

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.payments_up = True
        self.confirmations: list[int] = []
        self.incidents: dict[str, dict[str, str | None]] = {}
        self.chat: list[str] = []


def incident_webhooks(shop: Shop, secret: str | None) -> WebhookReceiver | None:
    """PagerDuty's webhooks keep ``shop.incidents`` current; ``None`` without a secret."""
    if not (secret or os.environ.get(WEBHOOK_SECRET_VAR, "").strip()):
        log.info("%s is not set: the webhook endpoint is off", WEBHOOK_SECRET_VAR)
        return None
    webhooks = WebhookReceiver(secret)  # None: PAGERDUTY_WEBHOOK_SECRET

    @webhooks.on("incident.*")
    def track(event: WebhookEvent) -> None:
        incident = event.incident
        if incident is None:  # annotations, responders...: no incident state in them
            return
        shop.incidents[incident.id] = {
            "title": incident.title,
            "status": incident.status,
            "urgency": incident.urgency,
            "last_event": event.event_type,
            "by": event.agent.summary if event.agent else None,
        }
        log.info("incident %s is %s (%s)", incident.id, incident.status, event.event_type)

    @webhooks.on("incident.triggered", "incident.escalated", background=True)
    async def post_to_chat(event: WebhookEvent) -> None:
        await asyncio.sleep(0.05)  # a chat service, standing in; after the response
        title = event.incident.title if event.incident else event.id
        shop.chat.append(f"{event.event_type}: {title}")

    return webhooks


def create_app(
    *,
    alerts: AlertManager | None = None,
    slow_request_ms: float = 1000,
    report_seconds: float | None = None,
    confirmation_seconds: float = 0.5,
    health_interval: float = 30.0,
    webhook_secret: str | None = None,
) -> FastAPI:
    """The app; every argument has a default fit for running it by hand."""
    alerts = alerts or AlertManager.from_env()
    seconds = report_seconds
    if seconds is None:
        seconds = float(os.environ.get("SALES_REPORT_SECONDS", "1.5"))
    shop = Shop()

    health = HealthMonitor(alerts, failure_threshold=2, component="bookshop")

    @health.check("catalogue")
    def catalogue() -> bool:
        return bool(BOOKS)

    @health.check("payments", timeout=2.0)
    async def payments() -> None:
        if not shop.payments_up:
            raise ConnectionError("payments provider refused the connection")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Deliver what is still queued before the process exits.
        await asyncio.to_thread(alerts.close)

    app = FastAPI(title="Bookshop", lifespan=lifespan)
    app.state.shop = shop

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"service": "bookshop", "docs": "/docs", "health": "/health"}

    @app.get("/books")
    async def list_books() -> list[dict[str, str | int]]:
        return list(BOOKS.values())

    @app.get("/books/{book_id}")
    async def get_book(book_id: int) -> dict[str, str | int]:
        book = BOOKS.get(book_id)
        if book is None:
            raise HTTPException(status_code=404, detail=f"no book {book_id}")
        return book

    @app.post("/orders", status_code=201)
    async def create_order(order: OrderIn, background: BackgroundTasks) -> Order:
        book = BOOKS.get(order.book_id)
        if book is None:
            raise HTTPException(status_code=422, detail=f"no book {order.book_id}")
        if not shop.payments_up:
            raise HTTPException(status_code=503, detail="payments are unavailable")
        created = Order(
            id=len(shop.orders) + 1,
            total_cents=int(book["price_cents"]) * order.quantity,
            **order.model_dump(),
        )
        shop.orders[created.id] = created
        # Runs after the response is sent: not part of the request's time.
        background.add_task(send_confirmation, shop, created.id, confirmation_seconds)
        return created

    @app.get("/orders/{order_id}/invoice")
    def invoice(order_id: int) -> dict[str, int | str]:
        order = shop.orders.get(order_id)
        if order is None:
            raise HTTPException(status_code=404, detail=f"no order {order_id}")
        tax = TAX_RATES[order.country]  # KeyError for "IS": the bug that pages
        return {
            "order_id": order.id,
            "net_cents": order.total_cents,
            "tax_cents": round(order.total_cents * tax),
            "country": order.country,
        }

    @app.get("/reports/sales")
    async def sales_report() -> dict[str, int]:
        await asyncio.sleep(seconds)  # a slow query, standing in for the real thing
        return {
            "orders": len(shop.orders),
            "revenue_cents": sum(o.total_cents for o in shop.orders.values()),
        }

    @app.post("/admin/payments/{state}")
    async def set_payments(state: Literal["up", "down"], request: Request) -> dict[str, str]:
        request.app.state.shop.payments_up = state == "up"
        return {"payments": state}

    @app.get("/incidents")
    async def incidents() -> dict[str, dict[str, str | None]]:
        return shop.incidents

    app.router.routes.append(health_route(health, errors=True))
    webhooks = incident_webhooks(shop, webhook_secret)
    if webhooks is not None:
        app.router.routes.append(webhook_route(webhooks))  # POST /pagerduty/webhooks
    app.add_middleware(
        PagerDutyMiddleware,
        alerts=alerts,
        slow_request_ms=slow_request_ms,
        health=health,
        health_interval=health_interval,
    )
    return app


async def send_confirmation(shop: Shop, order_id: int, seconds: float) -> None:
    await asyncio.sleep(seconds)  # an e-mail provider, standing in
    shop.confirmations.append(order_id)


app = create_app()
