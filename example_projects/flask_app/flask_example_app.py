"""Pantry: a small Flask shop with PagerDuty alerting from ``pd_integrations``.

Run it with ``flask --app flask_example_app run`` (see README.md). ``create_app`` is an
app factory; the extension is created once at import time and initialised per app.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, abort, current_app, jsonify, request

from pd_integrations.environment import WEBHOOK_SECRET_VAR
from pd_integrations.flask import PagerDuty
from pd_integrations.flask.webhooks import CONFIG_KEY, config_secrets, webhook_blueprint
from pd_integrations.webhooks import WebhookEvent, WebhookReceiver

pagerduty = PagerDuty()
# PagerDuty's webhooks: the secret from app.config["PAGERDUTY_WEBHOOK_SECRET"] or the env.
webhooks = WebhookReceiver(config_secrets)
log = logging.getLogger("pantry")

MIN_FREE_DISK_BYTES = 50 * 1024 * 1024


@pagerduty.health.check("disk", severity="warning")
def disk_has_room() -> bool:
    """Uploads and exports need scratch space; a full disk degrades, it does not page."""
    return shutil.disk_usage(tempfile.gettempdir()).free > MIN_FREE_DISK_BYTES


class PaymentProviderError(Exception):
    """The payment provider did not answer; the app says 503 and alerts (handled 5xx)."""


@dataclass
class Product:
    id: int
    name: str
    price_cents: int
    stock: int
    price_history: list[int] = field(default_factory=list)


@dataclass
class Store:
    """The shop's in-memory data and the fake payment provider, one per app."""

    products: dict[int, Product]
    orders: list[dict[str, Any]] = field(default_factory=list)
    payments_up: bool = True
    incidents: dict[str, str] = field(default_factory=dict)
    """PagerDuty incident id -> its status, kept current by the webhooks."""
    postmortems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ping(self) -> bool:
        # A store whose lock is stuck cannot take orders: that is an outage.
        if not self.lock.acquire(timeout=1.0):
            return False
        self.lock.release()
        return True

    def payments_reachable(self) -> bool:
        return self.payments_up


def seed_products() -> dict[int, Product]:
    return {
        1: Product(1, "Sourdough loaf", 450, 20, [420, 440, 450]),
        2: Product(2, "Rye crispbread", 320, 35, [300, 320]),
        3: Product(3, "Seasonal jam", 590, 8),  # new: no price history yet
    }


def average_price(product: Product) -> float:
    # The bug: a product without price history divides by zero.
    return sum(product.price_history) / len(product.price_history)


def current_store() -> Store:
    found = current_app.extensions["pantry_store"]
    assert isinstance(found, Store)
    return found


@webhooks.on("incident.*")
def track_incident(event: WebhookEvent) -> None:
    if event.incident is not None:
        current_store().incidents[event.incident.id] = event.incident.status or "unknown"
        log.info("incident %s: %s", event.incident.id, event.event_type)


@webhooks.on("incident.resolved", background=True)
def open_postmortem(event: WebhookEvent) -> None:
    # Slow work (a ticket system, say) runs after PagerDuty got its answer.
    time.sleep(0.05)
    title = event.incident.title if event.incident else event.id
    current_store().postmortems.append(f"Postmortem: {title}")


DEFAULTS: dict[str, Any] = {
    "PAGERDUTY_SOURCE": "pantry",
    "PAGERDUTY_SLOW_REQUEST_MS": 1000,
    "PAGERDUTY_ALERT_ON_HANDLED_5XX": True,
    "PAGERDUTY_RUNBOOKS": {"ZeroDivisionError": "https://runbooks.example.com/pantry/bugs"},
    "REPORT_SECONDS": 1.5,
}


def _add_job_routes(app: Flask, redis_url: str) -> None:
    """``POST /jobs/restock``: an RQ job; its worker pages when it fails for good."""
    import pantry_jobs
    from redis import Redis
    from rq import Queue, Retry

    queue = Queue(pantry_jobs.QUEUE, connection=Redis.from_url(redis_url))

    @app.post("/jobs/restock")
    def enqueue_restock() -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        job = queue.enqueue(
            pantry_jobs.restock,
            int(body.get("product_id", 1)),
            int(body.get("quantity", 10)),
            str(body.get("supplier", "open")),
            retry=Retry(max=pantry_jobs.RETRIES),
        )
        return jsonify(job_id=job.id), 202


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env()  # FLASK_PAGERDUTY_SLOW_REQUEST_MS=500 and so on
    app.config.update(config or {})
    store = Store(seed_products())
    app.extensions["pantry_store"] = store

    @app.get("/")
    def index() -> Response:
        return jsonify(shop="Pantry", products=len(store.products))

    @app.get("/products")
    def products() -> Response:
        return jsonify([{"id": p.id, "name": p.name} for p in store.products.values()])

    @app.get("/products/<int:product_id>")
    def product(product_id: int) -> Response:
        found = store.products.get(product_id) or abort(404)
        return jsonify(id=found.id, name=found.name, price_cents=found.price_cents)

    @app.get("/products/<int:product_id>/price-history")
    def price_history(product_id: int) -> Response:
        found = store.products.get(product_id) or abort(404)
        return jsonify(history=found.price_history, average=average_price(found))

    @app.post("/orders")
    def create_order() -> tuple[Response, int]:
        data = request.get_json(silent=True) or {}
        found = store.products.get(data.get("product_id", 0))
        quantity = data.get("quantity", 1)
        if found is None or not isinstance(quantity, int) or not 0 < quantity <= found.stock:
            abort(400, "unknown product or quantity")
        if not store.payments_reachable():
            raise PaymentProviderError("payment provider timed out")
        with store.lock:
            found.stock -= quantity
            store.orders.append({"product_id": found.id, "quantity": quantity})
            number = len(store.orders)
        return jsonify(order=number), 201

    @app.get("/reports/daily")
    def daily_report() -> Response:
        time.sleep(current_app.config["REPORT_SECONDS"])  # the slow route
        return jsonify(orders=len(store.orders))

    @app.get("/export.csv")
    def export() -> Response:
        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for item in [("id", "name", "stock")] + [
                (p.id, p.name, p.stock) for p in store.products.values()
            ]:
                writer.writerow(item)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()

        return Response(rows(), mimetype="text/csv")

    @app.post("/admin/payments/<state>")
    def payments_switch(state: str) -> Response:
        store.payments_up = state == "up"
        return jsonify(payments_up=store.payments_up)

    @app.get("/incidents")
    def incidents() -> Response:
        return jsonify(store.incidents)

    redis_url = app.config.get("RQ_REDIS_URL") or os.environ.get("RQ_REDIS_URL")
    if redis_url:
        _add_job_routes(app, redis_url)

    if app.config.get(CONFIG_KEY) or os.environ.get(WEBHOOK_SECRET_VAR):
        app.register_blueprint(webhook_blueprint(webhooks))  # POST /pagerduty/webhooks
    else:
        log.warning("no %s: the webhook endpoint is off", CONFIG_KEY)

    @app.errorhandler(PaymentProviderError)
    def payment_unavailable(error: PaymentProviderError) -> tuple[Response, int]:
        return jsonify(error=str(error), request_id=request.headers.get("X-Request-ID")), 503

    pagerduty.init_app(app)
    # Checks that need this app's objects go to this app's HealthMonitor.
    health = pagerduty.state(app).health
    health.register("store", store.ping)
    health.register("payments", store.payments_reachable, depends_on=["store"])
    return app
