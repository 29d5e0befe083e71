"""What the seed's FastAPI handler and slow-request middleware did, done by the middleware.

The seed registered ``@app.exception_handler(Exception)`` that awaited PagerDuty and
returned a JSON 500, plus a ``BaseHTTPMiddleware`` timing requests. Starlette runs a
handler for ``Exception`` in ``ServerErrorMiddleware``, outside user middleware, so the
exception still passes through PagerDutyMiddleware: the app keeps its own error page
and gets exactly one alert.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.testclient import TestClient

from pd_integrations import AlertManager
from pd_integrations.starlette import PagerDutyMiddleware
from pd_integrations.testing import CapturedEvents
from tests.clock import FakeClock

from .apps import timed_by
from .conftest import valid_triggers


class PaymentError(Exception):
    pass


def seed_app(clock: FakeClock | None = None, **middleware: Any) -> FastAPI:
    """The seed's app; with ``clock``, its slow report takes 100 ms on that clock."""
    app = FastAPI()

    @app.exception_handler(Exception)
    async def global_exception_handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=500, content={"error": str(exc)})

    @app.get("/orders/{order_id}")
    def get_order(order_id: int) -> dict[str, int]:  # sync: runs in the thread pool
        if order_id == 13:
            raise KeyError("order 13 is cursed")
        raise PaymentError("payment service down")

    @app.get("/maintenance")
    async def maintenance() -> None:
        raise HTTPException(status_code=503, detail="down for maintenance")

    @app.get("/reports")
    async def reports() -> dict[str, str]:
        if clock is not None:  # the seed slept 100 ms here
            clock.advance(0.1)
        return {"report": "ready"}

    if clock is not None:
        app.add_middleware(timed_by(clock), **middleware)
    elif middleware:
        app.add_middleware(PagerDutyMiddleware, **middleware)
    return app


def test_an_app_with_its_own_exception_handler_still_gets_exactly_one_alert(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = TestClient(seed_app(alerts=alerts), raise_server_exceptions=False)
    bare = TestClient(seed_app(), raise_server_exceptions=False)

    response = client.get("/orders/7", headers={"Authorization": "Bearer abc.def.ghi"})

    expected = bare.get("/orders/7", headers={"Authorization": "Bearer abc.def.ghi"})
    assert (response.status_code, response.json()) == (500, {"error": "payment service down"})
    assert response.headers.raw == expected.headers.raw
    (event,) = valid_triggers(pagerduty_events)
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == "[500] PaymentError: payment service down - GET /orders/{order_id}"
    details = payload["custom_details"]
    assert details["exception_type"].endswith("PaymentError")
    assert details["route"] == "/orders/{order_id}"
    assert details["status"] == 500
    assert "abc.def.ghi" not in str(event)


def test_handled_server_errors_page_like_the_seed_when_asked(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    quiet = TestClient(seed_app(alerts=alerts))
    assert quiet.get("/maintenance").status_code == 503
    assert pagerduty_events.events == []

    client = TestClient(seed_app(alerts=alerts, alert_on_handled_5xx=True))
    response = client.get("/maintenance")

    assert (response.status_code, response.json()) == (503, {"detail": "down for maintenance"})
    (event,) = valid_triggers(pagerduty_events)
    assert event["payload"]["severity"] == "error"  # 503, not 500
    assert event["payload"]["custom_details"]["status"] == 503


def test_the_seeds_method_and_route_dedup_key(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    client = TestClient(seed_app(alerts=alerts, dedup_by="route"), raise_server_exceptions=False)

    client.get("/orders/7")
    client.get("/orders/13")  # another bug, same route: one alert with this key scheme

    (event,) = valid_triggers(pagerduty_events)
    assert event["dedup_key"] == "http_error:GET /orders/{order_id}"


def test_the_seeds_slow_request_alert(
    alerts: AlertManager, pagerduty_events: CapturedEvents, clock: FakeClock
) -> None:
    client = TestClient(seed_app(clock, alerts=alerts, slow_request_ms=50))

    assert client.get("/reports").json() == {"report": "ready"}

    (event,) = valid_triggers(pagerduty_events)
    payload = event["payload"]
    assert payload["severity"] == "warning"
    assert payload["summary"] == "Slow request: GET /reports took 100 ms (threshold 50 ms)"
    assert payload["custom_details"]["duration_ms"] == 100
    assert payload["custom_details"]["threshold_ms"] == 50
