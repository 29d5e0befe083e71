"""A small shop app used by the Flask adapter's tests, built with or without the extension.

Time is the test's: the slow routes move a :class:`~tests.clock.FakeClock`, which the
extension's request monitor reads, instead of sleeping. A slow request then takes
exactly what the route says and a quick one takes no time at all, however loaded the
machine running the suite is, so a test can assert exactly which alerts were sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, abort, jsonify, make_response, request
from werkzeug.exceptions import BadRequest
from werkzeug.test import TestResponse

from pd_integrations.flask import PagerDuty, PagerDutyState, get_state
from pd_integrations.monitor import RequestMonitor
from tests.clock import FakeClock

THRESHOLD_MS = 50  # PAGERDUTY_SLOW_REQUEST_MS of every app built here, unless overridden
SLOW = 0.1  # seconds the slow routes take on the monitor's clock: twice the threshold
CLOSE_TASK = 3600.0  # seconds of work after the response (call_on_close), on the same clock


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


def build_app(name: str = "shop", *, clock: FakeClock | None = None, **config: Any) -> Flask:
    """The app without the extension (so transparency can compare both).

    Its slow routes advance ``clock`` (a clock of their own if none is given: an app
    without the extension has no monitor to read it).
    """
    took = FakeClock() if clock is None else clock
    app = Flask(name)
    app.config.update(TESTING=False, PAGERDUTY_SLOW_REQUEST_MS=THRESHOLD_MS)
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
        took.advance(SLOW)
        return "finally"

    @app.route("/work/<int:ms>")
    def work(ms: int) -> str:
        took.advance(ms / 1000)
        return f"{ms} ms of work"

    @app.route("/stream")
    def stream() -> Response:
        # The view returns at once; only producing the last chunk takes time.
        def chunks() -> Iterator[bytes]:
            yield b"first\n"
            took.advance(SLOW)
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
        response.call_on_close(lambda: took.advance(CLOSE_TASK))
        return response

    @app.route("/background-stream")
    def background_stream() -> Response:
        response = Response(iter([b"queued"]))
        response.call_on_close(lambda: took.advance(CLOSE_TASK))
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

        await asyncio.sleep(0)  # a real suspension point: the view runs in an event loop
        took.advance(SLOW)
        return "async finally"

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.route("/items/<item_id>")
    def item(item_id: str) -> str:
        raise LookupError(item_id)

    app.register_blueprint(api)
    return app


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of every RequestMonitor built during the test, the extension's included.

    ``init_app`` builds the app's monitor from its ``PAGERDUTY_*`` settings and the
    request timer copies ``monitor.clock`` there; ``PagerDuty()`` takes no clock. Giving
    ``RequestMonitor``'s public ``clock`` parameter this default for the test reaches
    that monitor while every setting still goes through the extension's own code.
    """
    fake = FakeClock()
    defaults = RequestMonitor.__init__.__kwdefaults__
    assert defaults is not None
    assert "clock" in defaults, "RequestMonitor takes no clock="
    monkeypatch.setitem(defaults, "clock", fake)
    return fake


@pytest.fixture
def make_app(clock: FakeClock) -> Iterator[Callable[..., Flask]]:
    """Builds apps with the extension, timed by ``clock``; closes what they opened."""
    states: list[PagerDutyState] = []

    def make(name: str = "shop", *, ext: PagerDuty | None = None, **config: Any) -> Flask:
        app = build_app(name, clock=clock, **config)
        (ext or PagerDuty()).init_app(app)
        state = get_state(app)
        states.append(state)
        if state.owns_monitor:
            # Else the slow routes would move a clock nobody reads: fail here, clearly.
            assert state.monitor.clock is clock
        return app

    yield make
    for state in states:
        state.close(timeout=1.0)
