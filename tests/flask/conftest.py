"""A small shop app used by the Flask adapter's tests, built with or without the extension."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, abort, jsonify, make_response, request
from werkzeug.exceptions import BadRequest
from werkzeug.test import TestResponse

from pd_integrations.flask import PagerDuty, PagerDutyState, get_state

SLEEP = 0.1  # the slow routes; tests use a 50 ms threshold and never assert upper bounds
CLOSE_TASK_SLEEP = 0.15


class ServiceUnavailableError(Exception):
    """An error the app handles itself, answering 503 (the Express-style error handler)."""


class OrderNotFoundError(Exception):
    """An error the app handles itself, answering 404."""


def explode_order(order_id: int) -> str:
    raise ValueError(f"order {order_id} has no line items")


def json_of(response: TestResponse) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def build_app(name: str = "shop", **config: Any) -> Flask:
    """The app without the extension (so transparency can compare both)."""
    app = Flask(name)
    app.config.update(TESTING=False, PAGERDUTY_SLOW_REQUEST_MS=50)
    app.config.update(config)

    @app.route("/")
    def index() -> str:
        return "Hello, shop!"

    def order(order_id: int) -> str:
        return explode_order(order_id)

    app.add_url_rule("/orders/<int:order_id>", "order", order)
    app.add_url_rule("/legacy/orders/<int:order_id>", "legacy_order", order)

    @app.route("/fail/<kind>")
    def fail(kind: str) -> str:
        if kind == "key":
            return {"a": "b"}["missing"]
        divisor = 0
        return str(1 / divisor)

    @app.route("/forbidden")
    def forbidden() -> str:
        abort(403)

    @app.route("/bad")
    def bad() -> str:
        raise BadRequest("no")

    @app.route("/abort500")
    def abort500() -> str:
        abort(500)

    @app.route("/slow")
    def slow() -> str:
        time.sleep(SLEEP)
        return "finally"

    @app.route("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"first\n"
            time.sleep(SLEEP)
            yield b"second\n"

        return Response(chunks(), mimetype="text/plain")

    @app.route("/stream-fast")
    def stream_fast() -> Response:
        return Response((f"{n}\n" for n in range(5)), mimetype="text/plain")

    @app.route("/stream-broken")
    def stream_broken() -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"partial\n"
            raise RuntimeError("the export lost its cursor")

        return Response(chunks(), mimetype="text/plain")

    @app.route("/background")
    def background() -> Response:
        response = make_response("queued")
        response.call_on_close(lambda: time.sleep(CLOSE_TASK_SLEEP))
        return response

    @app.route("/background-stream")
    def background_stream() -> Response:
        response = Response(iter([b"queued"]))
        response.call_on_close(lambda: time.sleep(CLOSE_TASK_SLEEP))
        return response

    @app.route("/unavailable")
    def unavailable() -> str:
        raise ServiceUnavailableError("payment provider is down")

    @app.route("/missing-order")
    def missing_order() -> str:
        raise OrderNotFoundError("order 7")

    @app.errorhandler(ServiceUnavailableError)
    def handle_unavailable(error: ServiceUnavailableError) -> tuple[Response, int]:
        return jsonify(error=str(error), requestId=request.headers.get("X-Request-ID")), 503

    @app.errorhandler(OrderNotFoundError)
    def handle_missing(error: OrderNotFoundError) -> tuple[Response, int]:
        return jsonify(error=str(error)), 404

    @app.route("/async/boom")
    async def async_boom() -> str:
        raise KeyError("cart")

    @app.route("/async/slow")
    async def async_slow() -> str:
        import asyncio

        await asyncio.sleep(SLEEP)
        return "async finally"

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.route("/items/<item_id>")
    def item(item_id: str) -> str:
        raise LookupError(item_id)

    app.register_blueprint(api)
    return app


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Builds apps with the extension; closes what they opened at the end of the test."""
    states: list[PagerDutyState] = []

    def make(name: str = "shop", *, ext: PagerDuty | None = None, **config: Any) -> Flask:
        app = build_app(name, **config)
        (ext or PagerDuty()).init_app(app)
        states.append(get_state(app))
        return app

    yield make
    for state in states:
        state.close(timeout=1.0)
