"""Lifespan and websocket scopes pass through; periodic health checks ride the lifespan."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from pd_integrations import AlertManager
from pd_integrations.health import HealthMonitor
from pd_integrations.starlette import PagerDutyMiddleware
from pd_integrations.testing import CapturedEvents

from .conftest import valid_triggers


class Recorder:
    """A raw ASGI app that remembers exactly what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, Receive, Send]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope, receive, send))


async def _receive() -> Message:
    return {"type": "lifespan.startup"}


async def _send(message: Message) -> None:
    return None


def test_websockets_get_the_servers_own_callables(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    inner = Recorder()
    middleware = PagerDutyMiddleware(inner, alerts=alerts, slow_request_ms=10)
    scope: dict[str, Any] = {"type": "websocket", "path": "/ws"}

    asyncio.run(middleware(scope, _receive, _send))

    ((seen_scope, seen_receive, seen_send),) = inner.calls
    assert seen_scope is scope
    assert seen_receive is _receive
    assert seen_send is _send


def test_http_passes_straight_through_when_alerting_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("PAGERDUTY_INTEGRATION_KEY", raising=False)
    inner = Recorder()
    middleware = PagerDutyMiddleware(inner)
    scope = {"type": "http", "path": "/"}

    asyncio.run(middleware(scope, _receive, _send))

    assert inner.calls == [(scope, _receive, _send)]


def make_app(state: dict[str, Any], *, fastapi: bool = False, **middleware: Any) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state["ready"] = True
        yield {"greeting": "hello from lifespan"}
        state["ready"] = False

    async def greet(request: Request) -> Response:
        return PlainTextResponse(request.state.greeting)

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"echo: {text}")
        await websocket.close()

    routes = [Route("/greet", greet), WebSocketRoute("/ws", echo)]
    app = (
        FastAPI(routes=routes, lifespan=lifespan)
        if fastapi
        else Starlette(routes=routes, lifespan=lifespan)
    )
    app.add_middleware(PagerDutyMiddleware, **middleware)
    return app


@pytest.mark.parametrize("fastapi", [False, True], ids=["starlette", "fastapi"])
def test_lifespan_state_and_websockets_work(
    alerts: AlertManager, pagerduty_events: CapturedEvents, fastapi: bool
) -> None:
    state: dict[str, Any] = {}
    health = HealthMonitor(alerts)
    app = make_app(state, fastapi=fastapi, alerts=alerts, health=health, health_interval=60)

    with TestClient(app) as client:
        assert state["ready"] is True
        assert client.get("/greet").text == "hello from lifespan"
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("hi")
            assert websocket.receive_text() == "echo: hi"
    assert state["ready"] is False
    assert pagerduty_events.events == []


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_periodic_health_checks_run_between_startup_and_shutdown(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    state: dict[str, Any] = {"cache_up": True}
    health = HealthMonitor(alerts, failure_threshold=1)
    runs: list[bool] = []

    @health.check("app")
    def app_ready() -> bool:
        # Failing checks before startup completed or after shutdown began would page.
        runs.append(state.get("ready", False))
        return bool(state.get("ready"))

    @health.check("cache")
    async def cache() -> bool:
        return bool(state["cache_up"])

    app = make_app(state, alerts=alerts, health=health, health_interval=0.02)
    with TestClient(app):
        wait_for(lambda: len(runs) >= 2)
        state["cache_up"] = False
        wait_for(lambda: len(alerts.active_alerts()) == 1)
        state["cache_up"] = True
        wait_for(lambda: not alerts.active_alerts())
    stopped_at = len(runs)
    time.sleep(0.1)

    assert len(runs) == stopped_at, "the checks stopped with the app"
    assert all(runs), "no check ran outside the app's lifetime"
    (trigger,) = valid_triggers(pagerduty_events)
    assert trigger["payload"]["summary"].startswith("Health check failed: cache")
    (resolve,) = pagerduty_events.resolves
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_a_manager_made_by_the_middleware_is_flushed_at_shutdown(
    pagerduty_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[tuple[AlertManager, float | None]] = []
    original = AlertManager.flush

    def flush(self: AlertManager, timeout: float | None = 5.0) -> bool:
        flushed.append((self, timeout))
        return original(self, timeout)

    monkeypatch.setattr(AlertManager, "flush", flush)
    app = make_app({})  # no alerts given: from the environment

    with TestClient(app) as client:
        assert client.get("/greet").status_code == 200
        assert flushed == []

    ((manager, timeout),) = flushed
    assert manager.enabled
    assert manager.dispatcher is not None
    assert timeout == manager.dispatcher.exit_flush_timeout
    manager.close()


def test_a_manager_passed_in_is_flushed_at_shutdown_for_its_shutdown_timeout(
    pagerduty_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn re-raises SIGTERM after lifespan shutdown: exit handlers never run there.
    alerts = AlertManager(shutdown_timeout=7.5)
    flushed: list[float | None] = []
    original = alerts.flush

    def flush(timeout: float | None = 5.0) -> bool:
        flushed.append(timeout)
        return original(timeout)

    monkeypatch.setattr(alerts, "flush", flush)
    inner = Recorder()
    middleware = PagerDutyMiddleware(inner, alerts=alerts)

    async def lifespan() -> None:
        scope: dict[str, Any] = {"type": "lifespan"}
        await middleware(scope, _receive, _send)
        ((_, receive, send),) = inner.calls
        assert await receive() == {"type": "lifespan.startup"}
        for message in (
            {"type": "lifespan.startup.complete"},
            {"type": "lifespan.shutdown.complete"},
        ):
            await send(message)

    asyncio.run(lifespan())
    assert flushed == [7.5]
    alerts.close()
