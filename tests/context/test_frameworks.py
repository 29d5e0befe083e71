"""The responder's context through Starlette and Flask, configured their own way.

(Django's are in tests/django/test_context.py, with that suite's settings.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, copy_current_request_context
from flask import globals as flask_globals
from flask_login import LoginManager  # type: ignore[import-untyped]
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from pd_integrations.flask import PagerDuty, get_state
from pd_integrations.starlette import PagerDutyMiddleware
from pd_integrations.testing import CapturedEvents

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
TEMPLATE = "https://tempo.example.com/trace/{trace_id}"

log = logging.getLogger("tests.context.app")


@pytest.fixture(autouse=True)
def verbose_app_logger() -> Iterator[None]:
    level = log.level
    log.setLevel(logging.INFO)
    yield
    log.setLevel(level)


def checkout(order: str) -> None:
    log.info("loading order %s", order)
    log.warning("card check slow, token=sk_live_abcdefghijklmnop")
    raise LookupError(f"order {order} has no payment")


def details(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = event["payload"]["custom_details"]
    return found


def assert_context(event: dict[str, Any], route: str, *, user: str | None) -> None:
    payload = event["payload"]
    assert payload["class"] == "LookupError"
    assert payload["component"] == f"POST {route}"
    assert payload["group"] == "shop-web"
    found = details(event)
    assert (found["trace_id"], found["span_id"]) == (TRACE_ID, SPAN_ID)
    assert event["links"][0]["href"] == f"https://tempo.example.com/trace/{TRACE_ID}"
    messages = [crumb.split(": ", 1)[1] for crumb in found["breadcrumbs"]]
    assert messages[0] == "loading order 7"
    assert "card check slow" in messages[1]
    assert "sk_live_abcdefghijklmnop" not in str(found["breadcrumbs"])
    assert found.get("user_id") == user


# -- Starlette --------------------------------------------------------------------------


class Customer(BaseUser):
    def __init__(self, number: int) -> None:
        self.number = number

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return "Ada"

    @property
    def identity(self) -> str:
        return f"customer-{self.number}"


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        number = conn.headers.get("x-customer")
        return None if number is None else (AuthCredentials(["shop"]), Customer(int(number)))


async def starlette_checkout(request: Request) -> PlainTextResponse:
    checkout(request.path_params["order"])
    return PlainTextResponse("paid")


def starlette_app(**settings: Any) -> Starlette:
    return Starlette(
        routes=[Route("/orders/{order}/pay", starlette_checkout, methods=["POST"])],
        middleware=[
            Middleware(
                PagerDutyMiddleware,
                source="shop-web",
                trace_url_template=TEMPLATE,
                **settings,
            ),
            Middleware(AuthenticationMiddleware, backend=HeaderAuth()),
        ],
    )


@pytest.mark.parametrize(("send_user", "user"), [(True, "customer-42"), (False, None)])
def test_starlette_alert_context(
    pagerduty_events: CapturedEvents, send_user: bool, user: str | None
) -> None:
    with TestClient(starlette_app(send_user=send_user), raise_server_exceptions=False) as client:
        response = client.post(
            "/orders/7/pay", headers={"traceparent": TRACEPARENT, "x-customer": "42"}
        )
        assert response.status_code == 500
        (event,) = pagerduty_events.triggers
    assert_context(event, "/orders/{order}/pay", user=user)


def test_starlette_breadcrumbs_off(pagerduty_events: CapturedEvents) -> None:
    with TestClient(starlette_app(breadcrumbs=0), raise_server_exceptions=False) as client:
        client.post("/orders/7/pay")
        (event,) = pagerduty_events.triggers
    assert "breadcrumbs" not in details(event)
    assert "trace_id" not in details(event)


class TracingMiddleware:
    """What OpenTelemetry's ASGI instrumentation does: a server span around the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = TracerProvider().get_tracer("tests")
        self.spans: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.tracer.start_as_current_span("http") as span:
            self.spans.append(span.get_span_context())
            await self.app(scope, receive, send)


def test_starlette_alert_carries_the_active_sdk_span(pagerduty_events: CapturedEvents) -> None:
    traced = TracingMiddleware(starlette_app())
    with TestClient(traced, raise_server_exceptions=False) as client:
        client.post("/orders/7/pay")
        (event,) = pagerduty_events.triggers
    (span,) = traced.spans
    assert details(event)["trace_id"] == f"{span.trace_id:032x}"
    assert details(event)["span_id"] == f"{span.span_id:016x}"


def test_starlette_breadcrumbs_of_a_sync_endpoint_are_the_failing_requests_own(
    pagerduty_events: CapturedEvents,
) -> None:
    def healthy(request: Request) -> PlainTextResponse:
        log.warning("an earlier healthy request")
        return PlainTextResponse("ok")

    def report(request: Request) -> PlainTextResponse:
        # A plain function: Starlette runs it in its thread pool, in a copy of the
        # request's context.
        log.warning("report failing in the thread pool")
        raise LookupError("no report")

    app = Starlette(
        routes=[Route("/healthy", healthy), Route("/report", report, methods=["POST"])],
        middleware=[Middleware(PagerDutyMiddleware, source="shop-web")],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthy").status_code == 200
        log.warning("outside any request")
        assert client.post("/report").status_code == 500
        (event,) = pagerduty_events.triggers
    messages = [crumb.split(": ", 1)[1] for crumb in details(event)["breadcrumbs"]]
    assert messages == ["report failing in the thread pool"]


# -- Flask ------------------------------------------------------------------------------


class Member:
    """What Flask-Login needs of a user (its ``UserMixin``, spelled out)."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, member_id: str) -> None:
        self.id = member_id

    def get_id(self) -> str:
        return self.id


def flask_app(**config: Any) -> Flask:
    app = Flask("shop")
    app.config.update(
        SECRET_KEY="tests-only",
        PAGERDUTY_SOURCE="shop-web",
        PAGERDUTY_TRACE_URL_TEMPLATE=TEMPLATE,
        **config,
    )
    logins = LoginManager(app)

    def load(request: Any) -> Member | None:
        member = request.headers.get("X-Member")
        return None if member is None else Member(member)

    logins.request_loader(load)

    @app.post("/orders/<order>/pay")
    def pay(order: str) -> str:
        checkout(order)
        return "paid"

    PagerDuty(app)
    return app


@pytest.fixture
def flask_apps() -> Iterator[list[Flask]]:
    apps: list[Flask] = []
    yield apps
    for app in apps:
        get_state(app).close(timeout=1.0)


@pytest.mark.parametrize(("send_user", "user"), [("true", "m-9"), ("false", None)])
def test_flask_alert_context(
    pagerduty_events: CapturedEvents, flask_apps: list[Flask], send_user: str, user: str | None
) -> None:
    app = flask_app(PAGERDUTY_SEND_USER=send_user)
    flask_apps.append(app)
    response = app.test_client().post(
        "/orders/7/pay", headers={"traceparent": TRACEPARENT, "X-Member": "m-9"}
    )
    assert response.status_code == 500
    (event,) = pagerduty_events.triggers
    assert_context(event, "/orders/<order>/pay", user=user)


def test_flask_anonymous_user_has_no_id(
    pagerduty_events: CapturedEvents, flask_apps: list[Flask]
) -> None:
    app = flask_app(PAGERDUTY_SEND_USER=True, PAGERDUTY_BREADCRUMBS=0)
    flask_apps.append(app)
    app.test_client().post("/orders/7/pay")
    (event,) = pagerduty_events.triggers
    assert "user_id" not in details(event)
    assert "breadcrumbs" not in details(event)


def test_flask_breadcrumbs_are_the_failing_requests_own(
    pagerduty_events: CapturedEvents, flask_apps: list[Flask]
) -> None:
    app = flask_app()
    flask_apps.append(app)
    waiting, release = threading.Event(), threading.Event()

    @app.get("/slow-healthy")
    def slow_healthy() -> str:
        log.warning("healthy request, still running")
        waiting.set()
        release.wait(30)
        return "ok"

    @app.get("/healthy")
    def healthy() -> str:
        log.warning("an earlier healthy request")
        return "ok"

    @app.post("/report")
    def report() -> str:
        @copy_current_request_context
        def render() -> None:
            log.warning("rendering in a helper thread")

        helper = threading.Thread(target=render)
        helper.start()
        helper.join(30)
        log.warning("report failing")
        raise LookupError("no report")

    client = app.test_client()
    assert client.get("/healthy").status_code == 200
    log.warning("outside any request")
    other = threading.Thread(target=lambda: app.test_client().get("/slow-healthy"))
    other.start()
    try:
        assert waiting.wait(30)
        assert client.post("/report").status_code == 500
    finally:
        release.set()
        other.join(30)
    (event,) = pagerduty_events.triggers
    messages = [crumb.split(": ", 1)[1] for crumb in details(event)["breadcrumbs"]]
    assert messages == ["rendering in a helper thread", "report failing"]


def test_a_flask_without_its_request_context_variable_still_alerts_and_says_so(
    pagerduty_events: CapturedEvents,
    flask_apps: list[Flask],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A future Flask that no longer has the variable the breadcrumbs are found through.
    monkeypatch.delattr(flask_globals, "_cv_request")
    with caplog.at_level(logging.WARNING, logger="pd_integrations.flask"):
        app = flask_app()
    flask_apps.append(app)
    assert any("carry no breadcrumbs" in r.getMessage() for r in caplog.records)
    assert app.test_client().post("/orders/7/pay").status_code == 500
    (event,) = pagerduty_events.triggers
    assert event["payload"]["class"] == "LookupError"
