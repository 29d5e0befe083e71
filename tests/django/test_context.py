"""The responder's context through Django, configured with ``PAGERDUTY``.

Mirrors tests/context/test_frameworks.py: same class, component, group, trace ids from
``traceparent``, scrubbed breadcrumbs, and the user's id with ``SEND_USER``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.test import AsyncClient, Client, override_settings

from pd_integrations.testing import CapturedEvents

from .conftest import ROUTING_KEY, pagerduty

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"

log = logging.getLogger("tests.django.shop")


class Customer:
    """What ``AuthenticationMiddleware`` leaves in ``request.user``, without a database."""

    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


class Anonymous:
    is_authenticated = False
    pk = None


class FakeAuthenticationMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        number = request.headers.get("X-Customer")
        request.user = Customer(int(number)) if number else Anonymous()  # type: ignore[assignment]
        log.info("customer %s opened order page", number)
        log.warning("card check slow, token=sk_live_abcdefghijklmnop")
        return self.get_response(request)


MIDDLEWARE = [
    "pd_integrations.django.middleware.PagerDutyMiddleware",
    "tests.django.test_context.FakeAuthenticationMiddleware",
]


@pytest.fixture(autouse=True)
def shop_logging() -> Iterator[None]:
    level = log.level
    log.setLevel(logging.INFO)
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        yield
    log.setLevel(level)


def settings(**extra: Any) -> dict[str, Any]:
    return {
        "ROUTING_KEY": ROUTING_KEY,
        "SOURCE": "shop-web",
        "TRACE_URL_TEMPLATE": "https://tempo.example.com/trace/{trace_id}",
        **extra,
    }


def details(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = event["payload"]["custom_details"]
    return found


@pytest.mark.parametrize(("send_user", "user"), [(True, "42"), (False, None)])
def test_django_alert_context(
    events: CapturedEvents, client: Client, send_user: bool, user: str | None
) -> None:
    with pagerduty(**settings(SEND_USER=send_user)):
        response = client.get(
            "/orders/1/fail/", headers={"traceparent": TRACEPARENT, "X-Customer": "42"}
        )
        assert response.status_code == 500
        (event,) = events.triggers
    payload = event["payload"]
    assert payload["class"] == "tests.django.views.OrderLookupError"
    assert payload["component"] == "GET /orders/<int:pk>/fail/"
    assert payload["group"] == "shop-web"
    found = details(event)
    assert (found["trace_id"], found["span_id"]) == (TRACE_ID, SPAN_ID)
    assert event["links"][0]["href"] == f"https://tempo.example.com/trace/{TRACE_ID}"
    messages = [crumb.split(": ", 1)[1] for crumb in found["breadcrumbs"]]
    assert messages[0] == "customer 42 opened order page"
    assert "card check slow" in messages[1]
    assert "sk_live_abcdefghijklmnop" not in str(found["breadcrumbs"])
    assert found.get("user_id") == user


def test_django_anonymous_user_and_breadcrumbs_off(events: CapturedEvents, client: Client) -> None:
    with pagerduty(**settings(SEND_USER=True, BREADCRUMBS=0)):
        client.get("/orders/1/fail/")
        (event,) = events.triggers
    assert "user_id" not in details(event)
    assert "breadcrumbs" not in details(event)
    assert "trace_id" not in details(event)


def test_django_async_request_has_its_trace(
    events: CapturedEvents, async_client: AsyncClient
) -> None:
    with (
        override_settings(MIDDLEWARE=MIDDLEWARE[:1]),
        pagerduty(**settings()),
    ):
        asyncio.run(async_client.get("/async/boom/", headers={"traceparent": TRACEPARENT}))
        (event,) = events.triggers
    assert details(event)["trace_id"] == TRACE_ID
    assert event["payload"]["component"] == "GET /async/boom/"
